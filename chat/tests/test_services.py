"""The chat's rules, independent of transport: posting and presence."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from chat import queries, services
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import present

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
