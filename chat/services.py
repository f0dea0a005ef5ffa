"""What the chat does, independent of transport: HTTP views and consumers both call these."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q
from django.utils import timezone

from chat.forms import MessageForm
from chat.models import Message, Presence, Room

User = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class HistoryPage:
    messages: list[Message]
    # The pk to pass as `before` for the next older page, or None at the beginning.
    older_than: int | None


@dataclass(frozen=True)
class PostOutcome:
    """A bound form (with errors when refused) and the stored message when accepted."""

    form: MessageForm
    message: Message | None


def find_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


def history_page(room: Room, before: int | None = None) -> HistoryPage:
    """Up to one page of messages, oldest first, strictly older than `before` if given."""
    size = settings.CHAT_HISTORY_PAGE_SIZE
    query = room.messages.select_related("author").order_by("-pk")
    if before is not None:
        query = query.filter(pk__lt=before)
    newest_first = list(query[: size + 1])
    has_older = len(newest_first) > size
    page = newest_first[:size][::-1]
    return HistoryPage(messages=page, older_than=page[0].pk if has_older else None)


def post_message(room: Room, user: User, data: dict) -> PostOutcome:
    """Validate, check the poster may post, and store. The message is committed on return."""
    form = MessageForm(data)
    if not user.is_authenticated:
        form.add_error(None, "Sign in to post messages.")
        return PostOutcome(form, None)
    if not form.is_valid():
        return PostOutcome(form, None)
    if is_flooding(user):
        form.add_error(None, "You're sending messages too fast. Wait a few seconds; your text is still here.")
        return PostOutcome(form, None)
    message = Message.objects.create(room=room, author=user, body=form.cleaned_data["message"])
    return PostOutcome(form, message)


def is_flooding(user: AbstractBaseUser) -> bool:
    """True when the user already sent the allowed number of messages in the flood window.

    Counted in the database, so the limit holds across tabs and server processes.
    """
    since = timezone.now() - timedelta(seconds=settings.CHAT_FLOOD_WINDOW_SECONDS)
    recent = Message.objects.filter(author=user, created_at__gte=since).count()
    return recent >= settings.CHAT_FLOOD_MESSAGES


# Presence ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Members:
    usernames: list[str]
    guests: int

    @property
    def total(self) -> int:
        return len(self.usernames) + self.guests


def _fresh_presences():
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)
    return Presence.objects.filter(last_seen__gte=cutoff)


def join_room(room: Room, user: User, channel_name: str) -> None:
    Presence.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "room": room,
            "user": user if user.is_authenticated else None,
            "last_seen": timezone.now(),
        },
    )


def leave_room(channel_name: str) -> None:
    Presence.objects.filter(channel_name=channel_name).delete()


def touch_presence(channel_name: str) -> None:
    Presence.objects.filter(channel_name=channel_name).update(last_seen=timezone.now())


def online_members(room: Room) -> Members:
    """Who has the room open now: each signed-in user once, however many tabs."""
    present = _fresh_presences().filter(room=room)
    usernames = list(
        present.filter(user__isnull=False)
        .values_list("user__username", flat=True)
        .distinct()
        .order_by("user__username")
    )
    guests = present.filter(user__isnull=True).count()
    return Members(usernames=usernames, guests=guests)


def rooms_with_online_counts() -> list[Room]:
    """All rooms, each with `online` = distinct signed-in users plus guest sockets."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)
    fresh = Q(presences__last_seen__gte=cutoff)
    rooms = Room.objects.annotate(
        online_users=Count("presences__user", filter=fresh, distinct=True),
        online_guests=Count("presences", filter=fresh & Q(presences__user__isnull=True)),
    )
    for room in rooms:
        room.online = room.online_users + room.online_guests
    return list(rooms)
