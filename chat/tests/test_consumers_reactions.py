"""Reactions live: a click in one browser changes the counts under the message in every open page."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import (
    NOTICE,
    SocketOpener,
    drain,
    mute_for,
    new_message,
    react_frame,
    reactions_shown,
    receive_until,
    settle,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def counts_seen(socket: WebsocketCommunicator, message: Message) -> dict[str, tuple[int, str]]:
    frame = await receive_until(socket, f'id="reactions-{message.pk}"')
    assert 'hx-swap-oob="true"' in frame
    return reactions_shown(frame, message.pk)


async def test_counts_and_names_change_for_everyone_as_two_people_toggle(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    message = await new_message(lobby, alice, "cake in the kitchen")
    author, bob_socket, carol_socket, visitor = (
        await open_socket(user=alice),
        await open_socket(user=bob),
        await open_socket(user=carol),
        await open_socket(),
    )
    await settle(author, bob_socket, carol_socket, visitor)

    await bob_socket.send_to(text_data=react_frame(message, "🎉"))
    for socket in (author, bob_socket, carol_socket, visitor):
        assert await counts_seen(socket, message) == {"🎉": (1, "bob")}

    await carol_socket.send_to(text_data=react_frame(message, "🎉"))
    for socket in (author, visitor):
        assert await counts_seen(socket, message) == {"🎉": (2, "bob and carol")}

    await bob_socket.send_to(text_data=react_frame(message, "🎉"))
    for socket in (author, visitor):
        assert await counts_seen(socket, message) == {"🎉": (1, "carol")}


async def test_the_counts_carry_who_reacted_for_the_pages_own_highlight(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "ship it")
    bob_socket = await open_socket(user=bob)

    await bob_socket.send_to(text_data=react_frame(message, "👍"))

    frame = await receive_until(bob_socket, f'id="reactions-{message.pk}"')
    assert f'data-by="{bob.pk}"' in frame


@pytest.mark.parametrize("who", ["visitor", "muted"])
async def test_crafted_frames_from_visitors_and_the_muted_change_nothing_for_anyone(
    who: str, open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "no reactions please")
    if who == "muted":
        await database_sync_to_async(mute_for)(lobby, bob)
    sender = await open_socket(user=bob if who == "muted" else None)
    watcher = await open_socket(user=alice)
    await settle(sender, watcher)

    await sender.send_to(text_data=react_frame(message))

    notice = await receive_until(sender, NOTICE)
    expected = "Sign in first." if who == "visitor" else "so you can&#x27;t react to messages either."
    assert expected in notice
    assert not any("reactions-" in frame for frame in await drain(watcher))


async def test_a_moderator_clears_the_reactions_for_everyone(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    message = await new_message(lobby, alice, "flame war bait")
    bob_socket, mod_socket = await open_socket(user=bob), await open_socket(user=moderator)
    await bob_socket.send_to(text_data=react_frame(message, "😂"))
    assert await counts_seen(mod_socket, message) == {"😂": (1, "bob")}
    assert await counts_seen(bob_socket, message) == {"😂": (1, "bob")}

    await mod_socket.send_to(text_data=ws_send_frame(action="clear_reactions", message_id=str(message.pk)))

    assert "Cleared 1 reaction." in await receive_until(mod_socket, NOTICE)
    assert await counts_seen(bob_socket, message) == {}
