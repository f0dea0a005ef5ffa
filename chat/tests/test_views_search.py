"""The search page: a plain GET form, its results alone for htmx while typing, and bad input."""

import re

import pytest

from chat import direct
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import client_for, make_member, private_room

pytestmark = pytest.mark.django_db


def test_the_search_page_lists_matches_linking_to_their_permalinks(
    lobby: Room, alice: Account, bob: Account
) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="the <i>quarterly</i> report")

    page = client_for(bob).get("/search/", {"q": "quarterly"})

    assert page.status_code == 200
    assert 'name="q" value="quarterly"' in page.text
    assert f'href="/rooms/lobby/messages/{message.pk}/#message-{message.pk}"' in page.text
    assert "the &lt;i&gt;<mark>quarterly</mark>&lt;/i&gt; report" in page.text
    assert '<span class="hit-room">#Lobby</span>' in page.text
    assert '<span class="author">alice</span>' in page.text
    assert 'hx-trigger="input changed delay:300ms, search"' in page.text


def test_while_typing_htmx_gets_the_results_alone(lobby: Room, alice: Account) -> None:
    Message.objects.create(room=lobby, author=alice, body="typing finds this")
    answer = client_for(None).get("/search/", {"q": "typ"}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<div id="search-results"')
    assert "<mark>typing</mark> finds this" in answer.text
    assert "<html" not in answer.text


def test_no_words_no_matches_and_the_next_page_link(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    assert "Type a few words" in client.get("/search/").text
    assert "No messages match “nothing”." in client.get("/search/", {"q": "nothing"}).text
    for number in range(21):
        Message.objects.create(room=lobby, author=alice, body=f"paged {number}")
    first = client.get("/search/", {"q": "paged", "order": "newest"}).text
    assert first.count('class="hit"') == 20
    assert 'href="?q=paged&amp;room=&amp;order=newest&amp;page=2">More results</a>' in first
    second = client.get("/search/", {"q": "paged", "order": "newest", "page": "2"}).text
    assert second.count('class="hit"') == 1 and ">Previous</a>" in second


def test_the_room_filter_offers_and_accepts_readable_rooms_only(
    lobby: Room, alice: Account, bob: Account
) -> None:
    secret = private_room()
    make_member(secret, alice)
    Message.objects.create(room=secret, author=alice, body="secret plans")

    assert '<option value="secret"' in client_for(alice).get("/search/").text
    assert '<option value="secret"' not in client_for(bob).get("/search/").text
    mine = client_for(alice).get("/search/", {"q": "plans", "room": "secret"}).text
    assert "<mark>plans</mark>" in mine
    # Not readable and not there read the same: nothing is given away.
    refused = client_for(bob).get("/search/", {"q": "plans", "room": "secret"}).text
    missing = client_for(bob).get("/search/", {"q": "plans", "room": "nowhere"}).text
    assert "There&#x27;s no room by that name to search in." in refused
    assert "There&#x27;s no room by that name to search in." in missing
    assert "<mark>" not in refused


@pytest.mark.parametrize(
    "query", [{"page": "x"}, {"page": "0"}, {"order": "sideways"}, {"q": "x" * 201}, {"room": "not a slug"}]
)
def test_bad_input_gets_a_sentence_not_an_error(lobby: Room, query: dict) -> None:
    answer = client_for(None).get("/search/", {"q": "hello"} | query)
    assert answer.status_code == 400
    assert "That search can&#x27;t be run:" in answer.text


def test_while_typing_a_bad_search_still_gets_its_sentence_swapped_in(lobby: Room) -> None:
    answer = client_for(None).get("/search/", {"q": "x" * 201}, headers={"HX-Request": "true"})
    assert answer.status_code == 200  # htmx swaps in no 4xx answer
    assert "That search can&#x27;t be run:" in answer.text


def test_a_search_far_too_long_keeps_no_more_than_the_box_allows_and_says_so_plainly(lobby: Room) -> None:
    page = client_for(None).get("/search/", {"q": "w" * 10_000})

    assert page.status_code == 400
    box = re.search(r'<input type="search" name="q" value="(w*)" maxlength="(\d+)"', page.text)
    assert box and len(box[1]) == int(box[2]) == 200
    assert (
        "That search can&#x27;t be run: it is 10000 characters long, and a search can be at most 200."
        in page.text
    )
    assert "Ensure this value" not in page.text
    assert "w" * 201 not in page.text  # nor in the page's title


def test_a_direct_message_is_named_after_the_other_person_as_its_page_is(
    lobby: Room, alice: Account, bob: Account
) -> None:
    talk = direct.start(alice, bob)
    Message.objects.create(room=talk, author=alice, body="the secret recipe")
    Message.objects.create(room=lobby, author=alice, body="the public recipe")

    for viewer, other in ((alice, "bob"), (bob, "alice")):
        page = client_for(viewer).get("/search/", {"q": "recipe"}).text
        assert f'<span class="hit-room">{other}</span>' in page
        assert '<span class="hit-room">#Lobby</span>' in page
        assert f'<option value="{talk.slug}">{other}</option>' in page
        assert "alice &amp; bob" not in page and "alice & bob" not in page
