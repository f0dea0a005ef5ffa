"""Direct messages and blocking: starting the one conversation two people share, and blocks.

A direct message is a Room of kind DIRECT (private, approved, two memberships, slug
`dm-<low id>-<high id>`), so it is stored, live, counted and rendered exactly as rooms are.
Who may read or write in it is decided in chat/standing.py, like everything else.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from chat import broadcast
from chat.models import Block, Membership, Role, Room, direct_slug
from chat.standing import DIRECTS_OFF, Account, block_refusal


class Refused(Exception):
    """The conversation can't be started; the text says why, for the person who tried."""


NOT_YOURSELF = "That's you: direct messages are for talking with someone else."


def why_not_start(user: Account, other: Account) -> str | None:
    """Why `user` may not open a conversation with `other` now, or None if they may."""
    if not settings.CHAT_DIRECT_MESSAGES_ENABLED:
        return DIRECTS_OFF
    if other.pk == user.pk:
        return NOT_YOURSELF
    blocks = set(
        Block.objects.filter(blocker__in=(user.pk, other.pk), blocked__in=(user.pk, other.pk)).values_list(
            "blocker_id", flat=True
        )
    )
    return block_refusal(other.username, blocked_me=other.pk in blocks, i_blocked=user.pk in blocks)


def conversation(user: Account, other: Account) -> Room | None:
    """The conversation of these two people, if it was ever started."""
    return Room.objects.filter(kind=Room.Kind.DIRECT, slug=direct_slug(user.pk, other.pk)).first()


def start(user: Account, other: Account) -> Room:
    """The one conversation of these two people, created on first use. Two starts at once (two
    tabs, or both people) make one room: the slug is unique, and the second takes the first's."""
    refusal = why_not_start(user, other)
    if refusal:
        raise Refused(refusal)
    slug = direct_slug(user.pk, other.pk)
    first, second = sorted((user, other), key=lambda person: person.pk)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                kind=Room.Kind.DIRECT,
                slug=slug,
                # For the audit log and the moderation queue; each person sees the other's name.
                name=f"{first.username} & {second.username}"[:80],
                is_public=False,
                status=Room.Status.APPROVED,
            )
            Membership.objects.bulk_create(
                Membership(room=room, user=person, role=Role.MEMBER) for person in (first, second)
            )
    except IntegrityError:
        room = Room.objects.get(slug=slug)
    return room


@transaction.atomic
def block(blocker: Account, blocked: Account) -> None:
    """No direct messages between them from now on, either way, until the blocker unblocks."""
    if blocker.pk == blocked.pk:
        raise Refused("You can't block yourself.")
    _, created = Block.objects.get_or_create(blocker=blocker, blocked=blocked)
    if created:
        _redraw(blocker, blocked)


@transaction.atomic
def unblock(blocker: Account, blocked: Account) -> None:
    deleted, _ = Block.objects.filter(blocker=blocker, blocked=blocked).delete()
    if deleted:
        _redraw(blocker, blocked)


def _redraw(first: Account, second: Account) -> None:
    """Open pages of their conversation re-check who may write and redraw the form (after commit)."""
    room = conversation(first, second)
    if room is not None:
        for person in (first, second):
            broadcast.standing_changed(room, person.pk)


def has_blocked(blocker: Account, blocked: Account) -> bool:
    return Block.objects.filter(blocker=blocker, blocked=blocked).exists()
