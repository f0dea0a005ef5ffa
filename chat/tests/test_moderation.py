"""Moderation rules in chat.moderation, chat.standing and chat.services, without any transport.

Every action is tried by every role: allowed ones take effect and are written to the audit
log; refused ones raise NotAllowed with a reason, change nothing and leave no audit entry.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import moderation, services
from chat.models import AuditEntry, Ban, Membership, Message, Mute, Report, Role, Room
from chat.moderation import NotAllowed
from chat.standing import Account, User, standing
from chat.tests.support import (
    audit_rows,
    make_member,
    make_moderator,
    make_staff,
    make_user,
    pending_room,
    private_room,
    snapshot,
)

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """The lobby with one person of each role, a message by bob, alice's report on it,
    dan muted, erin banned, and a room waiting for approval proposed by carol."""

    room: Room
    elsewhere: Room
    pending: Room
    staff: Account
    moderator: Account
    co_moderator: Account
    other_moderator: Account
    member: Account
    author: Account
    bystander: Account
    muted: Account
    banned: Account
    message: Message
    report: Report

    def actor(self, role: str) -> Account:
        # The services take accounts; a visitor is passed anyway to prove they refuse one at run time.
        return {
            "staff": self.staff,
            "moderator": self.moderator,
            "moderator elsewhere": self.other_moderator,
            "member": self.member,
            "visitor": cast(Account, AnonymousUser()),
        }[role]


@pytest.fixture
def world(lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account) -> World:
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")
    dan, erin = make_user("dan"), make_user("erin")
    Mute.objects.create(room=lobby, user=dan, until=timezone.now() + timedelta(hours=1), reason="shouting")
    Ban.objects.create(room=lobby, user=erin, reason="spam")
    return World(
        room=lobby,
        elsewhere=other_room,
        pending=pending_room(carol),
        staff=make_staff(),
        moderator=make_moderator(lobby, "mona"),
        co_moderator=make_moderator(lobby, "mia"),
        other_moderator=make_moderator(other_room, "otto"),
        member=alice,
        author=bob,
        bystander=carol,
        muted=dan,
        banned=erin,
        message=message,
        report=Report.objects.create(message=message, reporter=alice, reason="spam"),
    )


ACTIONS: dict[str, Callable[[World, Account], object]] = {
    "remove message": lambda w, actor: moderation.remove_message(actor, w.message, "spam"),
    "resolve report": lambda w, actor: moderation.resolve_report(actor, w.report, "handled"),
    "mute": lambda w, actor: moderation.mute(actor, w.room, w.author, 10, "shouting"),
    "unmute": lambda w, actor: moderation.unmute(actor, w.room, w.muted),
    "ban": lambda w, actor: moderation.ban(actor, w.room, w.author, "spam"),
    "unban": lambda w, actor: moderation.unban(actor, w.room, w.banned),
    "invite": lambda w, actor: moderation.invite(actor, w.room, w.bystander),
    "lock room": lambda w, actor: moderation.update_room(actor, w.room, is_locked=True),
    "change settings": lambda w, actor: moderation.update_room(
        actor, w.room, description="Be nice", slow_mode_seconds=30, is_public=False
    ),
    "delete message": lambda w, actor: moderation.delete_message(actor, w.message, "illegal"),
    "set role": lambda w, actor: moderation.set_role(actor, w.room, w.author, Role.MODERATOR),
    "review room": lambda w, actor: moderation.review_room(actor, w.pending, approve=True),
    "report message": lambda w, actor: moderation.report_message(actor, w.message, "rude"),
}

MODERATOR_ACTIONS = [
    "remove message",
    "resolve report",
    "mute",
    "unmute",
    "ban",
    "unban",
    "invite",
    "lock room",
    "change settings",
]
STAFF_ACTIONS = ["delete message", "set role", "review room"]
ONLY_MODERATORS = "Only this room's moderators can do that."
ONLY_STAFF = "Only staff can do that."

REFUSALS = (
    [
        pytest.param(action, role, ONLY_MODERATORS, id=f"{action}-by-{role}")
        for action in MODERATOR_ACTIONS
        for role in ("member", "visitor", "moderator elsewhere")
    ]
    + [
        pytest.param(action, role, ONLY_STAFF, id=f"{action}-by-{role}")
        for action in STAFF_ACTIONS
        for role in ("moderator", "member", "visitor")
    ]
    + [
        pytest.param(
            "report message", "visitor", "You can't report messages in this room.", id="report-by-visitor"
        )
    ]
)


@pytest.mark.parametrize(("action", "role", "reason"), REFUSALS)
def test_refused_action_says_why_and_changes_nothing(
    world: World, action: str, role: str, reason: str
) -> None:
    before = snapshot()

    with pytest.raises(NotAllowed) as refusal:
        ACTIONS[action](world, world.actor(role))

    assert str(refusal.value) == reason
    assert snapshot() == before
    assert not AuditEntry.objects.exists()


# Each allowed action: its effect and its audit entry ------------------------------------------

BY_MODERATORS = pytest.mark.parametrize("role", ["staff", "moderator"])


def only_audit_row() -> tuple:
    rows = audit_rows()
    assert len(rows) == 1, rows
    return rows[0]


@BY_MODERATORS
def test_remove_message_leaves_the_text_stored_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["remove message"](world, actor)

    stored = Message.objects.get(pk=world.message.pk)
    assert stored.removed_at is not None and stored.removed_by == actor
    assert stored.body == "buy cheap watches"
    # The open report on it is dealt with too, so the moderation queue doesn't show it any more.
    report = Report.objects.get(pk=world.report.pk)
    assert report.resolved_at is not None
    assert (report.resolved_by, report.resolution) == (actor, "message removed")
    assert audit_rows() == [
        (actor.username, "remove message", "lobby", "bob", stored.pk, "spam", ""),
        (actor.username, "resolve report", "lobby", None, stored.pk, "", "message removed"),
    ]


def test_removing_a_removed_message_again_is_not_logged_twice(world: World) -> None:
    ACTIONS["remove message"](world, world.moderator)
    first_removal = Message.objects.get(pk=world.message.pk).removed_at

    ACTIONS["remove message"](world, world.staff)

    assert Message.objects.get(pk=world.message.pk).removed_at == first_removal
    assert [row[1] for row in audit_rows()] == ["remove message", "resolve report"]


@BY_MODERATORS
def test_resolve_report_marks_it_resolved_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["resolve report"](world, actor)

    report = Report.objects.get(pk=world.report.pk)
    assert report.resolved_at is not None
    assert (report.resolved_by, report.resolution) == (actor, "handled")
    assert only_audit_row() == (
        actor.username,
        "resolve report",
        "lobby",
        None,
        world.message.pk,
        "",
        "handled",
    )


@BY_MODERATORS
def test_mute_stops_posting_for_the_duration_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["mute"](world, actor)

    muted = Mute.objects.get(room=world.room, user=world.author)
    expected_until = timezone.now() + timedelta(minutes=10)
    assert abs((muted.until - expected_until).total_seconds()) < 5
    assert (muted.reason, muted.created_by) == ("shouting", actor)
    assert standing(world.room, world.author).is_muted
    assert only_audit_row() == (
        actor.username,
        "mute",
        "lobby",
        "bob",
        None,
        "shouting",
        f"until {muted.until:%Y-%m-%d %H:%M %Z}",
    )


def test_muting_again_replaces_the_mute(world: World) -> None:
    moderation.mute(world.moderator, world.room, world.author, 10)

    moderation.mute(world.moderator, world.room, world.author, 60, "still shouting")

    muted = Mute.objects.get(room=world.room, user=world.author)
    assert muted.until > timezone.now() + timedelta(minutes=59)
    assert muted.reason == "still shouting"


@BY_MODERATORS
def test_unmute_lets_the_user_post_again_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["unmute"](world, actor)

    assert not Mute.objects.filter(user=world.muted).exists()
    assert not standing(world.room, world.muted).is_muted
    assert only_audit_row() == (actor.username, "unmute", "lobby", "dan", None, "", "")


@BY_MODERATORS
def test_ban_shuts_the_user_out_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["ban"](world, actor)

    ban = Ban.objects.get(room=world.room, user=world.author)
    assert (ban.reason, ban.created_by) == ("spam", actor)
    assert standing(world.room, world.author).can_read is False
    assert audit_rows() == [
        (actor.username, "ban", "lobby", "bob", None, "spam", ""),
        (actor.username, "resolve report", "lobby", None, world.message.pk, "", "author banned"),
    ]


@BY_MODERATORS
def test_a_ban_settles_the_open_reports_on_the_users_messages_in_that_room_only(
    world: World, role: str
) -> None:
    elsewhere = Message.objects.create(room=world.elsewhere, author=world.author, body="also here")
    report_elsewhere = Report.objects.create(message=elsewhere, reporter=world.member)

    ACTIONS["ban"](world, world.actor(role))

    world.report.refresh_from_db()
    report_elsewhere.refresh_from_db()
    assert (world.report.resolution, world.report.resolved_by) == ("author banned", world.actor(role))
    assert report_elsewhere.resolved_at is None


@BY_MODERATORS
def test_unban_lets_the_user_back_in_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["unban"](world, actor)

    assert not Ban.objects.filter(user=world.banned).exists()
    assert standing(world.room, world.banned).can_read is True
    assert only_audit_row() == (actor.username, "unban", "lobby", "erin", None, "", "")


@BY_MODERATORS
def test_invite_makes_a_member_and_is_logged_once(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["invite"](world, actor)
    ACTIONS["invite"](world, actor)

    membership = Membership.objects.get(room=world.room, user=world.bystander)
    assert membership.role == Role.MEMBER
    assert only_audit_row() == (actor.username, "invite", "lobby", "carol", None, "", "")


def test_invited_user_can_read_a_private_room(world: World) -> None:
    secret = private_room()
    Membership.objects.create(room=secret, user=world.moderator, role=Role.MODERATOR)
    assert standing(secret, world.bystander).can_read is False

    moderation.invite(world.moderator, secret, world.bystander)

    assert standing(secret, world.bystander).can_read is True


@BY_MODERATORS
def test_lock_room_is_logged_as_a_lock(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["lock room"](world, actor)

    assert Room.objects.get(pk=world.room.pk).is_locked is True
    assert only_audit_row() == (actor.username, "lock room", "lobby", None, None, "", "is_locked=True")


def test_unlock_and_slow_mode_have_their_own_audit_names(world: World) -> None:
    moderation.update_room(world.moderator, world.room, is_locked=True)

    moderation.update_room(world.moderator, world.room, is_locked=False)
    moderation.update_room(world.moderator, world.room, slow_mode_seconds=10, reason="heated")

    assert [(row[1], row[5], row[6]) for row in audit_rows()] == [
        ("lock room", "", "is_locked=True"),
        ("unlock room", "", "is_locked=False"),
        ("set slow mode", "heated", "slow_mode_seconds=10"),
    ]
    assert Room.objects.get(pk=world.room.pk).slow_mode_seconds == 10


@BY_MODERATORS
def test_change_settings_stores_them_and_logs_what_changed(world: World, role: str) -> None:
    actor = world.actor(role)

    ACTIONS["change settings"](world, actor)

    room = Room.objects.get(pk=world.room.pk)
    assert (room.description, room.slow_mode_seconds, room.is_public) == ("Be nice", 30, False)
    (actor_name, action, slug, _, _, _, detail) = only_audit_row()
    assert (actor_name, action, slug) == (actor.username, "change room settings", "lobby")
    assert set(detail.split(", ")) == {"description=Be nice", "slow_mode_seconds=30", "is_public=False"}


def test_settings_that_do_not_change_anything_are_not_logged(world: World) -> None:
    moderation.update_room(world.moderator, world.room, is_locked=False, is_public=True, slow_mode_seconds=0)

    assert not AuditEntry.objects.exists()


def test_update_room_rejects_fields_that_are_not_settings(world: World) -> None:
    with pytest.raises(ValueError, match="status"):
        moderation.update_room(world.moderator, world.room, status=Room.Status.REJECTED)

    assert Room.objects.get(pk=world.room.pk).status == Room.Status.APPROVED


def test_delete_message_is_staff_only_and_keeps_the_text_in_the_log(world: World) -> None:
    ACTIONS["delete message"](world, world.staff)

    assert not Message.objects.filter(pk=world.message.pk).exists()
    assert only_audit_row() == ("sam", "delete message", "lobby", "bob", None, "illegal", "buy cheap watches")


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.MEMBER])
def test_set_role_is_staff_only_and_logged(world: World, role: Role) -> None:
    moderation.set_role(world.staff, world.room, world.author, role)

    assert Membership.objects.get(room=world.room, user=world.author).role == role
    expected_role = Role.MODERATOR if role == Role.MODERATOR else Role.MEMBER
    assert standing(world.room, world.author).role == expected_role
    assert only_audit_row() == ("sam", "set role", "lobby", "bob", None, "", role)


def test_set_role_none_takes_the_membership_away(world: World) -> None:
    moderation.set_role(world.staff, world.room, world.moderator, None)

    assert not Membership.objects.filter(room=world.room, user=world.moderator).exists()
    assert standing(world.room, world.moderator).role == Role.MEMBER
    assert only_audit_row() == ("sam", "set role", "lobby", "mona", None, "", "none")


@pytest.mark.parametrize(
    ("approve", "status", "action"),
    [(True, Room.Status.APPROVED, "approve room"), (False, Room.Status.REJECTED, "reject room")],
)
def test_review_room_by_staff_sets_the_status_and_is_logged(
    world: World, approve: bool, status: str, action: str
) -> None:
    moderation.review_room(world.staff, world.pending, approve=approve, reason="looks fine")

    assert Room.objects.get(pk=world.pending.pk).status == status
    assert only_audit_row() == ("sam", action, "garden", None, None, "looks fine", "")


def test_proposer_cannot_approve_their_own_room(world: World) -> None:
    with pytest.raises(NotAllowed, match=ONLY_STAFF):
        moderation.review_room(world.bystander, world.pending, approve=True)

    assert Room.objects.get(pk=world.pending.pk).status == Room.Status.PENDING
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", ["member", "moderator", "staff"])
def test_report_message_by_a_reader_creates_a_report_and_is_logged(world: World, role: str) -> None:
    actor = world.actor(role)
    # The member's earlier report was dealt with: one may report the same message again.
    Report.objects.filter(pk=world.report.pk).update(resolved_at=timezone.now(), resolution="no action")

    report = ACTIONS["report message"](world, actor)

    assert isinstance(report, Report)
    assert Report.objects.filter(pk=report.pk, reporter=actor, reason="rude", resolved_at=None).exists()
    assert only_audit_row() == (
        actor.username,
        "report message",
        "lobby",
        "bob",
        world.message.pk,
        "rude",
        "",
    )


# Special refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("demotion", [Role.MEMBER, None], ids=["to-member", "membership-removed"])
def test_moderator_demoted_a_moment_ago_is_refused(world: World, demotion: Role | None) -> None:
    moderator = world.moderator  # the same object, as an open socket or admin session would hold
    moderation.set_role(world.staff, world.room, moderator, demotion)
    before = snapshot()

    with pytest.raises(NotAllowed, match=ONLY_MODERATORS):
        moderation.remove_message(moderator, world.message)
    with pytest.raises(NotAllowed, match=ONLY_MODERATORS):
        moderation.ban(moderator, world.room, world.author)

    assert snapshot() == before


def test_user_promoted_a_moment_ago_may_moderate(world: World) -> None:
    moderation.set_role(world.staff, world.room, world.member, Role.MODERATOR)

    moderation.remove_message(world.member, world.message)

    assert Message.objects.get(pk=world.message.pk).removed_by == world.member


@pytest.mark.parametrize("sanction", ["mute", "ban"])
@pytest.mark.parametrize(
    ("actor_role", "target"),
    [("moderator", "co_moderator"), ("moderator", "staff"), ("staff", "co_moderator")],
    ids=["moderator-on-moderator", "moderator-on-staff", "staff-on-moderator"],
)
def test_moderators_and_staff_cannot_be_muted_or_banned(
    world: World, sanction: str, actor_role: str, target: str
) -> None:
    actor, target_user = world.actor(actor_role), getattr(world, target)
    before = snapshot()

    with pytest.raises(NotAllowed) as refusal:
        if sanction == "mute":
            moderation.mute(actor, world.room, target_user, 10)
        else:
            moderation.ban(actor, world.room, target_user)

    assert str(refusal.value) == f"{target_user} is a moderator here; staff can change that in the admin."
    assert snapshot() == before


def test_report_on_your_own_message_is_refused(world: World) -> None:
    before = snapshot()

    with pytest.raises(NotAllowed, match=re.escape("You can't report your own message.")):
        moderation.report_message(world.author, world.message, "oops")

    assert snapshot() == before


def test_banned_user_cannot_report(world: World) -> None:
    before = snapshot()

    with pytest.raises(NotAllowed, match=re.escape("You can't report messages in this room.")):
        moderation.report_message(world.banned, world.message)

    assert snapshot() == before


def test_outsider_cannot_report_in_a_private_room(world: World) -> None:
    secret = private_room()
    secret_message = Message.objects.create(room=secret, author=world.moderator, body="between us")

    with pytest.raises(NotAllowed, match=re.escape("You can't report messages in this room.")):
        moderation.report_message(world.member, secret_message)

    assert not Report.objects.filter(message=secret_message).exists()


# Proposing rooms ------------------------------------------------------------------------------


def test_proposed_room_is_pending_and_run_by_its_proposer(alice: Account) -> None:
    room = moderation.propose_room(alice, "Book Club", "Monthly reads", is_public=False)

    room.refresh_from_db()
    assert (room.name, room.slug, room.description) == ("Book Club", "book-club", "Monthly reads")
    assert (room.status, room.is_public, room.proposed_by) == (Room.Status.PENDING, False, alice)
    assert Membership.objects.get(room=room, user=alice).role == Role.MODERATOR
    assert audit_rows() == [("alice", "propose room", "book-club", None, None, "", "")]


def test_proposed_rooms_get_unique_slugs(lobby: Room, alice: Account, bob: Account) -> None:
    first = moderation.propose_room(alice, "Book Club")
    second = moderation.propose_room(bob, "Book club!")
    third = moderation.propose_room(bob, "Lobby")

    assert [first.slug, second.slug, third.slug] == ["book-club", "book-club-2", "lobby-2"]


@pytest.mark.parametrize("name", ["Propose", "propose", "PROPOSE!"])
def test_a_proposed_room_never_takes_the_reserved_slug(alice: Account, name: str) -> None:
    room = moderation.propose_room(alice, name)

    assert room.slug != "propose"
    assert room.slug == "propose-2"


def test_a_name_without_letters_still_gets_a_slug(alice: Account) -> None:
    room = moderation.propose_room(alice, "!!!")

    assert room.slug == "room"


# Standing: who may read -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "can_read", "role"),
    [
        ("visitor", False, Role.VISITOR),
        ("outsider", False, Role.MEMBER),
        ("member", True, Role.MEMBER),
        ("moderator", True, Role.MODERATOR),
        ("staff", True, Role.MODERATOR),
    ],
)
def test_private_room_is_readable_by_members_and_staff_only(
    alice: Account, bob: Account, who: str, can_read: bool, role: str
) -> None:
    secret = private_room()
    people: dict[str, User] = {
        "visitor": AnonymousUser(),
        "outsider": alice,
        "member": make_member(secret, bob),
        "moderator": make_moderator(secret),
        "staff": make_staff(),
    }

    viewer = standing(secret, people[who])

    assert (viewer.can_read, viewer.role) == (can_read, role)


def test_banned_user_cannot_read_a_public_room(lobby: Room, alice: Account) -> None:
    Ban.objects.create(room=lobby, user=alice)

    viewer = standing(lobby, alice)

    assert (viewer.can_read, viewer.banned) == (False, True)


def test_banned_member_cannot_read_a_private_room(alice: Account) -> None:
    secret = private_room()
    make_member(secret, alice)
    Ban.objects.create(room=secret, user=alice)

    assert standing(secret, alice).can_read is False


@pytest.mark.parametrize(
    ("who", "can_read"),
    [("visitor", False), ("member", False), ("invited member", False), ("proposer", True), ("staff", True)],
)
def test_pending_room_is_invisible_except_to_staff_and_its_proposer(
    alice: Account, bob: Account, carol: Account, who: str, can_read: bool
) -> None:
    garden = pending_room(carol)
    people: dict[str, User] = {
        "visitor": AnonymousUser(),
        "member": alice,
        "invited member": make_member(garden, bob),
        "proposer": carol,
        "staff": make_staff(),
    }

    assert standing(garden, people[who]).can_read is can_read


def test_a_mute_that_ran_out_no_longer_counts(lobby: Room, alice: Account) -> None:
    Mute.objects.create(room=lobby, user=alice, until=timezone.now() - timedelta(seconds=1))

    assert standing(lobby, alice).is_muted is False


# Posting under moderation ---------------------------------------------------------------------


def refusal_of(outcome: services.PostOutcome) -> str:
    assert outcome.message is None, "the message should have been refused"
    return " ".join(map(str, outcome.form.non_field_errors()))


def test_locked_room_refuses_members(lobby: Room, alice: Account) -> None:
    Room.objects.filter(pk=lobby.pk).update(is_locked=True)
    lobby.refresh_from_db()

    outcome = services.post_message(lobby, alice, {"message": "hello?"})

    assert refusal_of(outcome) == "This room is locked: only moderators can post."
    assert not Message.objects.exists()


@pytest.mark.parametrize("who", ["moderator", "staff"])
def test_locked_room_still_takes_moderators_posts(lobby: Room, who: str) -> None:
    Room.objects.filter(pk=lobby.pk).update(is_locked=True)
    lobby.refresh_from_db()
    poster = make_moderator(lobby) if who == "moderator" else make_staff()

    outcome = services.post_message(lobby, poster, {"message": "announcement"})

    assert outcome.message is not None
    assert list(Message.objects.values_list("body", flat=True)) == ["announcement"]


def test_muted_user_is_refused_with_the_time_the_mute_ends(lobby: Room, alice: Account) -> None:
    mute = Mute.objects.create(room=lobby, user=alice, until=timezone.now() + timedelta(minutes=10))

    outcome = services.post_message(lobby, alice, {"message": "let me talk"})

    until = timezone.localtime(mute.until).strftime("%H:%M")
    assert refusal_of(outcome).startswith(f"You're muted in this room until {until}")
    assert not Message.objects.exists()


def test_user_muted_in_another_room_may_post_here(lobby: Room, other_room: Room, alice: Account) -> None:
    Mute.objects.create(room=other_room, user=alice, until=timezone.now() + timedelta(minutes=10))

    assert services.post_message(lobby, alice, {"message": "fine here"}).message is not None


def test_user_may_post_once_the_mute_ran_out(lobby: Room, alice: Account) -> None:
    Mute.objects.create(room=lobby, user=alice, until=timezone.now() - timedelta(seconds=1))

    assert services.post_message(lobby, alice, {"message": "back again"}).message is not None


def test_banned_user_cannot_post(lobby: Room, alice: Account) -> None:
    Ban.objects.create(room=lobby, user=alice)

    assert (
        refusal_of(services.post_message(lobby, alice, {"message": "hi"})) == "You can't post in this room."
    )


def slow_room(lobby: Room, seconds: int = 30) -> Room:
    Room.objects.filter(pk=lobby.pk).update(slow_mode_seconds=seconds)
    lobby.refresh_from_db()
    return lobby


def test_slow_mode_refuses_a_second_message_with_the_wait(lobby: Room, alice: Account) -> None:
    room = slow_room(lobby, 30)
    assert services.post_message(room, alice, {"message": "first"}).message is not None
    Message.objects.update(created_at=timezone.now() - timedelta(seconds=10))

    refusal = refusal_of(services.post_message(room, alice, {"message": "second"}))

    match = re.fullmatch(r"Slow mode is on: you can post again in (\d+) seconds\.", refusal)
    assert match, refusal
    assert 19 <= int(match.group(1)) <= 20
    assert list(Message.objects.values_list("body", flat=True)) == ["first"]


def test_slow_mode_lets_the_next_message_through_after_the_wait(lobby: Room, alice: Account) -> None:
    room = slow_room(lobby, 30)
    services.post_message(room, alice, {"message": "first"})
    Message.objects.update(created_at=timezone.now() - timedelta(seconds=31))

    assert services.post_message(room, alice, {"message": "second"}).message is not None


def test_slow_mode_counts_per_user(lobby: Room, alice: Account, bob: Account) -> None:
    room = slow_room(lobby, 30)
    services.post_message(room, alice, {"message": "first"})

    assert services.post_message(room, bob, {"message": "mine"}).message is not None


@pytest.mark.parametrize("who", ["moderator", "staff"])
def test_slow_mode_does_not_hold_moderators_back(lobby: Room, who: str) -> None:
    room = slow_room(lobby, 30)
    poster = make_moderator(lobby) if who == "moderator" else make_staff()

    outcomes = [services.post_message(room, poster, {"message": text}) for text in ("one", "two", "three")]

    assert all(outcome.message is not None for outcome in outcomes)
    assert Message.objects.count() == 3


# Limits on reports and proposals ---------------------------------------------------------------


def test_reporting_a_message_again_while_the_report_is_open_says_so_and_stores_nothing(
    world: World,
) -> None:
    before = snapshot()

    with pytest.raises(moderation.AlreadyReported) as refusal:
        moderation.report_message(world.member, world.message, "still spam")

    assert str(refusal.value) == "You have already reported this message; a moderator will take a look."
    assert snapshot() == before


def test_the_database_holds_one_open_report_per_reporter_and_message(world: World) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Report.objects.create(message=world.message, reporter=world.member, reason="again")

    assert Report.objects.filter(message=world.message, reporter=world.member).count() == 1


def test_a_hundred_reports_in_a_row_store_ten_and_refuse_the_rest(lobby: Room, alice: Account) -> None:
    spammer = make_user("spammer")
    messages = [Message.objects.create(room=lobby, author=spammer, body=f"ad {n}") for n in range(100)]

    refusals = []
    for message in messages:
        try:
            moderation.report_message(alice, message, "spam")
        except NotAllowed as refusal:
            refusals.append(str(refusal))

    assert Report.objects.count() == 10
    assert AuditEntry.objects.count() == 10
    assert len(refusals) == 90
    assert set(refusals) == {"You have sent a lot of reports just now: you can report again in 10 minutes."}


def test_reports_count_again_once_the_window_has_passed(lobby: Room, alice: Account, bob: Account) -> None:
    messages = [Message.objects.create(room=lobby, author=bob, body=f"line {n}") for n in range(11)]
    for message in messages[:10]:
        moderation.report_message(alice, message)
    Report.objects.update(created_at=timezone.now() - timedelta(minutes=11))

    assert isinstance(moderation.report_message(alice, messages[10]), Report)


def test_the_fourth_proposal_in_a_day_is_refused_and_stores_nothing(alice: Account) -> None:
    for name in ("One", "Two", "Three"):
        moderation.propose_room(alice, name)
    before = snapshot()

    with pytest.raises(NotAllowed) as refusal:
        moderation.propose_room(alice, "Four")

    assert str(refusal.value) == "You have proposed 3 rooms recently: you can propose another in 24 hours."
    assert snapshot() == before


def test_proposal_limits_are_per_user_and_a_setting(settings, alice: Account, bob: Account) -> None:
    settings.CHAT_PROPOSALS_PER_USER = 1
    moderation.propose_room(alice, "Mine")

    assert moderation.propose_room(bob, "Yours").proposed_by == bob
    with pytest.raises(NotAllowed):
        moderation.propose_room(alice, "Another")
