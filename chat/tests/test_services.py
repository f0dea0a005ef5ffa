"""The chat's rules, independent of transport: history paging, posting, presence."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from chat import queries, services
from chat.models import Message, Room
from chat.tests.presence_support import present

pytestmark = pytest.mark.django_db


def add_messages(room: Room, author: AbstractBaseUser, count: int) -> list[Message]:
    Message.objects.bulk_create(Message(room=room, author=author, body=f"message {n}") for n in range(count))
    return list(room.messages.order_by("pk"))


# History ----------------------------------------------------------------------------------


def test_history_pages_walk_back_through_120_messages_without_gaps_or_duplicates(
    lobby: Room, alice: AbstractBaseUser
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
    lobby: Room, alice: AbstractBaseUser
) -> None:
    stored = add_messages(lobby, alice, 50)

    page = queries.history_page(lobby)

    assert [m.body for m in page.messages] == [m.body for m in stored]
    assert page.messages[0].body == "message 0"
    assert page.older_than is None


def test_history_only_shows_the_rooms_own_messages(
    lobby: Room, other_room: Room, alice: AbstractBaseUser
) -> None:
    add_messages(other_room, alice, 3)
    Message.objects.create(room=lobby, author=alice, body="lobby only")

    assert [m.body for m in queries.history_page(lobby).messages] == ["lobby only"]


# Posting ----------------------------------------------------------------------------------


def test_post_message_stores_the_text_without_surrounding_whitespace(
    lobby: Room, alice: AbstractBaseUser
) -> None:
    outcome = services.post_message(lobby, alice, {"message": "  hello there \n"})

    assert outcome.message is not None
    stored = Message.objects.get()
    assert (stored.body, stored.author, stored.room) == ("hello there", alice, lobby)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_post_message_refuses_blank_text(lobby: Room, alice: AbstractBaseUser, text: str) -> None:
    outcome = services.post_message(lobby, alice, {"message": text})

    assert outcome.message is None
    assert outcome.form.errors["message"] == ["Write something before sending."]
    assert not Message.objects.exists()


def test_post_message_refuses_a_missing_message_field(lobby: Room, alice: AbstractBaseUser) -> None:
    outcome = services.post_message(lobby, alice, {})

    assert outcome.message is None
    assert outcome.form.errors["message"] == ["Write something before sending."]
    assert not Message.objects.exists()


def test_post_message_accepts_exactly_2000_characters(lobby: Room, alice: AbstractBaseUser) -> None:
    outcome = services.post_message(lobby, alice, {"message": "x" * 2000})

    assert outcome.message is not None
    assert len(Message.objects.get().body) == 2000


def test_post_message_refuses_2001_characters_and_says_why(lobby: Room, alice: AbstractBaseUser) -> None:
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
    lobby: Room, alice: AbstractBaseUser, settings
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


def test_flood_limit_is_per_user(
    lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser, settings
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 1
    settings.CHAT_FLOOD_WINDOW_SECONDS = 60
    assert services.post_message(lobby, alice, {"message": "first"}).message is not None

    assert services.post_message(lobby, bob, {"message": "mine"}).message is not None
    assert services.post_message(lobby, alice, {"message": "second"}).message is None


def test_flood_limit_forgets_messages_older_than_the_window(
    lobby: Room, alice: AbstractBaseUser, settings
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 1
    settings.CHAT_FLOOD_WINDOW_SECONDS = 5
    earlier = services.post_message(lobby, alice, {"message": "a while ago"}).message
    assert earlier is not None
    Message.objects.filter(pk=earlier.pk).update(created_at=timezone.now() - timedelta(seconds=6))

    assert services.post_message(lobby, alice, {"message": "now"}).message is not None


# Presence ---------------------------------------------------------------------------------


def test_online_members_lists_a_user_with_two_tabs_once_and_counts_guests(
    lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser
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
    lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    present(lobby, alice, "fresh", age_seconds=60)
    present(lobby, bob, "crashed-process", age_seconds=91)
    present(lobby, None, "crashed-guest", age_seconds=91)

    members = queries.online_members(lobby)

    assert members.usernames == ["alice"]
    assert members.guests == 0


def test_online_members_only_counts_the_rooms_own_presences(
    lobby: Room, other_room: Room, alice: AbstractBaseUser
) -> None:
    present(other_room, alice, "elsewhere")
    present(other_room, None, "guest-elsewhere")

    members = queries.online_members(lobby)

    assert members.usernames == []
    assert members.guests == 0


def test_join_and_leave_room_add_and_remove_one_socket(lobby: Room, alice: AbstractBaseUser) -> None:
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


def test_the_process_heartbeat_keeps_a_long_open_socket_online(
    lobby: Room, alice: AbstractBaseUser, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    presence = present(lobby, alice, "tab-1", age_seconds=80)
    assert queries.online_members(lobby).usernames == ["alice"]

    assert services.beat(presence.process_id)

    assert queries.online_members(lobby).usernames == ["alice"]


def test_rooms_with_online_counts_counts_distinct_users_plus_guests(
    lobby: Room, other_room: Room, alice: AbstractBaseUser, bob: AbstractBaseUser, settings
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
