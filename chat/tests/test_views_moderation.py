"""Moderation over HTTP: who may open which room page, the room list, and proposals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import moderation
from chat.models import Ban, Membership, Message, Mute, Role, Room
from chat.standing import Account
from chat.tests.support import (
    MENU,
    TOMBSTONE,
    client_for,
    make_member,
    make_moderator,
    make_staff,
    menu_of,
    pending_room,
    private_room,
    room_links,
)

pytestmark = pytest.mark.django_db


# Room pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["visitor", "outsider"])
def test_private_room_is_not_found_for_non_members(alice: Account, who: str) -> None:
    secret = private_room()
    Message.objects.create(room=secret, author=make_moderator(secret), body="our plans")

    response = client_for(alice if who == "outsider" else None).get("/rooms/secret/")

    assert response.status_code == 404
    assert b"our plans" not in response.content


@pytest.mark.parametrize("who", ["member", "moderator", "staff"])
def test_private_room_opens_for_members_moderators_and_staff(alice: Account, who: str) -> None:
    secret = private_room()
    Message.objects.create(room=secret, author=alice, body="our plans")
    make_people = {
        "member": lambda: make_member(secret, alice),
        "moderator": lambda: make_moderator(secret),
        "staff": make_staff,
    }
    user = make_people[who]()

    response = client_for(user).get("/rooms/secret/")

    assert response.status_code == 200
    assert "our plans" in response.text


def test_private_rooms_older_messages_are_not_found_for_outsiders(alice: Account) -> None:
    secret = private_room()
    message = Message.objects.create(room=secret, author=make_moderator(secret), body="our plans")

    response = client_for(alice).get(f"/rooms/secret/messages/?before={message.pk + 1}")

    assert response.status_code == 404


def test_banned_user_gets_403_saying_they_are_banned(lobby: Room, alice: Account) -> None:
    Ban.objects.create(room=lobby, user=alice, reason="spam")

    response = client_for(alice).get("/rooms/lobby/")

    assert response.status_code == 403
    assert "You have been banned from #Lobby." in response.text


def test_banned_user_may_still_open_other_rooms(lobby: Room, other_room: Room, alice: Account) -> None:
    Ban.objects.create(room=lobby, user=alice)

    assert client_for(alice).get(f"/rooms/{other_room.slug}/").status_code == 200


@pytest.mark.parametrize("who", ["visitor", "member"])
def test_pending_room_page_is_not_found_for_others(carol: Account, alice: Account, who: str) -> None:
    pending_room(carol)

    response = client_for(alice if who == "member" else None).get("/rooms/garden/")

    assert response.status_code == 404


@pytest.mark.parametrize("who", ["proposer", "staff"])
def test_pending_room_page_opens_for_its_proposer_and_staff(carol: Account, who: str) -> None:
    pending_room(carol)

    response = client_for(carol if who == "proposer" else make_staff()).get("/rooms/garden/")

    assert response.status_code == 200
    assert "Waiting for approval" in response.text


def test_moderators_page_has_the_moderation_tools_and_members_page_does_not(
    lobby: Room, alice: Account, bob: Account
) -> None:
    hello = Message.objects.create(room=lobby, author=bob, body="hello")
    moderator = make_moderator(lobby)

    as_moderator = client_for(moderator).get("/rooms/lobby/").text
    as_member = client_for(alice).get("/rooms/lobby/").text
    as_visitor = client_for(None).get("/rooms/lobby/").text

    # Message controls come in each message's menu, loaded when the reader opens it.
    assert "Lock room" in as_moderator and "Remove message" in menu_of(moderator, hello.pk)
    assert "Lock room" not in as_member and "Remove message" not in as_member + menu_of(alice, hello.pk)
    assert MENU in as_member and "Report message" in menu_of(alice, hello.pk)
    assert MENU not in as_visitor and menu_of(None, hello.pk) == ""


def test_removed_message_shows_a_tombstone_on_the_page(lobby: Room, bob: Account) -> None:
    Message.objects.create(room=lobby, author=bob, body="buy cheap watches", removed_at=timezone.now())

    page = client_for(None).get("/rooms/lobby/").text

    assert TOMBSTONE in page
    assert "buy cheap watches" not in page


def test_muted_member_sees_until_when_on_the_page(lobby: Room, alice: Account) -> None:
    until = timezone.now() + timedelta(minutes=10)
    Mute.objects.create(room=lobby, user=alice, until=until)

    page = client_for(alice).get("/rooms/lobby/").text

    assert f"You're muted in this room until {timezone.localtime(until):%H:%M}" in page
    assert 'name="message"' not in page


def test_locked_room_page_tells_members_and_keeps_the_form_for_moderators(
    lobby: Room, alice: Account
) -> None:
    Room.objects.filter(pk=lobby.pk).update(is_locked=True)

    as_member = client_for(alice).get("/rooms/lobby/").text
    as_moderator = client_for(make_moderator(lobby)).get("/rooms/lobby/").text

    assert "This room is locked" in as_member and 'name="message"' not in as_member
    assert 'name="message"' in as_moderator


# The room list --------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "listed"), [("visitor", False), ("outsider", False), ("member", True)])
def test_room_list_shows_private_rooms_to_their_members_only(
    lobby: Room, alice: Account, bob: Account, who: str, listed: bool
) -> None:
    secret = private_room()
    make_member(secret, bob)
    user = {"visitor": None, "outsider": alice, "member": bob}[who]

    page = room_links(client_for(user))

    assert 'href="/rooms/lobby/"' in page
    assert ('href="/rooms/secret/"' in page) is listed


def test_room_list_shows_private_rooms_to_staff(lobby: Room) -> None:
    private_room()

    assert 'href="/rooms/secret/"' in room_links(client_for(make_staff()))


@pytest.mark.parametrize("who", ["visitor", "member", "proposer", "staff"])
def test_room_list_hides_pending_rooms_from_everyone(
    lobby: Room, alice: Account, carol: Account, who: str
) -> None:
    pending_room(carol)
    user = {"visitor": None, "member": alice, "proposer": carol, "staff": make_staff()}[who]

    assert 'href="/rooms/garden/"' not in room_links(client_for(user))


def test_proposer_sees_their_proposals_with_their_status(lobby: Room, alice: Account, carol: Account) -> None:
    pending_room(carol, slug="garden", name="Garden")
    Room.objects.create(slug="kiln", name="Kiln", status=Room.Status.REJECTED, proposed_by=carol)
    Room.objects.create(slug="orchard", name="Orchard", proposed_by=carol)

    as_proposer = room_links(client_for(carol))
    as_someone_else = room_links(client_for(alice))

    proposals = as_proposer.split("Your proposals", 1)[1]
    assert "# Garden" in proposals and "Waiting for approval" in proposals
    assert "# Kiln" in proposals and "Rejected" in proposals
    assert "# Orchard" in proposals and 'href="/rooms/orchard/"' in proposals
    assert "Your proposals" not in as_someone_else


# Proposing a room -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_proposing_a_room_requires_signing_in(lobby: Room, method: str) -> None:
    client = client_for(None)
    response = (
        client.post("/rooms/propose/", {"name": "Book Club"})
        if method == "post"
        else client.get("/rooms/propose/")
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/rooms/propose/"
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


def test_proposing_a_room_keeps_it_hidden_and_shows_it_under_your_proposals(
    lobby: Room, alice: Account
) -> None:
    client = client_for(alice)

    response = client.post(
        "/rooms/propose/", {"name": "Book Club", "description": "Monthly reads", "is_public": "on"}
    )

    assert response.status_code == 302 and response["Location"] == "/"
    room = Room.objects.get(slug="book-club")
    assert (room.status, room.is_public, room.proposed_by) == (Room.Status.PENDING, True, alice)
    assert Membership.objects.get(room=room, user=alice).role == Role.MODERATOR
    page = room_links(client)
    assert "Your proposals" in page and "Waiting for approval" in page
    assert 'href="/rooms/book-club/"' not in page
    assert 'href="/rooms/book-club/"' not in room_links(client_for(None))


def test_proposal_without_a_name_is_sent_back(lobby: Room, alice: Account) -> None:
    response = client_for(alice).post("/rooms/propose/", {"name": "  "})

    assert response.status_code == 200
    assert "This field is required." in response.text
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


def test_proposing_rooms_in_a_row_is_refused_with_429_and_a_sentence(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    for n in range(3):
        assert client.post("/rooms/propose/", {"name": f"Room {n}"}).status_code == 302

    response = client.post("/rooms/propose/", {"name": "Room 3"})

    assert response.status_code == 429
    assert "You have proposed 3 rooms recently: you can propose another in 24 hours." in response.text
    assert 'value="Room 3"' in response.text  # what they typed stays in the form
    assert Room.objects.filter(proposed_by=alice).count() == 3


def test_room_proposed_as_propose_does_not_hide_the_proposal_page(alice: Account) -> None:
    client = client_for(alice)

    client.post("/rooms/propose/", {"name": "Propose", "is_public": "on"})

    assert Room.objects.get(proposed_by=alice).slug != "propose"
    assert "Send for approval" in client.get("/rooms/propose/").text


def test_room_list_leaves_out_rooms_the_user_is_banned_from(lobby: Room, alice: Account) -> None:
    Room.objects.create(slug="garden", name="Garden")
    Ban.objects.create(room=lobby, user=alice)

    page = room_links(client_for(alice))

    assert 'href="/rooms/lobby/"' not in page
    assert 'href="/rooms/garden/"' in page


def test_a_rejected_room_is_closed_to_its_proposer_too(carol: Account) -> None:
    room = pending_room(carol)
    moderation.review_room(make_staff(), room, approve=False)

    assert client_for(carol).get("/rooms/garden/").status_code == 404
    assert "Rejected" in room_links(client_for(carol))
