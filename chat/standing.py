"""Who a user is in a room right now: the one place read and post permissions are decided.

Everything that acts on a room (views, consumers, the admin) asks here at the moment of the
action, so a user demoted, muted or banned a second ago is refused at once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat.models import Ban, Membership, Mute, Role, Room

# Whoever is asking: a signed-in account (AUTH_USER_MODEL is Django's own User) or a visitor.
User = Account | AnonymousUser


@dataclass(frozen=True)
class Standing:
    role: Role
    can_read: bool
    banned: bool = False
    muted_until: datetime | None = None

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
    return _decide(room, user, vars(found[0]) if found else {})


def room_and_standing(slug: str, user: User) -> tuple[Room, Standing] | None:
    """The room by slug and the user's standing in it, read fresh in one query."""
    found = _rooms_with_standing("slug", slug, user)
    return (found[0], _decide(found[0], user, vars(found[0]))) if found else None


def _rooms_with_standing(column: str, value: object, user: User) -> list[Room]:
    """The room where `column` = `value`, with the user's membership role, ban and running mute.

    Hand-written SQL: this runs on every page and socket, and building the same query with
    three ORM subqueries costs more CPU than the database takes to answer it.
    """
    if not user.is_authenticated or user.is_staff:
        return list(Room.objects.filter(**{column: value}))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [user.pk, user.pk, user.pk, now, value]
    return list(Room.objects.raw(_STANDING_SQL.format(column=column), params))


_STANDING_SQL = (
    "SELECT r.*,"
    f" (SELECT role FROM {Membership._meta.db_table} WHERE room_id = r.id AND user_id = %s) AS viewer_role,"
    f" EXISTS (SELECT 1 FROM {Ban._meta.db_table} WHERE room_id = r.id AND user_id = %s) AS viewer_banned,"
    f" (SELECT MAX(until) FROM {Mute._meta.db_table} WHERE room_id = r.id AND user_id = %s AND until > %s)"
    " AS viewer_muted_until"
    f" FROM {Room._meta.db_table} r WHERE r.{{column}} = %s"
)


def _stored_datetime(value: datetime | str | None) -> datetime | None:
    """A timestamp from hand-written SQL: SQLite hands back UTC text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
    return value


def _decide(room: Room, user: User, facts: dict) -> Standing:
    if not user.is_authenticated:
        return Standing(Role.VISITOR, can_read=room.is_approved and room.is_public)
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
    muted_until = _stored_datetime(facts.get("viewer_muted_until"))
    return Standing(Role.MEMBER, can_read=can_read, banned=banned, muted_until=muted_until)


def ban_notice(room: Room) -> str:
    """What a banned user is told, on the page and on a socket closed by the ban."""
    return f"You have been banned from #{room.name}."


def readable_rooms(user: User) -> QuerySet[Room]:
    """Approved rooms the user may open: public ones, plus private ones they belong to."""
    rooms = Room.objects.filter(status=Room.Status.APPROVED)
    if user.is_authenticated and user.is_staff:
        return rooms
    if not user.is_authenticated:
        return rooms.filter(is_public=True)
    private_ok = Membership.objects.filter(user=user).values("room")
    banned = Ban.objects.filter(user=user).values("room")
    return (rooms.filter(is_public=True) | rooms.filter(pk__in=private_ok)).exclude(pk__in=banned)
