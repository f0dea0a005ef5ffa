"""Who a user is in a room right now: the one place read and post permissions are decided.

Everything that acts on a room (views, consumers, the admin) asks here at the moment of the
action, so a user demoted, muted or banned a second ago is refused at once. An open socket also
asks here whether the session it opened with still stands (signed out, disabled, password changed).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import import_module
from itertools import batched
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.dateparse import parse_datetime
from django.utils.formats import time_format
from django.utils.timesince import timesince

from chat.models import Ban, Block, Membership, Message, Mute, Role, Room

# Whoever is asking: a signed-in account (AUTH_USER_MODEL is Django's own User) or a visitor.
User = Account | AnonymousUser


@dataclass(frozen=True, slots=True)  # one per open socket: no __dict__
class Standing:
    role: Role
    can_read: bool
    banned: bool = False
    muted_until: datetime | None = None
    # In a direct message: why this person may read but not write there now (a block, DMs
    # turned off, the other account disabled), or None.
    closed_because: str | None = None

    @property
    def is_visitor(self) -> bool:
        return self.role == Role.VISITOR

    @property
    def is_moderator(self) -> bool:
        return self.role == Role.MODERATOR

    @property
    def is_muted(self) -> bool:
        return self.muted_until is not None and self.muted_until > timezone.now()


def standing(room: Room, user: User) -> Standing:
    found = _rooms_with_standing("id", room.pk, user)
    return _decide(room, user, found[0][1] if found else {})


def room_and_standing(slug: str, user: User) -> tuple[Room, Standing] | None:
    """The room by slug and the user's standing in it, read fresh in one query."""
    return _first_with_standing("slug", slug, user)


def room_and_standing_by_id(room_id: int, user: User) -> tuple[Room, Standing] | None:
    """The room by id and the user's standing in it, read fresh in one query."""
    return _first_with_standing("id", room_id, user)


def _first_with_standing(column: str, value: int | str, user: User) -> tuple[Room, Standing] | None:
    found = _rooms_with_standing(column, value, user)
    if not found:
        return None
    room, facts = found[0]
    return room, _decide(room, user, facts)


def _rooms_with_standing(column: str, value: int | str, user: User) -> list[tuple[Room, dict]]:
    """The room where `column` = `value`, with the user's membership role, ban and running mute
    (none for a visitor).

    Hand-written SQL read through a plain cursor: this runs on every page, socket and frame, and
    having the ORM build it (or even a plain filter) costs more CPU than the database takes to
    answer it.
    """
    viewer = user.pk if user.is_authenticated else None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_STANDING_SQL.format(column=column), [viewer, viewer, viewer, now, value])
        rows = cursor.fetchall()
    width = len(_ROOM_FIELDS)
    return [(_room_from_row(row[:width]), dict(zip(_FACTS, row[width:], strict=True))) for row in rows]


def _room_from_row(values: tuple) -> Room:
    """A Room from its columns as the database returns them, converted as the ORM would."""
    converted = []
    for field, value in zip(_ROOM_FIELDS, values, strict=True):
        column = field.get_col(Room._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            value = convert(value, column, connection)
        converted.append(value)
    return Room.from_db(connection.alias, [field.attname for field in _ROOM_FIELDS], converted)


_ROOM_FIELDS = Room._meta.concrete_fields
_FACTS = ("viewer_role", "viewer_banned", "viewer_muted_until")
_STANDING_SQL = (
    "SELECT " + ", ".join(f"r.{field.column}" for field in _ROOM_FIELDS) + ","
    f" (SELECT role FROM {Membership._meta.db_table} WHERE room_id = r.id AND user_id = %s) AS viewer_role,"
    f" EXISTS (SELECT 1 FROM {Ban._meta.db_table} WHERE room_id = r.id AND user_id = %s) AS viewer_banned,"
    f" (SELECT MAX(until) FROM {Mute._meta.db_table} WHERE room_id = r.id AND user_id = %s AND until > %s)"
    " AS viewer_muted_until"
    f" FROM {Room._meta.db_table} r WHERE r.{{column}} = %s"
)


def stored_datetime(value: datetime | str | None) -> datetime | None:
    """A timestamp from hand-written SQL: SQLite hands back UTC text (or a naive datetime for a
    plain column), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def _decide(room: Room, user: User, facts: dict) -> Standing:
    if not user.is_authenticated:
        return Standing(Role.VISITOR, can_read=room.is_approved and room.is_public)
    if room.is_direct:
        return _in_direct(room, user, facts)
    if user.is_staff:
        return Standing(Role.MODERATOR, can_read=True)
    role = facts.get("viewer_role")
    if role == Role.MODERATOR and room.is_approved:
        return Standing(Role.MODERATOR, can_read=True)
    if role == Role.MODERATOR:
        # A proposer sees their room while it waits for staff, but moderates it only once approved.
        return Standing(Role.MEMBER, can_read=room.status == Room.Status.PENDING)
    banned = bool(facts.get("viewer_banned"))
    can_read = room.is_approved and not banned and (room.is_public or role is not None)
    muted_until = stored_datetime(facts.get("viewer_muted_until"))
    return Standing(Role.MEMBER, can_read=can_read, banned=banned, muted_until=muted_until)


# Direct messages: a room of exactly two people, and nobody else's -------------------------------

DIRECTS_OFF = "Direct messages are turned off on this site."
DIRECT_OFF = f"{DIRECTS_OFF} You can still read this conversation."


def _in_direct(room: Room, user: Account, facts: dict) -> Standing:
    """Only its two people read or write a direct message: not staff, not site moderators, not
    anyone a membership could be given to (none can: see chat.moderation). Staff who are not in
    it stay moderators who cannot read: they act on its reported messages from the moderation
    queue, and see them nowhere else."""
    if facts.get("viewer_role") is None:
        return Standing(Role.MODERATOR if user.is_staff else Role.MEMBER, can_read=False)
    banned = bool(facts.get("viewer_banned"))
    return Standing(
        Role.MEMBER,
        can_read=room.is_approved and not banned,
        banned=banned,
        muted_until=stored_datetime(facts.get("viewer_muted_until")),
        closed_because=None if banned else why_direct_closed(room, user),
    )


def why_direct_closed(room: Room, user: Account) -> str | None:
    """Why one of a conversation's two people may not write in it now, or None (one query)."""
    if not settings.CHAT_DIRECT_MESSAGES_ENABLED:
        return DIRECT_OFF
    other = (
        Membership.objects.filter(room=room)
        .exclude(user_id=user.pk)
        .annotate(
            blocked_me=Exists(Block.objects.filter(blocker=OuterRef("user"), blocked=user.pk)),
            i_blocked=Exists(Block.objects.filter(blocker=user.pk, blocked=OuterRef("user"))),
        )
        .values_list("user__username", "user__is_active", "blocked_me", "i_blocked")
        .first()
    )
    if other is None:
        return "The other person in this conversation is gone."
    name, active, blocked_me, i_blocked = other
    return block_refusal(name, blocked_me=blocked_me, i_blocked=i_blocked) or (
        None if active else f"{name}'s account is disabled, so they can't read new messages."
    )


def block_refusal(name: str, blocked_me: bool, i_blocked: bool) -> str | None:
    """What each side of a block is told when they would write to the other."""
    if blocked_me:
        return f"You can't send messages to {name}: they have blocked you."
    if i_blocked:
        return f"You have blocked {name}. Unblock them to write to them again."
    return None


def why_not_react(room: Room, viewer: Standing) -> str | None:
    """Why this user may not react to messages in the room right now, or None if they may."""
    if viewer.is_visitor:
        return "Sign in to react to messages."
    if not viewer.can_read:
        return "You can't react to messages in this room."
    if viewer.closed_because:
        return viewer.closed_because
    if viewer.is_moderator:
        return None
    if room.is_locked:
        return "This room is locked: only moderators can react."
    if viewer.is_muted:
        return "You're muted in this room, so you can't react to messages either."
    return None


def may_signal_typing(room: Room, viewer: Standing) -> bool:
    """Whether "… is typing" may show this user: only people who may post (the rest send none)."""
    return why_not_react(room, viewer) is None


def ban_notice(room: Room) -> str:
    """What a banned user is told, on the page and on a socket closed by the ban."""
    return f"You have been banned from #{room.name}."


def shut_out_notice(room: Room, viewer: Standing) -> str:
    """What a socket that may no longer read its room is told as it closes."""
    if viewer.banned:
        return ban_notice(room)
    if room.status == Room.Status.REJECTED:
        return "This room was not approved."
    return "This room is private."


# Your own messages: only their author edits or deletes them ------------------------------------

NBSP = "\xa0"  # timesince joins number and unit with one
NOT_YOURS = "You can only change your own messages."
GONE = "That message was deleted or removed; there is nothing left to change."


def edit_window_open(message: Message) -> bool:
    """Whether the message is young enough to edit (CHAT_EDIT_WINDOW_SECONDS; 0 means always)."""
    window = settings.CHAT_EDIT_WINDOW_SECONDS
    return not window or timezone.now() - message.created_at < timedelta(seconds=window)


def why_not_edit(message: Message, user: User, viewer: Standing) -> str | None:
    """Why `user` (with `viewer`, their standing in the message's room) may not edit it now, or None."""
    refusal = why_not_delete(message, user, viewer)
    if refusal:
        return refusal
    if not edit_window_open(message):
        since = timezone.now() - timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS)
        return f"Messages can only be edited for {timesince(since).replace(NBSP, ' ')} after sending."
    if viewer.closed_because:
        return viewer.closed_because
    if viewer.is_moderator:
        return None
    if message.room.is_locked:
        return "This room is locked: only moderators can edit their messages."
    if viewer.is_muted:
        until = time_format(timezone.localtime(viewer.muted_until), "H:i T")
        return f"You're muted in this room until {until}, so you can't edit messages."
    return None


def why_not_delete(message: Message, user: User, viewer: Standing) -> str | None:
    """Authors may delete their own messages while they can read the room, muted or not."""
    if not user.is_authenticated or message.author_id != user.pk:
        return NOT_YOURS
    if not viewer.can_read:
        return "You can't change messages in this room."
    if message.deleted_at or message.removed_at:
        return GONE
    return None


# Sessions: an open socket acts for its user only while the session it opened with still does ----

SIGNED_OUT = "You have signed out. Sign in again to go on."
ACCOUNT_DISABLED = "This account is disabled."
PASSWORD_CHANGED = "Your password was changed, so this page was signed out. Reload it to go on."


class SessionEnded(Exception):
    """The socket's session no longer speaks for its user; the text says why, for the page."""


def session_tag(session_key: str | None) -> str:
    """A session named without its key, for events that cross the channel layer."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()


def check_session(user: User, session_key: str | None) -> None:
    """Reload the user's flags and password, then raise SessionEnded unless the session still
    signs them in, as Django checks it per request: it exists, is unexpired, names this user and
    carries the hash of their current password.

    With database sessions (the default) that is one small query for both; with other engines,
    a read of the user and one of the session (from the cache, for a cache engine).
    """
    if not user.is_authenticated:
        return
    if settings.SESSION_ENGINE == DATABASE_SESSIONS:
        stored = _reload_with_session(user, session_key)
    else:
        user.refresh_from_db(fields=RELOADED_FIELDS)
        engine = import_module(settings.SESSION_ENGINE)
        stored = _facts(engine.SessionStore(session_key).load() if session_key else {})
    if not user.is_active:
        raise SessionEnded(ACCOUNT_DISABLED)
    same_hash = constant_time_compare(stored.auth_hash, user.get_session_auth_hash())
    if not (same_hash and stored.user_id == str(user.pk)):
        raise SessionEnded(SIGNED_OUT)


DATABASE_SESSIONS = "django.contrib.sessions.backends.db"
# What a socket's frame re-reads of its user: whether they may act at all, and as whom.
RELOADED_FIELDS = ("is_staff", "is_superuser", "is_active", "password")
_RELOAD_WITH_SESSION_SQL = (
    "SELECT {fields}, (SELECT session_data FROM {sessions} WHERE session_key = %s AND expire_date > %s)"
    " FROM {accounts} WHERE id = %s"
)


def _reload_with_session(user: Account, session_key: str | None) -> "SessionFacts":
    sql = _RELOAD_WITH_SESSION_SQL.format(
        fields=", ".join(RELOADED_FIELDS), sessions=Session._meta.db_table, accounts=Account._meta.db_table
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [session_key or "", now, user.pk])
        row = cursor.fetchone()
    if row is None:
        raise SessionEnded(ACCOUNT_DISABLED)  # the account was deleted
    *values, session_data = row
    for field, value in zip(RELOADED_FIELDS, values, strict=True):
        setattr(user, field, bool(value) if field != "password" else value)
    return session_facts(session_data) if session_data else NO_SESSION


class SessionFacts(NamedTuple):
    """What a stored session says about who it signs in, the parts auth checks."""

    user_id: str | None
    backend: str | None
    auth_hash: str


NO_SESSION = SessionFacts(None, None, "")


@lru_cache(maxsize=4_096)
def session_facts(session_data: str) -> SessionFacts:
    """A stored session decoded (and its signature checked) once, not once per frame or page:
    the same text always decodes the same."""
    return _facts(DatabaseSessionStore().decode(session_data))


def _facts(data: dict) -> SessionFacts:
    return SessionFacts(data.get(SESSION_KEY), data.get(BACKEND_SESSION_KEY), data.get(HASH_SESSION_KEY, ""))


@dataclass(frozen=True)
class Authority:
    """What an account's open sockets rest on: the account active, its password (behind every
    session's hash) and the staff flag (moderator everywhere)."""

    is_active: bool
    is_staff: bool
    password: str

    @classmethod
    def of(cls, user: Account) -> "Authority":
        return cls(user.is_active, user.is_staff, user.password)


AUTHORITY_FIELDS = ("is_active", "is_staff", "password")


def authority_lost(before: Authority, after: Authority) -> str | None:
    """Why a change to an account ends every session of it (the notice for its sockets), or None."""
    if before.is_active and not after.is_active:
        return ACCOUNT_DISABLED
    if before.password != after.password:
        return PASSWORD_CHANGED
    return None


# Accounts read per query by stored_authorities: far below the bound-parameter limits of SQLite
# (32,766) and PostgreSQL (65,535), so one query covers every signed-in user of a typical process.
AUTHORITIES_PER_QUERY = 10_000


def stored_authorities(user_ids: Iterable[int]) -> dict[int, Authority]:
    """The authority of these accounts as stored now (a deleted account is missing): one query
    per AUTHORITIES_PER_QUERY accounts."""
    found: dict[int, Authority] = {}
    for chunk in batched(sorted(user_ids), AUTHORITIES_PER_QUERY):
        rows = Account.objects.filter(pk__in=chunk).values_list("pk", *AUTHORITY_FIELDS)
        found.update((pk, Authority(*facts)) for pk, *facts in rows)
    return found


def readable_rooms(user: User) -> QuerySet[Room]:
    """Approved rooms the user may open: public ones, plus private ones they belong to.

    Direct messages only for their two people: staff see every room but others' conversations.
    """
    rooms = Room.objects.filter(status=Room.Status.APPROVED)
    if user.is_authenticated and user.is_staff:
        own_direct = Membership.objects.filter(user=user, room__kind=Room.Kind.DIRECT).exclude(
            room__in=Ban.objects.filter(user=user).values("room")
        )
        return rooms.filter(Q(kind=Room.Kind.ROOM) | Q(pk__in=own_direct.values("room")))
    if not user.is_authenticated:
        return rooms.filter(is_public=True)
    private_ok = Membership.objects.filter(user=user).values("room")
    banned = Ban.objects.filter(user=user).values("room")
    return (rooms.filter(is_public=True) | rooms.filter(pk__in=private_ok)).exclude(pk__in=banned)


def readers(room: Room) -> QuerySet[Account]:
    """Everyone who may read the room now: `standing(room, user).can_read` for many users at once."""
    people = Account.objects.filter(is_active=True)
    memberships = Membership.objects.filter(room=room)
    if room.is_direct:  # its two people, unless banned there; never staff
        banned_here = Ban.objects.filter(room=room).values("user")
        return people.filter(pk__in=memberships.values("user")).exclude(pk__in=banned_here)
    moderators = memberships.filter(role=Role.MODERATOR).values("user")
    staff_or_moderator = Q(is_staff=True) | Q(pk__in=moderators)
    if room.status == Room.Status.PENDING:
        return people.filter(staff_or_moderator)
    if not room.is_approved:
        return people.filter(is_staff=True)
    others = people.exclude(pk__in=Ban.objects.filter(room=room).values("user"))
    if not room.is_public:
        others = others.filter(pk__in=memberships.values("user"))
    return people.filter(staff_or_moderator | Q(pk__in=others.values("pk")))
