"""What the chat does, independent of transport: HTTP views and consumers both call these."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.formats import time_format

from chat import broadcast
from chat.forms import MessageForm
from chat.models import Message, Presence, Room
from chat.standing import Standing, User, readable_rooms, standing


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


def reload(room: Room, user: User) -> Room:
    """The room and the user as stored now, for a socket that loaded both when it opened.

    Locks and slow mode may have changed since, and so may the user's staff status.
    """
    if user.is_authenticated:
        user.refresh_from_db(fields=["is_staff", "is_superuser", "is_active"])
    return Room.objects.get(pk=room.pk)


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
    """Check the poster may post, validate, store, then show it to the room."""
    form = MessageForm(data)
    viewer = standing(room, user)
    refusal = why_not_post(room, user, viewer)
    if refusal is None and form.is_valid():
        refusal = why_wait(room, user, viewer)
    if refusal:
        form.add_error(None, refusal)
    if not form.is_valid():
        return PostOutcome(form, None)
    message = Message.objects.create(room=room, author=user, body=form.cleaned_data["message"])
    broadcast.new_message(message)
    return PostOutcome(form, message)


def why_not_post(room: Room, user: User, viewer: Standing) -> str | None:
    """Why this user may not post in the room at all right now, or None if they may."""
    if not user.is_authenticated:
        return "Sign in to post messages."
    if not viewer.can_read:
        return "You can't post in this room."
    if viewer.is_moderator:
        return None
    if room.is_locked:
        return "This room is locked: only moderators can post."
    if viewer.is_muted:
        return (
            f"You're muted in this room until {time_format(timezone.localtime(viewer.muted_until), 'H:i T')}."
        )
    return None


def why_wait(room: Room, user: AbstractBaseUser, viewer: Standing) -> str | None:
    """Slow mode and flood control: how long to wait before the next message, if at all."""
    if room.slow_mode_seconds and not viewer.is_moderator:
        last = room.messages.filter(author=user).order_by("-pk").values_list("created_at", flat=True).first()
        if last:
            wait = room.slow_mode_seconds - (timezone.now() - last).total_seconds()
            if wait > 0:
                return f"Slow mode is on: you can post again in {int(wait) + 1} seconds."
    if is_flooding(user):
        return "You're sending messages too fast. Wait a few seconds; your text is still here."
    return None


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
    """A socket opened on the room: everyone's member list updates."""
    Presence.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "room": room,
            "user": user if user.is_authenticated else None,
            "last_seen": timezone.now(),
        },
    )
    broadcast.members(room)


def leave_room(channel_name: str) -> None:
    """A socket closed: everyone's member list updates."""
    presence = Presence.objects.select_related("room").filter(channel_name=channel_name).first()
    if presence:
        presence.delete()
        broadcast.members(presence.room)


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


def rooms_with_online_counts(user: User) -> list[Room]:
    """The rooms this user may open, each with `online` = distinct signed-in users plus guests."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)
    fresh = Q(presences__last_seen__gte=cutoff)
    rooms = readable_rooms(user).annotate(
        online_users=Count("presences__user", filter=fresh, distinct=True),
        online_guests=Count("presences", filter=fresh & Q(presences__user__isnull=True)),
    )
    for room in rooms:
        room.online = room.online_users + room.online_guests
    return list(rooms)
