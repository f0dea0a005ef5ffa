"""The author's Edit and Delete in the message menu, the edit form, Cancel, and pages afterwards."""

from html import unescape

import pytest

from chat import services
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import (
    DELETED,
    EDITED,
    client_for,
    get_page,
    make_moderator,
    menu_of,
    mute_for,
    sent_ago,
)

pytestmark = pytest.mark.django_db

EDIT_BUTTON = ">Edit</button>"
DELETE_BUTTON = "Yes, delete it"


@pytest.fixture
def message(lobby: Room, alice: Account) -> Message:
    return Message.objects.create(room=lobby, author=alice, body='a <b>"quoted"</b> line')


def test_the_author_gets_edit_and_delete_and_nobody_else_does(
    message: Message, lobby: Room, bob: Account
) -> None:
    own = menu_of(message.author, message.pk)
    assert EDIT_BUTTON in own and DELETE_BUTTON in own
    assert 'name="action" value="delete"' in own
    for other in (bob, make_moderator(lobby, "mona")):
        menu = menu_of(other, message.pk)
        assert EDIT_BUTTON not in menu and DELETE_BUTTON not in menu


def test_past_the_window_the_menu_offers_delete_but_not_edit(message: Message, settings) -> None:
    settings.CHAT_EDIT_WINDOW_SECONDS = 60
    sent_ago(message, 61)

    menu = menu_of(message.author, message.pk)

    assert EDIT_BUTTON not in menu and DELETE_BUTTON in menu


def test_a_muted_author_is_not_offered_edit(message: Message, lobby: Room, alice: Account) -> None:
    mute_for(lobby, alice)

    assert EDIT_BUTTON not in menu_of(alice, message.pk)


def test_the_edit_form_is_filled_with_the_text_as_typed(message: Message, alice: Account) -> None:
    response = client_for(alice).get(f"/messages/{message.pk}/edit/")

    assert response.status_code == 200
    html = response.text
    assert f'id="message-{message.pk}"' in html and "ws-send" in html
    # One line: a text input, so Enter saves; its value escaped.
    assert '<input type="text" name="message" value="a &lt;b&gt;&quot;quoted&quot;&lt;/b&gt; line"' in html
    assert f'hx-get="/messages/{message.pk}/?focus=menu"' in html  # Cancel (and Escape)


def test_someone_else_asking_for_the_edit_form_gets_the_message_and_a_sentence(
    message: Message, bob: Account
) -> None:
    response = client_for(bob).get(f"/messages/{message.pk}/edit/")

    assert "<textarea" not in response.text and 'name="message"' not in response.text
    assert "You can only change your own messages." in unescape(response.text)


def test_cancel_puts_the_message_back_as_the_role_sees_it(message: Message, alice: Account) -> None:
    response = client_for(alice).get(f"/messages/{message.pk}/")

    assert response.status_code == 200
    assert f'<article class="message" id="message-{message.pk}"' in response.text
    assert "hx-swap-oob" not in response.text


def test_a_message_of_a_room_you_cannot_read_is_not_shown(lobby: Room, alice: Account, bob: Account) -> None:
    lobby.is_public = False
    lobby.save()
    message = Message.objects.create(room=lobby, author=alice, body="members only")

    assert client_for(bob).get(f"/messages/{message.pk}/").status_code == 404
    assert client_for(bob).get(f"/messages/{message.pk}/edit/").status_code == 404


def test_a_page_shows_edited_and_deleted_messages_even_when_cached(
    message: Message, lobby: Room, alice: Account, bob: Account
) -> None:
    other = Message.objects.create(room=lobby, author=alice, body="regrettable")
    reader = client_for(bob)
    assert "regrettable" in get_page(reader, "/rooms/lobby/").html  # now cached

    services.edit_message(alice, message, "a better line")
    services.delete_own_message(alice, other)

    page = get_page(reader, "/rooms/lobby/").html
    assert "a better line" in page and EDITED in page
    assert DELETED in page and "regrettable" not in page
