"""Mentions and replies on the pages: the highlight, the room list's count, suggestions, the reply bar.

Pages are fetched as daphne serves them (`get_page`: the page cache first), in transactional tests
so that cache versions are bumped after real commits, as in production.
"""

import re

import pytest

from chat import moderation, services
from chat.models import Ban, Message, Room
from chat.standing import Account
from chat.tests.support import (
    client_for,
    get_page,
    make_member,
    make_user,
    mention_counts,
    private_room,
    suggestion_values,
)

pytestmark = pytest.mark.django_db(transaction=True)


def mention_rule(html: str) -> str | None:
    """Whose id the page's own "mentions you" CSS rule names."""
    match = re.search(r'\.message\[data-mentions~="(\d+)"\] \{', html)
    return match.group(1) if match else None


def test_a_message_is_highlighted_for_the_person_it_names_only_also_in_history(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    message = services.post_message(lobby, alice, {"message": "@bob have a look"}).message
    assert message is not None

    for viewer in (bob, carol, bob):  # the second look at it is a cache hit
        page = get_page(client_for(viewer), "/rooms/lobby/")
        assert mention_rule(page.html) == str(viewer.pk)
        assert f'id="message-{message.pk}" data-author-id="{alice.pk}" data-mentions="{bob.pk}"' in page.html
        assert '<a href="/people/bob/" class="mention"' in page.html
    assert page.cached
    older = client_for(bob).get(f"/rooms/lobby/messages/?before={message.pk + 1}").text
    assert f'data-mentions="{bob.pk}"' in older


def test_the_room_list_counts_each_persons_unread_mentions_fresh_and_for_them_alone(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    bobs, carols = client_for(bob), client_for(carol)
    for client in (bobs, carols):
        assert mention_counts(get_page(client, "/").html) == {}

    services.post_message(lobby, alice, {"message": "@bob are you there?"})
    services.post_message(lobby, alice, {"message": "@bob hello?"})

    assert mention_counts(get_page(bobs, "/").html) == {"Lobby": "2 mentions"}
    assert mention_counts(get_page(carols, "/").html) == {}
    assert mention_counts(get_page(client_for(None), "/").html) == {}
    assert get_page(carols, "/").cached

    services.mark_mentions_read(lobby, bob)  # bob opens the room
    assert mention_counts(get_page(bobs, "/").html) == {}
    assert get_page(carols, "/").cached  # bob reading changes nobody else's list


def test_a_removed_message_no_longer_counts(lobby: Room, alice: Account, bob: Account) -> None:
    mona = make_user("mona", is_staff=True)
    message = services.post_message(lobby, alice, {"message": "@bob spam"}).message
    assert message is not None
    moderation.remove_message(mona, message, "spam")

    assert mention_counts(get_page(client_for(bob), "/").html) == {}


def test_naming_someone_in_a_room_they_cannot_read_shows_them_nothing(alice: Account, bob: Account) -> None:
    secret = private_room()
    make_member(secret, alice)
    services.post_message(secret, alice, {"message": "@bob is not here"})

    html = get_page(client_for(bob), "/").html
    assert "Secret" not in html
    assert mention_counts(html) == {}


def test_suggestions_complete_the_name_being_typed_with_people_who_can_read_the_room(
    lobby: Room, alice: Account, bob: Account
) -> None:
    make_user("barbara")
    Ban.objects.create(room=lobby, user=make_user("bert"))
    make_user("Bea")

    response = client_for(alice).get("/rooms/lobby/mentions/", {"message": "lunch @b"})

    assert response.status_code == 200
    assert suggestion_values(response.text) == ["lunch @barbara ", "lunch @Bea ", "lunch @bob "]
    assert suggestion_values(client_for(alice).get("/rooms/lobby/mentions/", {"message": "a@b"}).text) == []
    assert suggestion_values(client_for(alice).get("/rooms/lobby/mentions/", {"message": "@"}).text) == [
        "@alice ",
        "@barbara ",
        "@Bea ",
        "@bob ",
    ]


def test_suggestions_in_a_private_room_name_its_members_only(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    secret = private_room()
    for member in (alice, carol):
        make_member(secret, member)

    names = suggestion_values(client_for(alice).get("/rooms/secret/mentions/", {"message": "@"}).text)

    assert names == ["@alice ", "@carol "]
    assert client_for(bob).get("/rooms/secret/mentions/", {"message": "@"}).status_code == 404
    assert client_for(None).get("/rooms/lobby/mentions/", {"message": "@"}).status_code == 403


def test_reply_puts_a_bar_with_the_original_above_the_composer_and_cancel_empties_it(
    lobby: Room, alice: Account, bob: Account
) -> None:
    original = Message.objects.create(
        room=lobby, author=alice, body="First   words of a **long** message " * 5
    )

    answer = client_for(bob).get(f"/messages/{original.pk}/reply/").text
    menu, bar = answer.split('<div id="reply-bar"')

    assert 'class="message-actions"' in menu and "open" not in menu  # the menu closes
    assert f'<input type="hidden" name="reply_to" value="{original.pk}">' in bar
    assert 'hx-swap-oob="true"' in bar
    text = " ".join(re.sub(r"<[^>]+>", " ", "<" + bar).split())
    assert text.startswith("Replying to alice : First words of a long message First words")
    assert text.endswith("… Cancel")
    cancelled = client_for(bob).get("/messages/0/reply/").text
    assert 'id="reply-bar"' in cancelled and "reply_to" not in cancelled


def test_only_signed_in_readers_get_a_reply_bar(alice: Account, bob: Account) -> None:
    secret = private_room()
    make_member(secret, alice)
    original = Message.objects.create(room=secret, author=alice, body="members only")

    assert client_for(bob).get(f"/messages/{original.pk}/reply/").status_code == 404
    assert client_for(None).get(f"/messages/{original.pk}/reply/").status_code == 404
    assert client_for(alice).get(f"/messages/{original.pk}/reply/").status_code == 200


def test_a_mention_links_to_a_page_about_that_person(bob: Account) -> None:
    assert "bob" in client_for(None).get("/people/bob/").text
    assert client_for(None).get("/people/nobody/").status_code == 404
