"""Unread counts on the room list and reading positions (chat.unread, chat.reading): what each
person sees counted, and that one person's reading never shows in anyone else's list."""

import re
from datetime import timedelta

from django.utils import timezone

from chat import broadcast, fragments, moderation, reading, services, unread
from chat.models import LastRead, Message, Room
from chat.standing import Account
from chat.tests.support import (
    add_messages,
    client_for,
    get_page,
    make_member,
    make_staff,
    make_user,
    mention_counts,
    present,
    private_room,
    unread_counts,
)


def post(room: Room, author: Account, text: str) -> Message:
    message = services.post_message(room, author, {"message": text}).message
    assert message is not None
    return message


def page_title(html: str) -> str:
    found = re.search(r'<title id="page-title">([^<]*)</title>', html)
    assert found, "the page has no swappable title"
    return found[1]


def test_the_room_list_counts_messages_by_others_since_each_person_last_read(
    lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account
) -> None:
    for text in ("one", "two", "three"):
        post(lobby, alice, text)
    post(other_room, bob, "elsewhere")

    bobs, carols = client_for(bob), client_for(carol)
    assert unread_counts(get_page(bobs, "/").html) == {"Lobby": "3 new"}  # his own message is not news
    assert unread_counts(get_page(carols, "/").html) == {"Lobby": "3 new", other_room.name: "1 new"}
    assert unread_counts(get_page(client_for(alice), "/").html) == {other_room.name: "1 new"}
    assert get_page(carols, "/").cached

    reading.open_room(lobby, bob)

    assert unread_counts(get_page(bobs, "/").html) == {}
    assert get_page(carols, "/").cached  # bob's reading changes nobody else's list
    assert unread_counts(get_page(carols, "/").html) == {"Lobby": "3 new", other_room.name: "1 new"}


def test_the_title_carries_the_total_and_visitors_see_no_counts(
    lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    post(lobby, alice, "one")
    post(other_room, alice, "two")

    assert page_title(get_page(client_for(bob), "/").html) == "(2) Rooms · Parley"
    visitors = get_page(client_for(None), "/").html
    assert page_title(visitors) == "Rooms · Parley"
    assert 'class="unread"' not in visitors and "ws-connect" not in visitors


def test_a_room_never_opened_counts_what_was_posted_since_the_account_was_made(
    lobby: Room, alice: Account
) -> None:
    add_messages(lobby, alice, 5)
    newcomer = make_user("newcomer")
    newcomer.date_joined = timezone.now() + timedelta(seconds=1)  # strictly after the history
    newcomer.save()
    assert unread_counts(get_page(client_for(newcomer), "/").html) == {}

    Message.objects.filter(room=lobby).update(created_at=timezone.now() + timedelta(seconds=2))
    broadcast.bump(lobby)  # an update() sends no signal
    assert unread_counts(get_page(client_for(newcomer), "/").html) == {"Lobby": "5 new"}


def test_a_busy_room_counts_up_to_99_plus(lobby: Room, alice: Account, bob: Account) -> None:
    reading.read_up_to(lobby, bob, 0)
    add_messages(lobby, alice, unread.COUNT_CAP + 20)

    assert unread_counts(get_page(client_for(bob), "/").html) == {"Lobby": "99+ new"}


def test_a_room_open_in_another_tab_counts_as_read(lobby: Room, alice: Account, bob: Account) -> None:
    post(lobby, alice, "while bob watches")
    present(lobby, bob, "a-crashed-process", age_seconds=3600)
    assert unread_counts(get_page(client_for(bob), "/").html) == {"Lobby": "1 new"}

    present(lobby, bob, "bobs-tab")
    broadcast.bump(lobby)  # as the hub's member-list announcement does, within a second
    assert unread_counts(get_page(client_for(bob), "/").html) == {}


def test_removed_and_deleted_messages_stop_counting(lobby: Room, alice: Account, bob: Account) -> None:
    spam, mine = post(lobby, alice, "spam"), post(lobby, alice, "oops")
    post(lobby, alice, "kept")
    moderation.remove_message(make_staff(), spam, "spam")
    services.delete_own_message(alice, mine)

    assert unread_counts(get_page(client_for(bob), "/").html) == {"Lobby": "1 new"}


def test_a_private_room_counts_for_its_readers_only_and_stops_at_a_ban(alice: Account, bob: Account) -> None:
    secret = private_room()
    make_member(secret, alice)
    post(secret, alice, "@bob psst")

    assert unread_counts(get_page(client_for(bob), "/").html) == {}
    assert mention_counts(get_page(client_for(bob), "/").html) == {}

    make_member(secret, bob)
    assert unread_counts(get_page(client_for(bob), "/").html) == {"Secret": "1 new"}
    moderation.ban(make_staff(), secret, bob, "gone")
    assert unread_counts(get_page(client_for(bob), "/").html) == {}


def test_mentions_and_messages_are_counted_side_by_side(lobby: Room, alice: Account, bob: Account) -> None:
    named = post(lobby, alice, "@bob look")
    post(lobby, alice, "and this")

    counts = unread.unread_by_room(bob, timezone.now() - timedelta(seconds=90))
    # The room list opens the room at the first message naming them.
    assert counts[lobby.pk] == unread.Unread(messages=2, mentions=1, first_mention=named.pk)


def test_a_reading_position_only_moves_forward(lobby: Room, bob: Account) -> None:
    assert reading.read_up_to(lobby, bob, 10)
    assert not reading.read_up_to(lobby, bob, 5)  # a tab that closes late does not move it back
    assert not reading.read_up_to(lobby, bob, 10)
    assert reading.read_up_to(lobby, bob, 12)
    assert LastRead.objects.get(user=bob, room=lobby).message_id == 12


def test_opening_a_room_says_where_the_reader_stood_then_reads_it(
    lobby: Room, alice: Account, bob: Account
) -> None:
    first_visit = reading.open_room(lobby, bob)
    assert first_visit.read_up_to is None and first_visit.first_unread is None

    own = post(lobby, bob, "mine")
    first, second = post(lobby, alice, "first"), post(lobby, alice, "second")
    position = reading.open_room(lobby, bob)

    assert position.read_up_to == 0
    assert position.first_unread == first.pk != own.pk  # his own message is not unread
    assert position.newest == second.pk
    assert reading.open_room(lobby, bob).first_unread is None  # read from then on


def test_the_divider_goes_above_its_message_or_at_the_top(lobby: Room) -> None:
    above = fragments.new_divider_html(42)
    assert 'hx-swap-oob="beforebegin:#message-42"' in above and "New messages" in above
    assert 'hx-swap-oob="afterbegin:#messages"' in fragments.new_divider_html(None)


def test_the_title_swaps_into_the_title_not_as_a_title_element() -> None:
    # htmx drops a <title> at the top of a socket message; a span's text swapped into it stays.
    assert (
        fragments.list_title_html(3) == '<span hx-swap-oob="innerHTML:#page-title">(3) Rooms · Parley</span>'
    )


def test_a_person_in_200_rooms_is_counted_in_one_query(
    lobby: Room, alice: Account, bob: Account, django_assert_num_queries
) -> None:
    rooms = Room.objects.bulk_create(Room(slug=f"room-{n}", name=f"Room {n}") for n in range(200))
    Message.objects.bulk_create(
        Message(room=room, author=alice, body="hi") for room in rooms for _ in range(3)
    )
    for room in rooms[:100]:
        reading.read_up_to(room, bob, 0)

    with django_assert_num_queries(1):
        counts = unread.unread_by_room(bob, timezone.now() - timedelta(seconds=90))

    assert len(counts) == 201
    assert {counts[room.pk].messages for room in rooms} == {3}
