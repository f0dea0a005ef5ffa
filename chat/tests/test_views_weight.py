"""What readers and operators notice about the room page: its weight, its queries, and its menus.

Messages carry a lazily loaded ··· menu instead of every moderation form; their HTML is cached
per role, keyed by every field it shows, so a change to a message can never serve stale HTML.
"""

import gzip
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import broadcast, moderation
from chat.models import REACTION_EMOJI, Ban, Message, Mute, Reaction, Room
from chat.standing import Account
from chat.tests.support import MENU, client_for, make_moderator, menu_of, menu_status, private_room

pytestmark = pytest.mark.django_db

CHATTER = (
    "sure lunch meeting moved tomorrow afternoon anyone seen the latest build logs deploy went fine "
    "thanks looks good to me will check after coffee weekend plans rain again train delayed again "
    "pushed a fix for the login page review please ping me when you are back"
)
WORDS = CHATTER.split()


def typical_text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(4, 16)))


def chat(room: Room, authors: list[Account], count: int) -> list[Message]:
    """`count` messages of typical chat length (4 to 16 words), by turns from `authors`."""
    rng = random.Random(count)
    messages = Message.objects.bulk_create(
        Message(
            room=room,
            author=authors[n % len(authors)],
            body=" ".join(rng.choices(WORDS, k=rng.randint(4, 16))),
        )
        for n in range(count)
    )
    broadcast.bump(room)  # as posting does: bulk_create sends no signals
    return messages


def page_queries(user: Account, path: str = "/rooms/lobby/") -> int:
    client = client_for(user)
    client.get(path)  # the session and the template cache are warm, as on a busy server
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_room_page_queries_do_not_grow_with_the_messages(lobby: Room, alice: Account, bob: Account) -> None:
    moderator = make_moderator(lobby)
    chat(lobby, [alice, bob], 5)
    few = {user: page_queries(user) for user in (alice, moderator)}

    chat(lobby, [alice, bob, moderator], 60)

    assert {user: page_queries(user) for user in (alice, moderator)} == few
    # Session, user, room with the viewer's standing, history, who is online (2).
    assert few[alice] <= 6


def test_fifty_typical_messages_weigh_under_30_kb_on_the_wire(
    lobby: Room, alice: Account, bob: Account
) -> None:
    moderator = make_moderator(lobby)
    chat(lobby, [alice, bob], 50)

    for user in (alice, moderator):
        response = client_for(user, headers={"Accept-Encoding": "gzip, deflate, br"}).get("/rooms/lobby/")
        assert response["Content-Encoding"] == "gzip"
        assert len(response.content) < 30_000
        # Uncompressed it stays small too: no form is repeated inside every message (only a link to
        # its actions as a page, for readers without script: docs/no-script.md). The page's own forms
        # carry an action and a CSRF token each, to post without script: ~1 KB in all. (45.4 KB on
        # PostgreSQL, whose ids run on across tests and so take more digits; a form per message
        # would add ~15 KB.)
        assert len(gzip.decompress(response.content)) < 48_000


def test_a_members_page_carries_no_moderation_controls_and_no_form_per_message(
    lobby: Room, alice: Account, bob: Account
) -> None:
    chat(lobby, [alice, bob], 3)
    few_forms = client_for(alice).get("/rooms/lobby/").text.count("<form")
    chat(lobby, [bob], 40)

    page = client_for(alice).get("/rooms/lobby/").text

    assert page.count(MENU) == 43
    assert page.count("<form") == few_forms
    for control in ("Remove message", "Mute ", "Ban ", 'value="remove"', 'value="ban"', "Lock room"):
        assert control not in page


def test_menus_are_for_signed_in_readers_of_the_room_as_they_may_act_now(
    lobby: Room, alice: Account, bob: Account
) -> None:
    moderator = make_moderator(lobby)
    by_bob = Message.objects.create(room=lobby, author=bob, body="hello")
    by_moderator = Message.objects.create(room=lobby, author=moderator, body="welcome")

    assert menu_status(None, by_bob.pk) == 403
    assert "Report message" in menu_of(alice, by_bob.pk)
    assert "Remove message" not in menu_of(alice, by_bob.pk)
    assert "Report message" not in menu_of(bob, by_bob.pk)  # nobody reports themselves
    as_moderator = menu_of(moderator, by_bob.pk)
    assert "Remove message" in as_moderator and "Mute bob" in as_moderator and "Ban bob" in as_moderator
    own = menu_of(moderator, by_moderator.pk)
    assert "Remove message" in own and "Ban " not in own and "Mute " not in own

    Ban.objects.create(room=lobby, user=alice)
    assert menu_status(alice, by_bob.pk) == 403


def test_menus_are_refused_for_rooms_the_reader_may_not_know_and_for_removed_messages(
    alice: Account, bob: Account
) -> None:
    secret = private_room()
    hidden = Message.objects.create(room=secret, author=bob, body="members only")

    assert menu_status(alice, hidden.pk) == 404
    assert menu_status(alice, 10**9) == 404
    moderator = make_moderator(secret)
    moderation.remove_message(moderator, hidden)
    assert menu_status(moderator, hidden.pk) == 404


def test_cached_messages_follow_removals_and_renamed_authors(
    lobby: Room, alice: Account, bob: Account
) -> None:
    moderator = make_moderator(lobby)
    spam = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")
    Message.objects.create(room=lobby, author=alice, body="hi all")
    for user in (alice, moderator, None):
        assert "buy cheap watches" in client_for(user).get("/rooms/lobby/").text

    moderation.remove_message(moderator, spam)
    alice.username = "alicia"
    alice.save()

    for user in (alice, moderator, None):
        page = client_for(user).get("/rooms/lobby/").text
        assert "buy cheap watches" not in page and "Message removed by a moderator" in page
        assert ">alicia</span>" in page


def test_menus_offer_the_emoji_to_those_who_may_react_and_clearing_to_moderators(
    lobby: Room, alice: Account, bob: Account
) -> None:
    moderator = make_moderator(lobby)
    message = Message.objects.create(room=lobby, author=bob, body="hello")
    Reaction.objects.create(message=message, user=alice, emoji="❤️")

    as_alice = menu_of(alice, message.pk)
    assert all(f'value="{emoji}"' in as_alice for emoji in REACTION_EMOJI)
    assert 'value="❤️" aria-pressed="true"' in as_alice and 'value="👍" aria-pressed="false"' in as_alice
    assert "Clear reactions" not in as_alice
    assert "Clear reactions" in menu_of(moderator, message.pk)

    Mute.objects.create(room=lobby, user=alice, until=timezone.now() + timedelta(minutes=5))
    assert 'name="emoji"' not in menu_of(alice, message.pk)


def test_a_menu_offers_the_everyday_actions_first_and_folds_reporting_away_at_the_end(
    lobby: Room, alice: Account, bob: Account
) -> None:
    moderator = make_moderator(lobby)
    message = Message.objects.create(room=lobby, author=bob, body="hello")
    everyday = ['class="reaction-picker"', ">Reply</button>", ">Link to this message</a>"]

    menu = menu_of(alice, message.pk)
    places = [menu.index(marker) for marker in [*everyday, ">Message bob directly</a>", "<summary>Report…"]]
    assert places == sorted(places)
    # The reason box and its button open only for someone who means to report.
    folded = menu[menu.index('<details class="report">') :]
    assert 'placeholder="What\'s wrong? (optional)"' in folded and ">Report message</button>" in folded

    as_moderator = menu_of(moderator, message.pk)
    places = [as_moderator.index(marker) for marker in [*everyday, ">Remove message</button>"]]
    assert places == sorted(places)
