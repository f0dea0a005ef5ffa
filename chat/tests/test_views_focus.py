"""Where the focus goes when a swap removes the focused control: the answers carry `autofocus`."""

import pytest

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import client_for

pytestmark = pytest.mark.django_db


def test_reply_and_its_cancel_put_the_focus_where_typing_goes(
    lobby: Room, alice: Account, bob: Account
) -> None:
    original = Message.objects.create(room=lobby, author=alice, body="Who is bringing the cake?")
    client = client_for(bob)
    reply = f"/messages/{original.pk}/reply/"

    # An empty box comes back focused; a box holding a draft is left alone, the bar is focused.
    answer = client.get(reply, {"message": ""}).text
    box = answer[answer.index('id="message-input"') :]
    assert "autofocus" in box and 'hx-swap-oob="true"' in box and 'value=""' in box
    assert f'?room={lobby.slug}"' in answer  # Cancel says which room's box to send
    with_draft = client.get(reply, {"message": "Me, "}).text
    assert 'id="message-input"' not in with_draft and '<p tabindex="-1" autofocus>Replying to' in with_draft
    # An older page (no box text sent): the bar and the closed menu only, as before.
    assert "autofocus" not in client.get(reply).text

    cancelled = client.get("/messages/0/reply/", {"room": lobby.slug, "message": ""}).text
    assert 'id="reply-bar"' in cancelled and "reply_to" not in cancelled and 'id="message-input"' in cancelled
    kept = client.get("/messages/0/reply/", {"room": lobby.slug, "message": "never mind"}).text
    assert 'id="message-input"' not in kept
    assert 'tabindex="-1" autofocus' in kept and "Reply cancelled." in kept


def test_a_one_line_message_is_edited_in_a_text_box_where_enter_saves(lobby: Room, alice: Account) -> None:
    one_line = Message.objects.create(room=lobby, author=alice, body="Meet at 9")
    two_lines = Message.objects.create(room=lobby, author=alice, body="Meet at 9\nby the door")
    client = client_for(alice)

    one_line_form = client.get(f"/messages/{one_line.pk}/edit/").text
    assert '<input type="text" name="message" value="Meet at 9"' in one_line_form
    assert ">Meet at 9\nby the door</textarea>" in client.get(f"/messages/{two_lines.pk}/edit/").text
