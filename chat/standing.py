"""Who a user is in a room right now: the one place read and post permissions are decided.

Everything that acts on a room (views, consumers, the admin) asks here at the moment of the
action, so a user demoted, muted or banned a second ago is refused at once.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

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
    if not user.is_authenticated or user.is_staff:
        return _decide(room, user, {})
    facts = _with_standing_of(Room.objects.filter(pk=room.pk), user).values(*STANDING_FACTS).first()
    return _decide(room, user, facts or {})


def room_and_standing(slug: str, user: User) -> tuple[Room, Standing] | None:
    """The room by slug and the user's standing in it, read fresh in one query."""
    room = _with_standing_of(Room.objects.filter(slug=slug), user).first()
    if room is None:
        return None
    return room, _decide(room, user, {fact: getattr(room, fact, None) for fact in STANDING_FACTS})


STANDING_FACTS = ("viewer_role", "viewer_banned", "viewer_muted_until")


def _with_standing_of(rooms: QuerySet[Room], user: User) -> QuerySet[Room]:
    """Each room annotated with the user's membership role, ban and running mute (subqueries)."""
    if not user.is_authenticated or user.is_staff:
        return rooms
    mine = {"room": OuterRef("pk"), "user": user}
    return rooms.annotate(
        viewer_role=Subquery(Membership.objects.filter(**mine).values("role")[:1]),
        viewer_banned=Exists(Ban.objects.filter(**mine)),
        viewer_muted_until=Subquery(
            Mute.objects.filter(**mine, until__gt=timezone.now()).order_by("-until").values("until")[:1]
        ),
    )


def _decide(room: Room, user: User, facts: dict) -> Standing:
    if not user.is_authenticated:
        return Standing(Role.VISITOR, can_read=room.is_approved and room.is_public)
    if user.is_staff:
        return Standing(Role.MODERATOR, can_read=True)
    role = facts.get("viewer_role")
    if role == Role.MODERATOR:
        # The proposer moderates their room from the start: they see it while pending, not once rejected.
        return Standing(Role.MODERATOR, can_read=room.status != Room.Status.REJECTED)
    banned = bool(facts.get("viewer_banned"))
    can_read = room.is_approved and not banned and (room.is_public or role is not None)
    muted_until = facts.get("viewer_muted_until")
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
