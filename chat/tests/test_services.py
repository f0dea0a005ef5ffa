"""The chat's rules, independent of transport: posting and presence."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import fragments, queries, services
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import present
from testsupport.hostile import REFERENCE_BLOWUP

pytestmark = pytest.mark.django_db


# Posting ----------------------------------------------------------------------------------


def test_post_message_stores_the_text_without_surrounding_whitespace(lobby: Room, alice: Account) -> None:
    outcome = services.post_message(lobby, alice, {"message": "  hello there \n"})

    assert outcome.message is not None
    stored = Message.objects.get()
    assert (stored.body, stored.author, stored.room) == ("hello there", alice, lobby)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_post_message_refuses_blank_text(lobby: Room, alice: Account, text: str) -> None:
    outcome = services.post_message(lobby, alice, {"message": text})

    assert outcome.message is None
    assert outcome.form.errors["message"] == ["Write something before sending."]
    assert not Message.objects.exists()


def test_post_message_refuses_a_missing_message_field(lobby: Room, alice: Account) -> None:
    outcome = services.post_message(lobby, alice, {})

    assert outcome.message is None
    assert outcome.form.errors["message"] == ["Write something before sending."]
    assert not Message.objects.exists()


def test_post_message_accepts_exactly_2000_characters(lobby: Room, alice: Account) -> None:
    outcome = services.post_message(lobby, alice, {"message": "x" * 2000})

    assert outcome.message is not None
    assert len(Message.objects.get().body) == 2000


def test_post_message_refuses_2001_characters_and_says_why(lobby: Room, alice: Account) -> None:
    outcome = services.post_message(lobby, alice, {"message": "x" * 2001})

    assert outcome.message is None
    assert outcome.form.errors["message"] == ["Messages can be at most 2000 characters (this one has 2001)."]
    assert not Message.objects.exists()


def test_a_post_that_would_render_too_big_is_refused_with_a_sentence_and_kept_in_the_form(
    lobby: Room, alice: Account
) -> None:
    outcome = services.post_message(lobby, alice, {"message": REFERENCE_BLOWUP})

    assert outcome.message is None
    assert outcome.form.non_field_errors() == [
        "A message can use link definitions ([name]: URL) at most 20 times; this one uses them 248 times."
    ]
    assert not Message.objects.exists()
    form = fragments.form_html(lobby, outcome.viewer, outcome.form)
    assert "at most 20 times" in form and "[x] [x] [x]" in form  # what was typed, to shorten


def test_texts_refused_as_too_big_count_against_the_flood_limit_without_being_rendered(
    lobby: Room, alice: Account, bob: Account, settings
) -> None:
    """Each costs a rendering and stores nothing: past the flood limit, not even the rendering."""
    settings.CHAT_FLOOD_MESSAGES, settings.CHAT_FLOOD_WINDOW_SECONDS = 3, 0.5
    refusals = [services.post_message(lobby, alice, {"message": REFERENCE_BLOWUP}) for _ in range(4)]
    after = services.post_message(lobby, alice, {"message": "hello"})

    sentences = [str(outcome.form.non_field_errors()[0]) for outcome in [*refusals, after]]
    assert [sentence.startswith("A message can use link definitions") for sentence in sentences] == [
        *[True] * 3,
        False,
        False,
    ]
    assert sentences[3:] == [services.TOO_FAST] * 2
    assert services.post_message(lobby, bob, {"message": "hello"}).message is not None  # others post
    time.sleep(0.6)
    assert services.post_message(lobby, alice, {"message": "hello"}).message is not None


def test_a_post_with_links_and_mentions_is_rendered_once_and_stored(
    lobby: Room, alice: Account, bob: Account
) -> None:
    text = "**hi** @bob, see [the docs](https://example.com/docs) and www.example.org"

    with CaptureQueriesContext(connection) as queries_run:
        outcome = services.post_message(lobby, alice, {"message": text})

    # Checked and stored from one rendering: the names are looked up once.
    assert sum('LOWER("auth_user"."username")' in query["sql"] for query in queries_run) == 1
    stored = Message.objects.get()
    assert outcome.message is not None and stored.body == text
    assert '<a href="/people/bob/" class="mention"' in stored.body_html
    assert stored.body_html.count("<a href=") == 3 and stored.mentioned_ids == [bob.pk]


def test_post_message_refuses_anonymous_visitors(lobby: Room) -> None:
    outcome = services.post_message(lobby, AnonymousUser(), {"message": "hi"})

    assert outcome.message is None
    assert outcome.form.non_field_errors() == ["Sign in to post messages."]
    assert not Message.objects.exists()


def test_flood_limit_refuses_the_next_message_and_keeps_its_text(
    lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 3
    settings.CHAT_FLOOD_WINDOW_SECONDS = 60
    for n in range(3):
        assert services.post_message(lobby, alice, {"message": f"quick {n}"}).message is not None

    outcome = services.post_message(lobby, alice, {"message": "one too many"})

    assert outcome.message is None
    assert outcome.form.non_field_errors() == [
        "You're sending messages too fast. Wait a few seconds; your text is still here."
    ]
    assert outcome.form["message"].value() == "one too many"
    assert Message.objects.count() == 3


def test_flood_limit_is_per_user(lobby: Room, alice: Account, bob: Account, settings) -> None:
    settings.CHAT_FLOOD_MESSAGES = 1
    settings.CHAT_FLOOD_WINDOW_SECONDS = 60
    assert services.post_message(lobby, alice, {"message": "first"}).message is not None

    assert services.post_message(lobby, bob, {"message": "mine"}).message is not None
    assert services.post_message(lobby, alice, {"message": "second"}).message is None


def test_flood_limit_forgets_messages_older_than_the_window(lobby: Room, alice: Account, settings) -> None:
    settings.CHAT_FLOOD_MESSAGES = 1
    settings.CHAT_FLOOD_WINDOW_SECONDS = 5
    earlier = services.post_message(lobby, alice, {"message": "a while ago"}).message
    assert earlier is not None
    Message.objects.filter(pk=earlier.pk).update(created_at=timezone.now() - timedelta(seconds=6))

    assert services.post_message(lobby, alice, {"message": "now"}).message is not None


# Presence ---------------------------------------------------------------------------------


def test_online_members_lists_a_user_with_two_tabs_once_and_counts_guests(
    lobby: Room, alice: Account, bob: Account
) -> None:
    present(lobby, alice, "tab-1")
    present(lobby, alice, "tab-2")
    present(lobby, bob, "tab-3")
    present(lobby, None, "guest-1")
    present(lobby, None, "guest-2")

    members = queries.online_members(lobby)

    assert members.usernames == ["alice", "bob"]
    assert members.guests == 2
    assert members.total == 4


def test_online_members_ignores_presences_older_than_the_ttl(
    lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    present(lobby, alice, "fresh", age_seconds=60)
    present(lobby, bob, "crashed-process", age_seconds=91)
    present(lobby, None, "crashed-guest", age_seconds=91)

    members = queries.online_members(lobby)

    assert members.usernames == ["alice"]
    assert members.guests == 0


def test_online_members_only_counts_the_rooms_own_presences(
    lobby: Room, other_room: Room, alice: Account
) -> None:
    present(other_room, alice, "elsewhere")
    present(other_room, None, "guest-elsewhere")

    members = queries.online_members(lobby)

    assert members.usernames == []
    assert members.guests == 0


def test_join_and_leave_room_add_and_remove_one_socket(lobby: Room, alice: Account) -> None:
    process_id = services.register_process()
    arrivals = [
        services.SocketPresence(lobby, alice, "tab-1"),
        services.SocketPresence(lobby, AnonymousUser(), "guest-1"),
    ]
    services.record_presence(process_id, arrivals, departures=[])
    assert queries.online_members(lobby).usernames == ["alice"]
    assert queries.online_members(lobby).guests == 1

    services.record_presence(process_id, arrivals=[], departures=["tab-1"])

    assert queries.online_members(lobby).usernames == []
    assert queries.online_members(lobby).guests == 1


def test_the_process_heartbeat_keeps_a_long_open_socket_online(lobby: Room, alice: Account, settings) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    presence = present(lobby, alice, "tab-1", age_seconds=80)
    assert queries.online_members(lobby).usernames == ["alice"]

    assert services.beat(presence.process_id)

    assert queries.online_members(lobby).usernames == ["alice"]


def test_rooms_with_online_counts_counts_distinct_users_plus_guests(
    lobby: Room, other_room: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    present(lobby, alice, "tab-1")
    present(lobby, alice, "tab-2")
    present(lobby, bob, "tab-3")
    present(lobby, None, "guest-1")
    present(lobby, None, "stale-guest", age_seconds=120)
    present(other_room, bob, "stale", age_seconds=120)

    online = {room.slug: room.online for room in queries.rooms_with_online_counts(AnonymousUser())}

    assert online == {"lobby": 3, "kitchen": 0}
