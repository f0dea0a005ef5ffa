"""Who someone is in a room at this moment: the one place read and post rights are decided."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import Ban, Membership, Mute, Role, Room
from chat.standing import Account, SessionEnded, check_session, readable_rooms, readers, standing
from chat.tests.support import (
    client_for,
    make_member,
    make_moderator,
    make_staff,
    make_user,
    pending_room,
    private_room,
)

pytestmark = pytest.mark.django_db


def test_a_visitor_reads_public_rooms_only(lobby: Room) -> None:
    assert standing(lobby, AnonymousUser()).role == Role.VISITOR
    assert standing(lobby, AnonymousUser()).can_read
    assert not standing(private_room(), AnonymousUser()).can_read


def test_a_signed_in_user_is_a_member_of_public_rooms_and_of_private_ones_they_belong_to(
    lobby: Room, alice: Account
) -> None:
    secret = private_room()

    assert standing(lobby, alice).role == Role.MEMBER and standing(lobby, alice).can_read
    assert not standing(secret, alice).can_read
    make_member(secret, alice)
    assert standing(secret, alice).can_read


def test_moderators_and_staff_moderate(lobby: Room) -> None:
    assert standing(lobby, make_moderator(lobby)).is_moderator
    assert standing(private_room(), make_staff()).is_moderator


def test_a_banned_member_cannot_read_and_is_told_why(lobby: Room, alice: Account) -> None:
    Ban.objects.create(room=lobby, user=alice)

    viewer = standing(lobby, alice)

    assert viewer.banned and not viewer.can_read


def test_a_mute_lasts_until_it_runs_out(lobby: Room, alice: Account) -> None:
    Mute.objects.create(room=lobby, user=alice, until=timezone.now() + timedelta(minutes=5))
    assert standing(lobby, alice).is_muted

    Mute.objects.update(until=timezone.now() - timedelta(seconds=1))
    assert not standing(lobby, alice).is_muted


def test_a_proposer_reads_their_pending_room_moderates_it_once_approved_and_not_once_rejected(
    carol: Account,
) -> None:
    garden = pending_room(carol)
    assert standing(garden, carol).can_read
    assert not standing(garden, carol).is_moderator

    Room.objects.filter(pk=garden.pk).update(status=Room.Status.APPROVED)
    garden.refresh_from_db()
    assert standing(garden, carol).is_moderator

    Room.objects.filter(pk=garden.pk).update(status=Room.Status.REJECTED)
    garden.refresh_from_db()
    assert not standing(garden, carol).can_read


def test_readable_rooms_are_what_the_room_list_may_show(lobby: Room, alice: Account, bob: Account) -> None:
    secret = private_room()
    Membership.objects.create(room=secret, user=alice, role=Role.MEMBER)
    Ban.objects.create(room=lobby, user=alice)
    pending_room(bob)

    assert list(readable_rooms(alice).values_list("slug", flat=True)) == ["secret"]
    assert list(readable_rooms(bob).values_list("slug", flat=True)) == ["lobby"]
    assert list(readable_rooms(AnonymousUser()).values_list("slug", flat=True)) == ["lobby"]


def test_readers_are_exactly_those_whose_standing_can_read(alice: Account, bob: Account) -> None:
    carol, dave, idle = make_user("carol"), make_user("dave"), make_user("idle", is_active=False)
    staff, proposer = make_staff("sam"), make_user("pat")
    public, secret = Room.objects.create(slug="open", name="Open"), private_room()
    make_member(secret, alice)
    make_moderator(secret, "mia")
    Ban.objects.create(room=public, user=bob)
    Ban.objects.create(room=secret, user=alice)
    make_member(secret, carol)
    rejected = pending_room(proposer, slug="nope")
    rejected.status = Room.Status.REJECTED
    rejected.save()
    everyone = [alice, bob, carol, dave, idle, staff, proposer, *Account.objects.filter(username="mia")]

    for room in (public, secret, pending_room(proposer), rejected):
        expected = {user.username for user in everyone if user.is_active and standing(room, user).can_read}
        assert set(readers(room).values_list("username", flat=True)) == expected, room.slug


@pytest.mark.parametrize(
    "engine", ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cache"]
)
def test_a_session_stands_until_signed_out_disabled_or_the_password_changes(
    alice: Account, bob: Account, engine: str, settings
) -> None:
    """What a socket checks per frame, with the default database sessions (one query for the
    session and the user) and with any other engine."""
    settings.SESSION_ENGINE = engine
    browser = client_for(alice)
    session = browser.cookies["sessionid"].value
    socket_user = Account.objects.get(pk=alice.pk)  # as the socket loaded it when it opened

    check_session(socket_user, session)  # stands
    with pytest.raises(SessionEnded):
        check_session(Account.objects.get(pk=bob.pk), session)  # names someone else
    with pytest.raises(SessionEnded):
        check_session(socket_user, "no-such-session")

    alice.set_password("a new one, elsewhere")
    alice.save()
    with pytest.raises(SessionEnded, match="signed out"):
        check_session(socket_user, session)  # reloaded: the old session's hash no longer matches
    assert socket_user.password == alice.password

    Account.objects.filter(pk=alice.pk).update(is_active=False)
    with pytest.raises(SessionEnded, match="disabled"):
        check_session(socket_user, session)

    Account.objects.filter(pk=alice.pk).update(is_active=True)
    fresh = client_for(alice).cookies["sessionid"].value
    check_session(socket_user, fresh)
    signed_in = Client()
    signed_in.cookies["sessionid"] = fresh
    signed_in.post(reverse("logout"))
    with pytest.raises(SessionEnded, match="signed out"):
        check_session(socket_user, fresh)
