"""Helpers shared by the moderation tests: people with a role in a room, and the DB as a snapshot."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from chat.models import AuditEntry, Ban, Membership, Message, Mute, Report, Role, Room

TOMBSTONE = "Message removed by a moderator"


FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str, **extra: object) -> AbstractBaseUser:
    """A user who signs in with force_login (no password: hashing one takes a noticeable while)."""
    return get_user_model().objects.create_user(username=username, **extra)


def make_staff(username: str = "sam") -> AbstractBaseUser:
    """A staff member who can also use the admin."""
    return make_user(username, is_staff=True, is_superuser=True)


def make_moderator(room: Room, username: str = "mona") -> AbstractBaseUser:
    user = make_user(username)
    Membership.objects.create(room=room, user=user, role=Role.MODERATOR)
    return user


def make_member(room: Room, user: AbstractBaseUser) -> AbstractBaseUser:
    Membership.objects.create(room=room, user=user, role=Role.MEMBER)
    return user


def private_room(slug: str = "secret", name: str = "Secret") -> Room:
    return Room.objects.create(slug=slug, name=name, is_public=False)


def pending_room(proposer: AbstractBaseUser, slug: str = "garden", name: str = "Garden") -> Room:
    room = Room.objects.create(slug=slug, name=name, status=Room.Status.PENDING, proposed_by=proposer)
    Membership.objects.create(room=room, user=proposer, role=Role.MODERATOR)
    return room


def snapshot() -> dict[str, list[dict]]:
    """Everything moderation can change, to compare before and after a refused action."""
    return {
        "rooms": list(Room.objects.order_by("pk").values()),
        "messages": list(Message.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values("room", "user", "role")),
        "mutes": list(Mute.objects.order_by("pk").values("room", "user", "until", "reason")),
        "bans": list(Ban.objects.order_by("pk").values("room", "user", "reason")),
        "reports": list(Report.objects.order_by("pk").values()),
        "audit": list(AuditEntry.objects.order_by("pk").values()),
    }


def audit_rows() -> list[tuple]:
    """The audit log, oldest first, as (actor, action, room, target user, message, reason, detail)."""
    return list(
        AuditEntry.objects.order_by("pk").values_list(
            "actor__username", "action", "room__slug", "target_user__username", "message", "reason", "detail"
        )
    )
