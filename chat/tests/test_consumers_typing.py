"""'alice is typing…': shown to the others in the room, coalesced, gone by itself or at posting."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import (
    NEW_MESSAGE,
    TYPING,
    TYPING_FRAME,
    SocketOpener,
    drain,
    mute_for,
    receive_until,
    settle,
    typing_text,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def typing_seen(socket: WebsocketCommunicator, timeout: float = 3.0) -> str:
    return typing_text(await receive_until(socket, TYPING, timeout=timeout))


def typing_frames(frames: list[str]) -> list[str]:
    return [typing_text(frame) for frame in frames if TYPING in frame]


async def test_the_others_see_who_is_typing_and_the_typer_never_sees_themselves(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    alice_socket, bob_socket, visitor = (
        await open_socket(user=alice),
        await open_socket(user=bob),
        await open_socket(),
    )
    await settle(alice_socket, bob_socket, visitor)

    await alice_socket.send_to(text_data=TYPING_FRAME)

    assert await typing_seen(bob_socket) == "alice is typing…"
    assert await typing_seen(visitor) == "alice is typing…"
    assert "alice" not in "".join(typing_frames(await drain(alice_socket)))


async def test_posting_clears_the_typers_name_at_once(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    alice_socket, bob_socket = await open_socket(user=alice), await open_socket(user=bob)
    await settle(alice_socket, bob_socket)
    await alice_socket.send_to(text_data=TYPING_FRAME)
    assert await typing_seen(bob_socket) == "alice is typing…"

    await alice_socket.send_to(text_data=ws_send_frame("done typing"))

    await receive_until(bob_socket, NEW_MESSAGE)
    assert await typing_seen(bob_socket, timeout=1) == ""


async def test_the_name_goes_by_itself_after_the_last_signal(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_TYPING_SHOWN_SECONDS = 0.6
    alice_socket, bob_socket = await open_socket(user=alice), await open_socket(user=bob)
    await settle(alice_socket, bob_socket)

    await alice_socket.send_to(text_data=TYPING_FRAME)

    assert await typing_seen(bob_socket) == "alice is typing…"
    assert await typing_seen(bob_socket, timeout=2) == ""


async def test_many_signals_from_many_typers_reach_a_reader_as_few_updates(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, carol: Account, moderator: Account
) -> None:
    typers = [await open_socket(user=user) for user in (alice, carol, moderator)]
    reader = await open_socket(user=bob)
    await settle(reader, *typers)

    for _ in range(5):
        for socket in typers:
            await socket.send_to(text_data=TYPING_FRAME)

    shown = typing_frames(await drain(reader, quiet=1.0))
    # The first signal goes out at once, the rest of the burst together; repeats change nothing.
    assert len(shown) <= 2
    assert shown[-1] == "alice and 2 others are typing…"
    assert not await Message.objects.aexists()  # signals are never stored


@pytest.mark.parametrize("who", ["visitor", "muted"])
async def test_signals_from_visitors_and_the_muted_are_ignored(
    who: str, open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    if who == "muted":
        await database_sync_to_async(mute_for)(lobby, bob)
    sender = await open_socket(user=bob if who == "muted" else None)
    reader = await open_socket(user=alice)
    await settle(sender, reader)

    await sender.send_to(text_data=TYPING_FRAME)

    assert typing_frames(await drain(reader, quiet=1.0)) == []
    assert await drain(sender) == []  # no reply either: a signal is not an action


async def test_a_page_that_opens_meanwhile_is_told_who_is_typing(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    alice_socket, bob_socket = await open_socket(user=alice), await open_socket(user=bob)
    await alice_socket.send_to(text_data=TYPING_FRAME)
    assert await typing_seen(bob_socket) == "alice is typing…"

    late = await open_socket(settle=False)

    assert await typing_seen(late) == "alice is typing…"
