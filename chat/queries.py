"""What the chat reads: rooms, history pages and who is online. Nothing here writes or broadcasts."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from chat.models import Message, Presence, Room
from chat.standing import User, readable_rooms


@dataclass(frozen=True)
class HistoryPage:
    messages: list[Message]
    # The pk to pass as `before` for the next older page, or None at the beginning.
    older_than: int | None


@dataclass(frozen=True)
class Members:
    usernames: list[str]
    guests: int

    @property
    def total(self) -> int:
        return len(self.usernames) + self.guests


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


def _fresh_presences() -> QuerySet[Presence]:
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)
    return Presence.objects.filter(last_seen__gte=cutoff)


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
    return list(
        readable_rooms(user).annotate(
            online=Count("presences__user", filter=fresh, distinct=True)
            + Count("presences", filter=fresh & Q(presences__user__isnull=True))
        )
    )
