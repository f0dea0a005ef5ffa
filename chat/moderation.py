"""Moderation: every action checks the actor's role now, takes effect, is recorded, and shows live.

The room page (through the consumer) and the Django admin both call these functions, so
the rules, the audit log and the live updates are the same wherever an action starts.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.text import slugify

from chat import broadcast, fragments, queries
from chat.forms import RoomSettingsForm
from chat.models import RESERVED_ROOM_SLUGS, AuditEntry, Ban, Membership, Message, Mute, Report, Role, Room
from chat.standing import Account, User, standing

Action = AuditEntry.Action


class NotAllowed(PermissionDenied):
    """Refused; the text says why, in words for the person who tried."""


class AlreadyReported(NotAllowed):
    """Not a fault: the report the member means to file is already in the queue."""


def require_moderator(room: Room, actor: User) -> None:
    if not standing(room, actor).is_moderator:
        raise NotAllowed("Only this room's moderators can do that.")


def require_ordinary_room(room: Room) -> None:
    """A direct message has no settings, roles or invitations: it is its two people's alone."""
    if room.is_direct:
        raise NotAllowed("That can't be done to a direct message.")


def require_staff(actor: Account) -> None:
    if not actor.is_staff:
        raise NotAllowed("Only staff can do that.")


# One sentence for every user a moderator may not name from the room page: it names nobody and
# says nothing of whether the id exists or is staff.
NOT_IN_ROOM = "That can only be done to someone who has taken part in this room."


def target_in_room(room: Room, actor: User, user_id: int) -> Account:
    """The user a moderator's frame names, if they have a standing in the room: they posted there,
    belong to it, or are muted or banned there. Anyone else, or an unknown id, gets NOT_IN_ROOM,
    so the room page cannot look up who exists or who is staff. (Staff act on anyone in the admin.)
    """
    require_moderator(room, actor)
    took_part = (
        Q(Exists(Message.objects.filter(room=room, author=OuterRef("pk"))))
        | Q(Exists(Membership.objects.filter(room=room, user=OuterRef("pk"))))
        | Q(Exists(Mute.objects.filter(room=room, user=OuterRef("pk"))))
        | Q(Exists(Ban.objects.filter(room=room, user=OuterRef("pk"))))
    )
    target = Account.objects.filter(took_part, pk=user_id).first()
    if target is None:
        raise NotAllowed(NOT_IN_ROOM)
    return target


def require_ordinary_member(room: Room, target: Account) -> None:
    """Moderators and staff are not muted or banned by their peers; staff change roles instead."""
    if standing(room, target).is_moderator:
        raise NotAllowed(f"{target} is a moderator here; staff can change that in the admin.")


def record(actor: Account, action: Action, room: Room | None = None, **details) -> AuditEntry:
    return AuditEntry.objects.create(actor=actor, action=action, room=room, **details)


# Messages ---------------------------------------------------------------------------------


@transaction.atomic
def remove_message(actor: Account, message: Message, reason: str = "") -> None:
    """Replace a message by a tombstone everywhere; its text stays stored for the audit log."""
    require_moderator(message.room, actor)
    if not message.removed_at:
        message.removed_at, message.removed_by = timezone.now(), actor
        message.save(update_fields=["removed_at", "removed_by"])
        record(
            actor,
            Action.REMOVE_MESSAGE,
            message.room,
            message=message,
            target_user=message.author,
            reason=reason,
        )
        broadcast.message_removed(message)
    # Reports filed before (or after) the removal are settled by it.
    resolve_reports_on(actor, message, "message removed")


@transaction.atomic
def delete_message(actor: Account, message: Message, reason: str = "") -> None:
    """Staff only: delete for good. Open browsers drop it; the log keeps who and what."""
    require_staff(actor)
    room, message_id = message.room, message.pk
    as_it_was = queries.Preceding(
        message.author_id, message.created_at, message.removed_at, message.deleted_at
    )
    record(
        actor,
        Action.DELETE_MESSAGE,
        room,
        target_user=message.author,
        reason=reason,
        detail=message.body[:200],
    )
    message.delete()
    broadcast.message_deleted(room, message_id, as_it_was)


@transaction.atomic
def report_message(reporter: Account, message: Message, reason: str = "") -> Report:
    if not standing(message.room, reporter).can_read or not reporter.is_authenticated:
        raise NotAllowed("You can't report messages in this room.")
    if message.author_id == reporter.pk:
        raise NotAllowed("You can't report your own message.")
    if message.deleted_at:
        raise NotAllowed("Its author deleted that message; there is nothing left to report.")
    _one_at_a_time(reporter)
    already = "You have already reported this message; a moderator will take a look."
    if Report.objects.filter(message=message, reporter=reporter, resolved_at__isnull=True).exists():
        raise AlreadyReported(already)
    wait = _wait(reporter.reports.all(), settings.CHAT_REPORTS_PER_USER, settings.CHAT_REPORT_WINDOW_SECONDS)
    if wait:
        raise NotAllowed(f"You have sent a lot of reports just now: you can report again in {wait}.")
    try:
        with transaction.atomic():  # a savepoint: the constraint catches what the check above missed
            report = Report.objects.create(message=message, reporter=reporter, reason=reason)
    except IntegrityError:
        raise AlreadyReported(already) from None
    record(
        reporter,
        Action.REPORT_MESSAGE,
        message.room,
        message=message,
        target_user=message.author,
        reason=reason,
    )
    return report


def _one_at_a_time(user: Account) -> None:
    """Lock the user's row for the transaction, so their concurrent requests are counted in turn."""
    Account.objects.select_for_update().filter(pk=user.pk).exists()


def _wait(made: QuerySet, limit: int, window_seconds: float) -> str | None:
    """How long until one more may be made, in words, if `limit` were made in the window; else None.

    `made` is the user's rows with a `created_at`; counting stops at the limit.
    """
    since = timezone.now() - timedelta(seconds=window_seconds)
    recent = list(
        made.filter(created_at__gte=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return None
    return fragments.wait_in_words((recent[-1] - since).total_seconds())


@transaction.atomic
def resolve_report(actor: Account, report: Report, resolution: str = "no action") -> None:
    require_moderator(report.message.room, actor)
    if report.resolved_at:
        return
    report.resolved_at, report.resolved_by, report.resolution = timezone.now(), actor, resolution
    report.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    record(actor, Action.RESOLVE_REPORT, report.message.room, message=report.message, detail=resolution)


def resolve_reports_on(actor: Account, message: Message, resolution: str) -> None:
    for report in message.reports.filter(resolved_at__isnull=True):
        resolve_report(actor, report, resolution)


@transaction.atomic
def clear_reactions(actor: Account, message: Message, reason: str = "") -> int:
    """Take every reaction off a message; returns how many there were."""
    require_moderator(message.room, actor)
    cleared, _ = message.reactions.all().delete()
    if cleared:
        detail = f"{cleared} reaction{'s' if cleared != 1 else ''}"
        record(actor, Action.CLEAR_REACTIONS, message.room, message=message, reason=reason, detail=detail)
        broadcast.reactions_changed(message)
    return cleared


# Users in a room ---------------------------------------------------------------------------


def mute(actor: Account, room: Room, target: Account, minutes: int, reason: str = "") -> Mute:
    return mute_until(actor, room, target, timezone.now() + timedelta(minutes=minutes), reason)


@transaction.atomic
def mute_until(actor: Account, room: Room, target: Account, until: datetime, reason: str = "") -> Mute:
    require_moderator(room, actor)
    require_ordinary_member(room, target)
    muted, _ = Mute.objects.update_or_create(
        room=room, user=target, defaults={"until": until, "reason": reason, "created_by": actor}
    )
    record(
        actor, Action.MUTE, room, target_user=target, reason=reason, detail=f"until {until:%Y-%m-%d %H:%M %Z}"
    )
    broadcast.standing_changed(room, target.pk)
    broadcast.moderation_panel(room)
    return muted


@transaction.atomic
def unmute(actor: Account, room: Room, target: Account) -> None:
    require_moderator(room, actor)
    Mute.objects.filter(room=room, user=target).delete()
    record(actor, Action.UNMUTE, room, target_user=target)
    broadcast.standing_changed(room, target.pk)
    broadcast.moderation_panel(room)


@transaction.atomic
def ban(actor: Account, room: Room, target: Account, reason: str = "") -> Ban:
    """Close the user's open sockets on the room at once; they can't come back until unbanned."""
    require_moderator(room, actor)
    require_ordinary_member(room, target)
    banned, _ = Ban.objects.update_or_create(
        room=room, user=target, defaults={"reason": reason, "created_by": actor}
    )
    record(actor, Action.BAN, room, target_user=target, reason=reason)
    # Reports against the user's messages here are settled by the ban, wherever it was made.
    for message in room.messages.filter(author=target, reports__resolved_at__isnull=True).distinct():
        resolve_reports_on(actor, message, "author banned")
    broadcast.standing_changed(room, target.pk)
    broadcast.moderation_panel(room)
    return banned


@transaction.atomic
def unban(actor: Account, room: Room, target: Account) -> None:
    require_moderator(room, actor)
    Ban.objects.filter(room=room, user=target).delete()
    record(actor, Action.UNBAN, room, target_user=target)
    broadcast.moderation_panel(room)


@transaction.atomic
def invite(actor: Account, room: Room, target: Account) -> Membership:
    require_ordinary_room(room)
    require_moderator(room, actor)
    membership, created = Membership.objects.get_or_create(room=room, user=target)
    if created:
        record(actor, Action.INVITE, room, target_user=target)
    return membership


@transaction.atomic
def set_role(actor: Account, room: Room, target: Account, role: Role | None) -> None:
    """Staff grant or take a role; None removes the membership. Open sockets redraw for it."""
    require_ordinary_room(room)
    require_staff(actor)
    if role is None:
        Membership.objects.filter(room=room, user=target).delete()
    else:
        Membership.objects.update_or_create(room=room, user=target, defaults={"role": role})
    record(actor, Action.SET_ROLE, room, target_user=target, detail=role or "none")
    broadcast.standing_changed(room, target.pk)


# Rooms -------------------------------------------------------------------------------------

# What moderators may change: the fields of the form they change it with.
SETTINGS_FIELDS = tuple(RoomSettingsForm.Meta.fields)


@transaction.atomic
def update_room(actor: Account, room: Room, reason: str = "", **changes) -> None:
    """Change room settings; every open browser sees the new header and form at once."""
    require_ordinary_room(room)
    require_moderator(room, actor)
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"not room settings: {sorted(unknown)}")
    stored = Room.objects.select_for_update().get(pk=room.pk)
    changed = {field: value for field, value in changes.items() if getattr(stored, field) != value}
    if not changed:
        return
    for field, value in changed.items():
        setattr(room, field, value)
    room.save(update_fields=list(changed))
    room_settings_changed(actor, room, changed, reason)


def room_settings_changed(actor: Account, room: Room, changed: dict, reason: str = "") -> None:
    """Record and show settings already saved (by update_room, or by the admin's own form)."""
    details = ", ".join(f"{field}={value}" for field, value in changed.items())
    record(actor, describe_change(changed), room, reason=reason, detail=details)
    broadcast.room_changed(room, access_narrowed=changed.get("is_public") is False)


def describe_change(changed: dict) -> Action:
    if set(changed) == {"is_locked"}:
        return Action.LOCK_ROOM if changed["is_locked"] else Action.UNLOCK_ROOM
    if set(changed) == {"slow_mode_seconds"}:
        return Action.SET_SLOW_MODE
    return Action.CHANGE_ROOM_SETTINGS


@transaction.atomic
def propose_room(proposer: Account, name: str, description: str = "", is_public: bool = True) -> Room:
    """A signed-in user proposes a room; hidden until staff approve, then run by its proposer
    (the membership says moderator from the start; standing grants it once approved)."""
    _one_at_a_time(proposer)
    limit, window = settings.CHAT_PROPOSALS_PER_USER, settings.CHAT_PROPOSAL_WINDOW_SECONDS
    wait = _wait(proposer.proposed_rooms.all(), limit, window)
    if wait:
        raise NotAllowed(f"You have proposed {limit} rooms recently: you can propose another in {wait}.")
    room = Room.objects.create(
        name=name,
        slug=unique_slug(name),
        description=description,
        is_public=is_public,
        status=Room.Status.PENDING,
        proposed_by=proposer,
    )
    Membership.objects.create(room=room, user=proposer, role=Role.MODERATOR)
    record(proposer, Action.PROPOSE_ROOM, room)
    return room


def unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "room"
    slug, n = base, 2
    while slug in RESERVED_ROOM_SLUGS or Room.is_direct_slug(slug) or Room.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def review_room(actor: Account, room: Room, approve: bool, reason: str = "") -> None:
    require_ordinary_room(room)
    require_staff(actor)
    room.status = Room.Status.APPROVED if approve else Room.Status.REJECTED
    room.save(update_fields=["status"])
    record(actor, Action.APPROVE_ROOM if approve else Action.REJECT_ROOM, room, reason=reason)
    # The proposer moderates from approval on: an open page gets the controls (or, rejected, closes).
    for moderator_id in room.memberships.filter(role=Role.MODERATOR).values_list("user", flat=True):
        broadcast.standing_changed(room, moderator_id)
