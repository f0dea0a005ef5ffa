"""Reads: the history pages a room shows, oldest first, paged back without gaps."""

import pytest

from chat import queries
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import add_messages

pytestmark = pytest.mark.django_db


# History ----------------------------------------------------------------------------------


def test_history_pages_walk_back_through_120_messages_without_gaps_or_duplicates(
    lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 120)

    newest = queries.history_page(lobby)
    middle = queries.history_page(lobby, before=newest.older_than)
    oldest = queries.history_page(lobby, before=middle.older_than)

    assert [m.pk for m in newest.messages] == [m.pk for m in stored[70:]]
    assert [m.pk for m in middle.messages] == [m.pk for m in stored[20:70]]
    assert [m.pk for m in oldest.messages] == [m.pk for m in stored[:20]]
    assert newest.older_than == stored[70].pk
    assert middle.older_than == stored[20].pk
    assert oldest.older_than is None


def test_history_page_is_oldest_first_and_has_no_older_link_when_everything_fits(
    lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 50)

    page = queries.history_page(lobby)

    assert [m.pk for m in page.messages] == [m.pk for m in stored]
    assert page.messages[0].body_html == "<p>message 0</p>"
    assert page.older_than is None


def test_history_only_shows_the_rooms_own_messages(lobby: Room, other_room: Room, alice: Account) -> None:
    add_messages(other_room, alice, 3)
    Message.objects.create(room=lobby, author=alice, body="lobby only")

    assert [m.body_html for m in queries.history_page(lobby).messages] == ["<p>lobby only</p>"]
