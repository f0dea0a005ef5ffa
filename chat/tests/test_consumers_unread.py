"""Unread counts live: the room list's socket (/ws/rooms/) and the room socket's "New messages"
divider, through site_config.asgi.application as a browser would connect."""

import re

import pytest
from channels.db import database_sync_to_async

from chat import moderation, reading, services
from chat.models import LastRead, Message, Room
from chat.standing import Account
from chat.tests.support import (
    HISTORY,
    NEW_MESSAGE,
    ListOpener,
    SocketOpener,
    add_messages,
    drain,
    make_staff,
    receive_close,
    receive_until,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

DIVIDER = 'id="new-messages"'


def badge(frame: str, room: Room) -> str:
    """The text of a room's badge in a frame: "2 new1 mention", "" when nothing is unread."""
    found = re.search(rf'<span id="unread-{room.pk}" class="unread" hx-swap-oob="true">(.*?)</span>\n', frame)
    assert found, f"no badge for {room} in {frame!r}"
    return re.sub(r"<[^>]+>", "", found[1])


def title(frame: str) -> str:
    found = re.search(r'<span hx-swap-oob="innerHTML:#page-title">([^<]*)</span>', frame)
    assert found, f"no title in {frame!r}"
    return found[1]


async def post(room: Room, author: Account, text: str) -> Message:
    message = (await database_sync_to_async(services.post_message)(room, author, {"message": text})).message
    assert message is not None
    return message


async def test_the_list_socket_shows_every_readable_rooms_counts_at_once(
    open_list: ListOpener, lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    await post(lobby, alice, "hello")

    frame = await receive_until(await open_list(bob), "unread-")

    assert badge(frame, lobby) == "1 new" and f"unread-{other_room.pk}" not in frame
    assert title(frame) == "(1) Rooms · Parley"


async def test_counts_rise_live_for_others_messages_and_mentions_not_ones_own(
    open_list: ListOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    bobs, alices = await open_list(bob), await open_list(alice)
    await drain(bobs)
    await drain(alices)

    await post(lobby, alice, "first")
    frame = await receive_until(bobs, f"unread-{lobby.pk}")
    assert badge(frame, lobby) == "1 new" and title(frame) == "(1) Rooms · Parley"

    await post(lobby, alice, "@bob second")
    frame = await receive_until(bobs, f"unread-{lobby.pk}")
    assert badge(frame, lobby) == "2 new1 mention" and title(frame) == "(2) Rooms · Parley"
    assert await drain(alices) == []  # her own messages are no news to her


async def test_opening_the_room_clears_its_count_on_every_list(
    open_list: ListOpener, open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await post(lobby, alice, "@bob are you there?")
    lists = [await open_list(bob), await open_list(bob)]  # two tabs
    for socket in lists:
        assert badge(await receive_until(socket, "unread-"), lobby) == "1 new1 mention"

    await open_socket(user=bob)

    for socket in lists:
        frame = await receive_until(socket, f"unread-{lobby.pk}")
        assert badge(frame, lobby) == "" and title(frame) == "Rooms · Parley"


async def test_messages_in_a_room_open_on_this_process_count_as_read(
    open_list: ListOpener, open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    reader = await open_socket(user=bob)
    bobs_list = await open_list(bob)
    await drain(bobs_list)

    await post(lobby, alice, "seen as it arrives")
    await receive_until(reader, NEW_MESSAGE)
    assert await drain(bobs_list) == []

    await reader.disconnect()  # how far it showed is written as it closes
    newest = await database_sync_to_async(lambda: lobby.messages.latest("pk").pk)()
    assert (
        await database_sync_to_async(lambda: LastRead.objects.get(user=bob, room=lobby).message_id)()
        == newest
    )


async def test_a_ban_stops_the_count_of_that_room(
    open_list: ListOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    bobs_list = await open_list(bob)
    await drain(bobs_list)
    await database_sync_to_async(moderation.ban)(
        await database_sync_to_async(make_staff)(), lobby, bob, "out"
    )
    frame = await receive_until(bobs_list, "page-title")
    assert (
        f"unread-{lobby.pk}" not in frame and title(frame) == "Rooms · Parley"
    )  # counted afresh: the lobby is no longer his to read

    await post(lobby, alice, "after the ban")
    assert await drain(bobs_list) == []  # the lobby's news no longer reaches him


async def test_visitors_have_no_list_socket_and_signing_out_closes_it(
    open_list: ListOpener, lobby: Room, bob: Account
) -> None:
    await open_list(None, refused=True)
    bobs_list = await open_list(bob)
    await drain(bobs_list)

    await database_sync_to_async(bob.set_password)("a new secret passphrase")
    await database_sync_to_async(bob.save)()

    _, code = await receive_close(bobs_list)
    assert code == 4401


async def test_the_history_shows_new_messages_above_the_first_unread_then_never_again(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await database_sync_to_async(reading.open_room)(lobby, bob)  # bob was here before
    await post(lobby, alice, "read before")
    await database_sync_to_async(reading.open_room)(lobby, bob)
    first = await post(lobby, alice, "new one")
    await post(lobby, alice, "new two")

    socket = await open_socket(user=bob, settle=False)
    history = await receive_until(socket, HISTORY)

    divider_at = history.index(DIVIDER)
    assert f'hx-swap-oob="beforebegin:#message-{first.pk}"' in history
    assert history.index("read before") < history.index(f'id="message-{first.pk}"') < divider_at
    await socket.disconnect()

    again = await receive_until(await open_socket(user=bob, settle=False), HISTORY)
    assert DIVIDER not in again  # the room counts as read from then on


async def test_no_divider_on_a_first_visit_and_none_for_what_was_read_live(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await post(lobby, alice, "before bob ever came")
    first_visit = await open_socket(user=bob, settle=False)
    assert DIVIDER not in await receive_until(first_visit, HISTORY)
    await drain(first_visit)

    writer = await open_socket(user=alice)
    await writer.send_to(text_data=ws_send_frame("said while bob was here"))
    await receive_until(first_visit, NEW_MESSAGE)
    await first_visit.disconnect()

    back = await open_socket(user=bob, settle=False)
    assert DIVIDER not in await receive_until(back, HISTORY)


async def test_a_first_unread_older_than_the_page_puts_the_divider_at_the_top(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await database_sync_to_async(reading.read_up_to)(lobby, bob, 0)
    await database_sync_to_async(add_messages)(lobby, alice, 60)  # more than a page

    history = await receive_until(await open_socket(user=bob, settle=False), HISTORY)

    assert 'hx-swap-oob="afterbegin:#messages"' in history and DIVIDER in history


async def test_visitors_get_no_divider_and_store_nothing(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    await post(lobby, alice, "hello")
    socket = await open_socket(settle=False)
    assert DIVIDER not in await receive_until(socket, HISTORY)
    await socket.disconnect()
    assert await database_sync_to_async(LastRead.objects.count)() == 0


async def test_the_list_shows_how_many_are_online_live_rendered_once_for_every_list(
    open_list: ListOpener,
    open_socket: SocketOpener,
    lobby: Room,
    alice: Account,
    bob: Account,
    carol: Account,
) -> None:
    alice_list, carol_list = await open_list(alice), await open_list(carol)
    await drain(alice_list)
    await drain(carol_list)

    bob_in_lobby = await open_socket(user=bob)
    online = f'id="online-{lobby.pk}"'
    frame = await receive_until(alice_list, online)
    assert re.search(rf"{online}[^>]*>1 online<", frame)
    assert frame == await receive_until(carol_list, online)  # the same frame, rendered once

    await bob_in_lobby.disconnect()
    assert re.search(
        rf'{online} class="online nobody"[^>]*>0 online<', await receive_until(alice_list, online)
    )
