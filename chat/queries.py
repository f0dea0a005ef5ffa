"""What the chat reads: rooms, history pages and who is online. Nothing here writes or broadcasts."""

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import Truncator

from chat import formatting
from chat.models import REACTION_EMOJI, Attachment, Membership, Message, Presence, Reaction, Room
from chat.standing import (
    RELOADED_FIELDS,
    Account,
    Standing,
    User,
    readable_rooms,
    readers,
    room_and_standing_by_id,
    stored_datetime,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class OnlineCount(TypedDict):
    online: int


# A reaction's tooltip names this many people and counts the rest.
REACTION_NAMES_SHOWN = 10


@dataclass(frozen=True)
class ReactionCount:
    """One emoji under a message: who gave it, in the order they did (hashable: it keys a cache)."""

    emoji: str
    user_ids: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.user_ids)

    @property
    def who(self) -> str:
        """The tooltip: "alice, bob and 3 others"."""
        shown, more = self.names[:REACTION_NAMES_SHOWN], self.count - REACTION_NAMES_SHOWN
        if more > 0:
            return f"{', '.join(shown)} and {more} other{'s' if more != 1 else ''}"
        return " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else "".join(shown)


@dataclass(frozen=True)
class ShownAttachment:
    """A message's file as the page shows it: a thumbnail (images) or a card with name and size."""

    pk: int
    name: str
    content_type: str
    size: int
    thumb_width: int | None
    thumb_height: int | None

    @property
    def is_image(self) -> bool:
        return self.thumb_width is not None

    @classmethod
    def of(cls, attachment: Attachment | None) -> "ShownAttachment | None":
        if attachment is None:
            return None
        fields = (attachment.name, attachment.content_type, attachment.size)
        return cls(attachment.pk, *fields, attachment.thumb_width, attachment.thumb_height)


ATTACHMENT_FIELDS = tuple(
    f"attachment__{field}" for field in ("pk", "name", "content_type", "size", "thumb_width", "thumb_height")
)


def attachment_of(message: Message) -> Attachment | None:
    """The file a message shows: none once it is removed or deleted (one query unless it was read
    with the message or is known absent, as for a message just posted)."""
    if message.removed_at or message.deleted_at:
        return None
    try:
        return message.attachment
    except Attachment.DoesNotExist:
        return None


@dataclass(frozen=True)
class ShownMessage:
    """A message as the page shows it: every field its HTML depends on, so it can key a cache."""

    pk: int
    author_id: int
    author_name: str
    # The rendered Markdown, never the raw body: the page shows nothing else of the text.
    body_html: str
    created_at: datetime
    removed_at: datetime | None
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    # Ids of the people named, for the "mentions you" CSS rule (see Message.mentions).
    mentions: str = ""
    # The quote of the message this one answers, read fresh from the original each time, so a
    # removed or deleted original is a new cache key. reply_author None: the original is gone.
    reply_to_id: int | None = None
    reply_author: str | None = None
    reply_excerpt: str = ""
    reply_removed: bool = False
    reactions: tuple[ReactionCount, ...] = ()
    attachment: ShownAttachment | None = None
    # The text as typed, shown escaped in place of stored HTML too large to show (see readable).
    typed_text: str = ""
    # Shown without avatar and name, under the message before it (see fragments.continues).
    continued: bool = False
    # A bot's avatar letter (chat.models.Bot.initial); empty for a person. Marks the bot's name.
    bot_initial: str = ""
    # The quoted original was posted by a bot: its name in the quote carries the badge too.
    reply_by_bot: bool = False

    @property
    def by_bot(self) -> bool:
        return bool(self.bot_initial)

    @property
    def has_text(self) -> bool:
        """False for a file posted without a caption (an empty body renders as an empty paragraph)."""
        return self.body_html not in ("", "<p></p>")

    @classmethod
    def of(cls, message: Message) -> "ShownMessage":
        original = replied_to(message)
        shown = cls(
            message.pk,
            message.author_id,
            message.author.username,
            message.body_html,
            message.created_at,
            message.removed_at,
            message.edited_at,
            message.deleted_at,
            message.mentions,
            message.reply_to_id,
            *_quote(original.author.username, original.body, original.removed_at) if original else (),
        )
        initial = bot_initial(message.author)
        if initial:
            shown = replace(shown, bot_initial=initial)
        if original and bot_initial(original.author):
            shown = replace(shown, reply_by_bot=True)
        attachment = ShownAttachment.of(attachment_of(message))
        return readable(replace(shown, attachment=attachment) if attachment else shown, message.body)

    @staticmethod
    def of_quote(original: Message) -> str:
        """The first words of a message as plain text, as a reply quotes it."""
        return _quote(original.author.username, original.body, original.removed_at)[1]

    @classmethod
    def from_row(cls, row: tuple) -> "ShownMessage":
        row, attached = row[: -len(ATTACHMENT_FIELDS)], row[-len(ATTACHMENT_FIELDS) :]
        *shown, reply_author, reply_body, reply_removed_at, reply_deleted_at, typed, initial, reply_bot = row
        quoted = reply_author is not None and reply_deleted_at is None
        quote = _quote(reply_author, reply_body, reply_removed_at) if quoted else ()
        message = cls(*shown, *quote)
        reply_by_bot = quoted and reply_bot is not None
        if initial or reply_by_bot:  # by a bot, or quoting one: rare, so the copy is too
            message = replace(message, bot_initial=initial or "", reply_by_bot=reply_by_bot)
        if attached[0] is None or message.removed_at or message.deleted_at:
            return readable(message, typed)
        return readable(replace(message, attachment=ShownAttachment(*attached)), typed)


def bot_initial(account: Account) -> str:
    """The avatar letter of a bot's account, "" for a person's. Asked of the database at most
    once per account object (Django keeps the answer, "no bot" included, on the object): once per
    socket for a person's posts, never for a bot's (chat/bots.py reads the account with its bot)."""
    bot = getattr(account, "bot", None)
    return bot.initial if bot is not None else ""


def readable(message: ShownMessage, typed: str) -> ShownMessage:
    """The message as every page and frame shows it: stored HTML over CHAT_MESSAGE_SHOWN_HTML_BYTES
    (only an older version stored such) gives way to the text as typed, cut to the longest a
    message may be, which the template escapes. The one place that decides, for page and socket."""
    if message.removed_at or utf8_size(message.body_html) <= settings.CHAT_MESSAGE_SHOWN_HTML_BYTES:
        return message
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    text = typed if len(typed) <= limit else typed[:limit] + "…"
    return replace(message, body_html="", typed_text=text or "…")


def utf8_size(text: str) -> int:
    """The bytes `text` takes in a frame or page (UTF-8), without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


SHOWN_FIELDS = (
    *("pk", "author_id", "author__username", "body_html", "created_at", "removed_at", "edited_at"),
    *("deleted_at", "mentions", "reply_to_id"),
    *("reply_to__author__username", "reply_to__body", "reply_to__removed_at", "reply_to__deleted_at"),
    # The text as typed: shown instead of stored HTML too large to show (see readable).
    "body",
    # A bot's avatar letter, None for people (a LEFT JOIN on the bot's row); the same of the original.
    "author__bot__initial",
    "reply_to__author__bot__initial",
    # Last: ShownMessage.from_row takes them off the end (a LEFT JOIN, no query per message).
    *ATTACHMENT_FIELDS,
)
QUOTE_CHARACTERS = 80


def _quote(author: str, body: str, removed_at: datetime | None) -> tuple[str, str, bool]:
    """Who wrote the original and its first words as plain text; nothing of a removed one's."""
    if removed_at is not None:
        return author, "", True
    # Only a file posted without a caption has no text to quote.
    return author, Truncator(formatting.plain_text(body)).chars(QUOTE_CHARACTERS) or "a file", False


def replied_to(message: Message) -> Message | None:
    """The original a message answers, if it still exists and its author has not deleted it."""
    if message.reply_to_id is None:
        return None
    try:
        original = message.reply_to
    except Message.DoesNotExist:
        return None
    return original if original is not None and original.deleted_at is None else None


@dataclass(frozen=True)
class HistoryPage:
    messages: list[ShownMessage]
    # The pk to pass as `before` for the next older page, or None at the beginning.
    older_than: int | None
    # Around a permalink: the pk to pass as `after` for the next newer page (None: nothing newer
    # up to `until`, the newest message when the page was read; later ones arrive live).
    newer_than: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class Members:
    """Who is online: the first names (alphabetically), how many more signed-in users, and guests."""

    usernames: list[str]
    guests: int
    # Signed-in users beyond `usernames`: a big room lists a page of names and counts the rest.
    more: int = 0

    @property
    def total(self) -> int:
        return len(self.usernames) + self.more + self.guests

    def joined_by(self, name: str | None) -> "Members":
        """The list once this person (None: a guest) is in it: what a joining socket is shown
        before the next announcement says so to everyone."""
        if name is None:
            return replace(self, guests=self.guests + 1)
        if name in self.usernames:
            return self
        names, shown = sorted([*self.usernames, name]), settings.CHAT_MEMBER_NAMES_SHOWN
        if len(names) <= shown:
            return replace(self, usernames=names)
        return replace(self, usernames=names[:shown], more=self.more + 1)


def find_message(pk: int) -> Message | None:
    """A message still shown (not removed), with its room and author."""
    return (
        Message.objects.select_related("room", "author__bot").filter(pk=pk, removed_at__isnull=True).first()
    )


def reload(room: Room, user: User) -> tuple[Room, Standing]:
    """The room, the user and their standing in it as stored now, for a socket that loaded
    them when it opened.

    Locks and slow mode may have changed since, and so may the user's staff status, whether
    the account is active, and its password (which every session's hash is made from).
    """
    if user.is_authenticated:
        user.refresh_from_db(fields=RELOADED_FIELDS)
    return fresh_standing(room, user)


def fresh_standing(room: Room, user: User) -> tuple[Room, Standing]:
    """The room as stored now and the user's standing in it (the user as loaded), in one query."""
    found = room_and_standing_by_id(room.pk, user)
    if found is None:
        raise Room.DoesNotExist(f"Room {room.pk} is gone.")
    return found


def history_page(room: Room, before: int | None = None) -> HistoryPage:
    """Up to one page of messages, oldest first, strictly older than `before` if given."""
    size = settings.CHAT_HISTORY_PAGE_SIZE
    query = room.messages.order_by("-pk")
    if before is not None:
        query = query.filter(pk__lt=before)
    # Plain rows, no model instances: most pages are joined from cached HTML keyed by these.
    newest_first = [ShownMessage.from_row(row) for row in query.values_list(*SHOWN_FIELDS)[: size + 1]]
    has_older = len(newest_first) > size
    page = with_reactions(newest_first[:size][::-1])
    return HistoryPage(messages=page, older_than=page[0].pk if has_older else None)


def with_reactions(messages: list[ShownMessage]) -> list[ShownMessage]:
    """The messages with their reactions, read in one query for all of them."""
    found = reactions_of([message.pk for message in messages])
    return [
        replace(message, reactions=found[message.pk]) if message.pk in found else message
        for message in messages
    ]


def reactions_of(message_ids: list[int]) -> dict[int, tuple[ReactionCount, ...]]:
    """Each message's reactions, emoji in their fixed order, people in the order they reacted."""
    rows = (
        Reaction.objects.filter(message_id__in=message_ids)
        .order_by("pk")
        .values_list("message_id", "emoji", "user_id", "user__username")
    )
    people: dict[int, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for message_id, emoji, user_id, name in rows:
        people[message_id][emoji].append((user_id, name))
    return {
        message_id: tuple(
            ReactionCount(emoji, *map(tuple, zip(*by_emoji[emoji], strict=True)))
            for emoji in REACTION_EMOJI
            if emoji in by_emoji
        )
        for message_id, by_emoji in people.items()
    }


def live_processes_cutoff():
    """Server processes whose heartbeat is older than this are gone, and so are their sockets."""
    return timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)


def _fresh_presences() -> QuerySet[Presence]:
    return Presence.objects.filter(process__last_seen__gte=live_processes_cutoff())


def online_members(room: Room) -> Members:
    """Who has the room open now: each signed-in user once, however many tabs.

    Names beyond CHAT_MEMBER_NAMES_SHOWN are counted, not listed, so the list stays small.
    """
    present = _fresh_presences().filter(room=room)
    signed_in = present.filter(user__isnull=False)
    shown = settings.CHAT_MEMBER_NAMES_SHOWN
    usernames = list(
        signed_in.values_list("user__username", flat=True).distinct().order_by("user__username")[: shown + 1]
    )
    more = 0
    if len(usernames) > shown:
        usernames = usernames[:shown]
        more = signed_in.values("user").distinct().count() - shown
    guests = present.filter(user__isnull=True).count()
    return Members(usernames=usernames, guests=guests, more=more)


def rooms_with_online_counts(user: User) -> "list[WithAnnotations[Room, OnlineCount]]":
    """The rooms this user may open, each with `online` = distinct signed-in users plus guests."""
    fresh = Q(presences__process__last_seen__gte=live_processes_cutoff())
    return list(
        readable_rooms(user).annotate(
            online=Count("presences__user", filter=fresh, distinct=True)
            + Count("presences", filter=fresh & Q(presences__user__isnull=True))
        )
    )


class Name(str):
    """A name as the page prints it, knowing whether it is a bot's (shown with a "bot" badge)."""

    is_bot: bool = False

    @classmethod
    def of(cls, name: str, is_bot: bool) -> "Name":
        named = cls(name)
        named.is_bot = is_bot
        return named


MENTION_SUGGESTIONS = 8


def people_to_mention(room: Room, prefix: str) -> list[str]:
    """Usernames starting with `prefix` (any case) among those who may read the room."""
    named = readers(room).filter(username__istartswith=prefix)
    in_order = named.order_by(Lower("username"), "username")
    found = in_order.values_list("username", "bot__id")[:MENTION_SUGGESTIONS]
    return [Name.of(name, bot_id is not None) for name, bot_id in found]


def reply_target(room: Room, message_id: object) -> Message | None:
    """The message a reply in this room may quote: shown in the room, not removed."""
    try:
        pk = int(str(message_id))
    except ValueError:
        return None
    return room.messages.select_related("author__bot").filter(pk=pk, removed_at__isnull=True).first()


def readers_among(room: Room, user_ids: list[int]) -> list[Account]:
    return list(readers(room).filter(pk__in=user_ids))


def present_user_ids(room: Room, user_ids: list[int]) -> set[int]:
    """Which of these users have the room open now."""
    present = _fresh_presences().filter(room=room, user__in=user_ids)
    return set(present.values_list("user", flat=True))


def replies_to(message_id: int) -> list[Message]:
    """The shown replies to a message (the most recent ones), whose quotes change with it."""
    replies = Message.objects.filter(reply_to_id=message_id, removed_at__isnull=True)
    # Not select_related("reply_to"): filtering on it makes that an inner join, losing a deleted original.
    return list(replies.select_related("author__bot", "attachment").order_by("-pk")[:100])


def direct_partners(user: User, room_ids: list[int]) -> dict[int, str]:
    """The other person's name in each of these direct messages of the user (one query)."""
    if not room_ids or not isinstance(user, Account):
        return {}
    others = Membership.objects.filter(room_id__in=room_ids).exclude(user=user)
    rows = others.values_list("room_id", "user__username", "user__bot__id")
    return {room_id: Name.of(name, bot_id is not None) for room_id, name, bot_id in rows}


# Permalinks: the history around one message, paged both ways -------------------------------


def history_around(room: Room, pk: int) -> HistoryPage:
    """A page of history with message `pk` in the middle: half a page before it, the rest from it."""
    size = settings.CHAT_HISTORY_PAGE_SIZE
    until = room.messages.order_by("-pk").values_list("pk", flat=True).first() or pk
    before = size // 2
    older_rows = room.messages.filter(pk__lt=pk).order_by("-pk").values_list(*SHOWN_FIELDS)
    older = [ShownMessage.from_row(row) for row in older_rows[: before + 1]]
    newer = _newer_rows(room, pk - 1, until, size - before)
    page = with_reactions([*older[:before][::-1], *newer[: size - before]])
    return HistoryPage(
        messages=page,
        older_than=page[0].pk if len(older) > before else None,
        newer_than=page[-1].pk if len(newer) > size - before else None,
        until=until,
    )


def newer_page(room: Room, after: int, until: int) -> HistoryPage:
    """Up to one page of messages after `after` and up to `until`, oldest first."""
    size = settings.CHAT_HISTORY_PAGE_SIZE
    newer = _newer_rows(room, after, until, size)
    page = with_reactions(newer[:size])
    has_newer = len(newer) > size
    return HistoryPage(page, older_than=None, newer_than=page[-1].pk if has_newer else None, until=until)


def _newer_rows(room: Room, after: int, until: int, size: int) -> list[ShownMessage]:
    rows = room.messages.filter(pk__gt=after, pk__lte=until).order_by("pk").values_list(*SHOWN_FIELDS)
    return [ShownMessage.from_row(row) for row in rows[: size + 1]]


def message_in_room(room: Room, pk: int) -> bool:
    return room.messages.filter(pk=pk).exists()


# Grouping: the message before another in its room ------------------------------------------


class Preceding(NamedTuple):
    """What grouping needs of the message before another (see fragments.continues)."""

    author_id: int
    created_at: datetime
    removed_at: datetime | None
    deleted_at: datetime | None


_PRECEDING_SQL = (
    "SELECT author_id, created_at, removed_at, deleted_at"
    f" FROM {Message._meta.db_table} WHERE room_id = %s AND id < %s ORDER BY id DESC LIMIT 1"
)


def message_before(message: Message) -> Preceding | None:
    """The room's message just before this one, removed and deleted ones included. Hand-written
    (one index lookup): it runs on every post, where the ORM would cost more than the query."""
    with connection.cursor() as cursor:
        cursor.execute(_PRECEDING_SQL, [message.room_id, message.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    author_id, *moments = row
    created_at, removed_at, deleted_at = (stored_datetime(moment) for moment in moments)
    assert created_at is not None, "created_at is never null"
    return Preceding(author_id, created_at, removed_at, deleted_at)


def message_after(message_id: int, room_id: int) -> Message | None:
    """The room's message just after this one, with its author (its grouping may change with it)."""
    after = Message.objects.filter(room_id=room_id, pk__gt=message_id).select_related("room", "author__bot")
    return after.order_by("pk").first()


def newest_message_id(room: Room) -> int:
    """The room's newest message (0: none yet), where a page of history pages on up to."""
    return room.messages.order_by("-pk").values_list("pk", flat=True).first() or 0


def has_message_before(room: Room, pk: int) -> bool:
    return room.messages.filter(pk__lt=pk).exists()
