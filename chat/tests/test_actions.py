"""What a frame from the room page asks for and the reply its sender gets, before any socket is involved."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat import actions
from chat.models import Ban, Message, Room
from chat.moderation import NOT_IN_ROOM
from chat.standing import Account, SessionEnded
from chat.tests.support import client_for, make_member, make_moderator, make_staff, session_of, snapshot

pytestmark = pytest.mark.django_db


def test_posting_stores_the_message_and_gives_the_sender_an_empty_form(lobby: Room, alice: Account) -> None:
    reply = actions.handle(lobby, alice, {"message": "hello"}, session_of(alice))

    assert list(Message.objects.values_list("body", flat=True)) == ["hello"]
    assert 'id="message-form"' in reply
    assert "hello" not in reply


def test_an_invalid_post_gives_back_the_form_with_the_text_and_the_reason(
    lobby: Room, alice: Account
) -> None:
    reply = actions.handle(lobby, alice, {"message": "x" * 2001}, session_of(alice))

    assert "x" * 2001 in reply
    assert "2000" in reply
    assert not Message.objects.exists()


def test_an_unknown_action_is_refused_by_name(lobby: Room, alice: Account) -> None:
    assert "not something this page can do" in actions.handle(
        lobby, alice, {"action": "explode"}, session_of(alice)
    )


def test_visitors_may_not_act_on_anything(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="hi")

    reply = actions.handle(
        lobby, AnonymousUser(), {"action": "report", "message_id": str(message.pk)}, session_key=None
    )

    assert "Sign in first." in reply


def test_a_disabled_account_is_refused_even_on_an_open_socket(lobby: Room, alice: Account) -> None:
    session = session_of(alice)
    alice.is_active = False
    alice.save()

    with pytest.raises(SessionEnded, match="This account is disabled"):
        actions.handle(lobby, alice, {"message": "still here?"}, session)
    assert not Message.objects.exists()


def test_a_signed_out_session_does_nothing_more(lobby: Room, alice: Account) -> None:
    browser = client_for(alice)
    session = browser.cookies["sessionid"].value
    browser.post("/accounts/logout/")

    with pytest.raises(SessionEnded, match="You have signed out"):
        actions.handle(lobby, alice, {"message": "still me?"}, session)
    assert not Message.objects.exists()


def test_a_session_from_before_a_password_change_does_nothing_more(lobby: Room, alice: Account) -> None:
    session = session_of(alice)
    # Saved without a signal, as a script might: the session's hash alone no longer matches.
    Account.objects.filter(pk=alice.pk).update(password="md5$other$0123")

    with pytest.raises(SessionEnded):
        actions.handle(lobby, alice, {"message": "still me?"}, session)
    assert not Message.objects.exists()


def test_another_users_session_does_not_act_for_this_one(lobby: Room, alice: Account, bob: Account) -> None:
    with pytest.raises(SessionEnded):
        actions.handle(lobby, alice, {"message": "as bob?"}, session_of(bob))
    assert not Message.objects.exists()


def test_an_incomplete_moderation_request_says_what_is_missing(lobby: Room) -> None:
    moderator = make_moderator(lobby)

    reply = actions.handle(lobby, moderator, {"action": "remove"}, session_of(moderator))

    assert "That request was incomplete (message_id:" in reply


def test_a_message_from_another_room_cannot_be_acted_on(
    lobby: Room, other_room: Room, alice: Account
) -> None:
    elsewhere = Message.objects.create(room=other_room, author=alice, body="kitchen talk")
    moderator = make_moderator(lobby)

    reply = actions.handle(
        lobby, moderator, {"action": "remove", "message_id": str(elsewhere.pk)}, session_of(moderator)
    )

    assert "That message is not in this room." in reply
    assert Message.objects.get().removed_at is None


@pytest.mark.parametrize("action", ["mute", "unmute", "ban", "unban"])
@pytest.mark.parametrize("who", ["unknown id", "never took part", "staff elsewhere", "posted elsewhere"])
def test_acting_on_someone_without_standing_in_the_room_gets_one_sentence_naming_nobody(
    lobby: Room, other_room: Room, bob: Account, action: str, who: str
) -> None:
    targets = {
        "unknown id": 999999,
        "never took part": bob.pk,
        "staff elsewhere": make_staff("sam").pk,
        "posted elsewhere": Message.objects.create(room=other_room, author=bob, body="hi").author_id,
    }
    moderator = make_moderator(lobby)
    frame = {"action": action, "user_id": str(targets[who]), "minutes": "10"}
    before = snapshot()

    reply = actions.handle(lobby, moderator, frame, session_of(moderator))

    assert NOT_IN_ROOM.replace("'", "&#x27;") in reply
    assert "bob" not in reply and "sam" not in reply and "moderator" not in reply
    assert snapshot() == before


@pytest.mark.parametrize("standing_by", ["posted", "member", "banned"])
def test_someone_with_standing_in_the_room_is_acted_on_by_name(
    lobby: Room, bob: Account, standing_by: str
) -> None:
    if standing_by == "posted":
        Message.objects.create(room=lobby, author=bob, body="hi")
    elif standing_by == "member":
        make_member(lobby, bob)
    else:
        Ban.objects.create(room=lobby, user=bob)
    moderator = make_moderator(lobby)
    action = "unban" if standing_by == "banned" else "ban"

    reply = actions.handle(
        lobby, moderator, {"action": action, "user_id": str(bob.pk)}, session_of(moderator)
    )

    assert "bob is" in reply
