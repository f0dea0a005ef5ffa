"""What a frame from the room page asks for and the reply its sender gets, before any socket is involved."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat import actions
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import make_moderator

pytestmark = pytest.mark.django_db


def test_posting_stores_the_message_and_gives_the_sender_an_empty_form(lobby: Room, alice: Account) -> None:
    reply = actions.handle(lobby, alice, {"message": "hello"})

    assert list(Message.objects.values_list("body", flat=True)) == ["hello"]
    assert 'id="message-form"' in reply
    assert "hello" not in reply


def test_an_invalid_post_gives_back_the_form_with_the_text_and_the_reason(
    lobby: Room, alice: Account
) -> None:
    reply = actions.handle(lobby, alice, {"message": "x" * 2001})

    assert "x" * 2001 in reply
    assert "2000" in reply
    assert not Message.objects.exists()


def test_an_unknown_action_is_refused_by_name(lobby: Room, alice: Account) -> None:
    assert "not something this page can do" in actions.handle(lobby, alice, {"action": "explode"})


def test_visitors_may_not_act_on_anything(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="hi")

    reply = actions.handle(lobby, AnonymousUser(), {"action": "report", "message_id": str(message.pk)})

    assert "Sign in first." in reply


def test_a_disabled_account_is_refused_even_on_an_open_socket(lobby: Room, alice: Account) -> None:
    alice.is_active = False
    alice.save()

    assert "This account is disabled." in actions.handle(lobby, alice, {"message": "still here?"})
    assert not Message.objects.exists()


def test_an_incomplete_moderation_request_says_what_is_missing(lobby: Room) -> None:
    reply = actions.handle(lobby, make_moderator(lobby), {"action": "remove"})

    assert "That request was incomplete (message_id:" in reply


def test_a_message_from_another_room_cannot_be_acted_on(
    lobby: Room, other_room: Room, alice: Account
) -> None:
    elsewhere = Message.objects.create(room=other_room, author=alice, body="kitchen talk")

    reply = actions.handle(
        lobby, make_moderator(lobby), {"action": "remove", "message_id": str(elsewhere.pk)}
    )

    assert "That message is not in this room." in reply
    assert Message.objects.get().removed_at is None


def test_acting_on_a_user_who_does_not_exist_is_refused(lobby: Room) -> None:
    reply = actions.handle(lobby, make_moderator(lobby), {"action": "ban", "user_id": "999999"})

    assert "No such user." in reply
