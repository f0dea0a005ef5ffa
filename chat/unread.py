"""What a person has not read yet: per room, messages after their LastRead and unread mentions.

Reads only; chat/reading.py moves the positions. Counted for the rooms the person may read
(`standing.readable_rooms`), so a room they lose access to stops counting at once.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, Min, OuterRef, Subquery
from django.db.models.expressions import RawSQL

from chat.models import Involvement, LastRead, Mention, Message, Presence, Room, ServerProcess
from chat.standing import Account, User, readable_rooms

# Counting stops here per room: "99+" is all the list shows, and a busy room never opened
# costs no more than this many index entries.
COUNT_CAP = 100


def unread_group(room_id: int) -> str:
    """Room-list sockets of everyone who may read the room: news of its messages, as numbers.
    Not "room.<pk>...": the hub drops a room's cached history on events to those groups."""
    return f"unread.{room_id}"


def reader_group(user_id: int) -> str:
    """Every room-list socket of one user: which rooms they just read."""
    return f"unread.user.{user_id}"


@dataclass(frozen=True)
class Unread:
    messages: int = 0
    mentions: int = 0
    # The first message naming the reader that they have not seen: where the room list opens the room.
    first_mention: int | None = None

    @property
    def shown_messages(self) -> str:
        return f"{COUNT_CAP - 1}+" if self.messages >= COUNT_CAP else str(self.messages)

    @property
    def total(self) -> int:
        """What the room adds to the page title: its messages, or its mentions where only they count."""
        return self.messages or self.mentions

    def at_level(self, level: str) -> "Unread":
        """What the room list shows of these counts at this notification level (chat/involvement.py):
        everything; only mentions (MENTIONS, and HIDDEN, whose room shows only while mentioned); nothing."""
        if level == Involvement.Level.EVERYTHING:
            return self
        if level in (Involvement.Level.MENTIONS, Involvement.Level.HIDDEN):
            return Unread(0, self.mentions, self.first_mention)
        return Unread()


Level = str  # one of Involvement.Level's values
DEFAULT_LEVEL: Level = Involvement.Level.EVERYTHING  # no row: rooms and direct messages alike


def _unread_sql(user: Account, live_since: datetime) -> tuple[str, list]:
    """Messages by others after the reader's position in the room, counted up to COUNT_CAP; 0 for a
    room the reader has open now (a socket of theirs with a live process: read as it arrives).
    A room never opened (position -1) counts what was posted since the account was made.

    The position is read once per room (a one-row derived table), not once per message counted.
    """
    table = connection.ops.quote_name
    room = f"{table(Room._meta.db_table)}.{table('id')}"
    sql = (
        "CASE WHEN EXISTS ("
        f"SELECT 1 FROM {table(Presence._meta.db_table)} p"
        f" JOIN {table(ServerProcess._meta.db_table)} s ON s.id = p.process_id"
        f" WHERE p.room_id = {room} AND p.user_id = %s AND s.last_seen >= %s"
        ") THEN 0 ELSE (SELECT COUNT(*) FROM ("
        f"SELECT 1 FROM (SELECT COALESCE((SELECT lr.message_id FROM {table(LastRead._meta.db_table)} lr"
        f" WHERE lr.room_id = {room} AND lr.user_id = %s), -1) AS pos) position"
        f" JOIN {table(Message._meta.db_table)} m ON m.room_id = {room} AND m.id > position.pos"
        " WHERE (position.pos >= 0 OR m.created_at >= %s)"
        " AND m.author_id <> %s AND m.removed_at IS NULL AND m.deleted_at IS NULL"
        f" LIMIT {COUNT_CAP}) unread) END"
    )
    ops = connection.ops
    since, joined = ops.adapt_datetimefield_value(live_since), ops.adapt_datetimefield_value(user.date_joined)
    return sql, [user.pk, since, user.pk, joined, user.pk]


def unread_by_room(user: User, live_since: datetime) -> dict[int, Unread]:
    """Every readable room's unread messages and mentions for this user (zeros too) as their
    notification levels show them, in one query.

    `live_since`: server processes that beat since then are alive (queries.live_processes_cutoff).
    """
    counts, levels = unread_and_levels(user, live_since)
    return {pk: found.at_level(levels[pk]) for pk, found in counts.items()}


def unread_and_levels(user: User, live_since: datetime) -> tuple[dict[int, Unread], dict[int, Level]]:
    """Every readable room's unread counts as they are (every message, every mention) and the user's
    notification level there, in one query: the room list socket keeps both and applies the level
    itself, so a change of level shows the right counts at once without asking again."""
    if not isinstance(user, Account):
        return {}, {}
    level = Involvement.objects.filter(user_id=user.pk, room=OuterRef("pk")).values("level")[:1]
    rows = (
        readable_rooms(user)
        .order_by()
        .annotate(
            unread=RawSQL(*_unread_sql(user, live_since)),
            mentioned=_unseen_mentions(user, Count("pk")),
            first_mention=_unseen_mentions(user, Min("message_id")),
            level=Subquery(level),
        )
        .values_list("pk", "unread", "mentioned", "first_mention", "level")
    )
    counts, levels = {}, {}
    for pk, unread, mentioned, first, chosen in rows:
        counts[pk] = Unread(unread or 0, mentioned or 0, first)
        levels[pk] = chosen or DEFAULT_LEVEL
    return counts, levels


def _unseen_mentions(user: Account, aggregate: Count | Min) -> Subquery:
    unseen = Mention.objects.filter(
        user_id=user.pk, room=OuterRef("pk"), seen=False, message__removed_at__isnull=True
    )
    return Subquery(unseen.order_by().values("room").annotate(found=aggregate).values("found")[:1])


@dataclass(frozen=True)
class ReadingPosition:
    """Where a reader stood in a room as a socket of theirs opens it."""

    read_up_to: int | None  # None: never opened
    first_unread: int | None  # the first message by someone else after it
    newest: int  # the room's newest message (0: none yet)
    level: Level = DEFAULT_LEVEL  # their notification level there (the room header's control shows it)


def reading_position(room: Room, user: User) -> ReadingPosition:
    """One query of four index lookups: the reader's stored position, the first message by
    someone else after it, the room's newest message, and the reader's notification level."""
    assert user.is_authenticated
    in_room = Message.objects.filter(room_id=OuterRef("pk")).order_by("-pk").values("pk")[:1]
    stored = LastRead.objects.filter(user_id=user.pk, room_id=OuterRef("pk")).values("message_id")[:1]
    # Inside `after`, the outer row is a message: its room_id names the room.
    stored_there = LastRead.objects.filter(user_id=user.pk, room_id=OuterRef("room_id")).values("message_id")[
        :1
    ]
    after = Message.objects.filter(room_id=OuterRef("pk"), pk__gt=Subquery(stored_there))
    after = after.exclude(author_id=user.pk)
    level = Involvement.objects.filter(user_id=user.pk, room_id=OuterRef("pk")).values("level")[:1]
    found = (
        Room.objects.filter(pk=room.pk)
        .annotate(
            read_up_to=Subquery(stored),
            first_unread=Subquery(after.order_by("pk").values("pk")[:1]),
            newest=Subquery(in_room),
            level=Subquery(level),
        )
        .values_list("read_up_to", "first_unread", "newest", "level")
        .first()
    )
    read_up_to, first_unread, newest, chosen = found or (None, None, 0, None)
    return ReadingPosition(read_up_to, first_unread, newest or 0, chosen or DEFAULT_LEVEL)
