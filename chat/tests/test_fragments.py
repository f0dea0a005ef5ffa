"""The HTML fragments the page and the socket share: what each one swaps, and what it never leaks."""

import pytest
from django.utils import timezone

from chat import fragments
from chat.models import Message, Role, Room
from chat.standing import Account

pytestmark = pytest.mark.django_db


def test_reconnect_history_swaps_only_the_message_list_even_with_a_tombstone_in_it(
    lobby: Room, alice: Account
) -> None:
    """A stray hx-swap-oob on a tombstone would make htmx move it out of the history it belongs to."""
    Message.objects.create(room=lobby, author=alice, body="kept")
    Message.objects.create(room=lobby, author=alice, body="spam", removed_at=timezone.now())

    html = fragments.history_html(lobby, Role.MEMBER)

    assert html.count("hx-swap-oob") == 1
    assert 'id="messages"' in html.split("hx-swap-oob")[0].rsplit("<", 1)[-1]
    assert "Message removed by a moderator" in html


def test_a_removal_broadcast_replaces_the_message_in_place(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="spam", removed_at=timezone.now())

    html = fragments.message_html(message)

    assert f'id="message-{message.pk}"' in html
    assert 'hx-swap-oob="true"' in html
    assert "spam" not in html


def test_a_new_message_is_appended_with_its_text_escaped(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body='<img src=x onerror="alert(1)">')

    html = fragments.new_message_html(message, Role.MEMBER)

    assert 'hx-swap-oob="beforeend:#messages"' in html
    assert "<img" not in html
    assert '<p>&lt;img src=x onerror="alert(1)"&gt;</p>' in html


def test_visitors_get_messages_without_any_action_forms(lobby: Room, alice: Account) -> None:
    Message.objects.create(room=lobby, author=alice, body="hello")

    html = fragments.history_html(lobby, Role.VISITOR)

    assert "hello" in html
    assert 'name="action"' not in html


def test_a_deleted_message_is_taken_out_of_every_page(lobby: Room) -> None:
    assert '<div id="message-41" hx-swap-oob="delete"></div>' in fragments.deleted_message_html(41)
