"""Limits on the sockets one process holds: how many per person, how many unread bytes each.

The caps are tested through the full ASGI stack and against a real daphne (the close code must
reach the client); the send buffer only against a real daphne, whose transport holds the bytes.
"""

import asyncio
import re
import socket as tcp
import time
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat.models import Presence, Room
from chat.sockets import TOO_MANY_FROM_ADDRESS, TOO_MANY_TABS, open_sockets, take_socket
from chat.standing import Account
from chat.tests.support import (
    FORM,
    HISTORY,
    NEW_MESSAGE,
    NOTICE,
    TYPING,
    TYPING_FRAME,
    SocketOpener,
    close_code_after_reading,
    open_unread_socket,
    receive_close,
    rss_bytes,
    session_of,
    signed_in_session_in,
    typing_text,
    without_announcement,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

TOO_MANY_SOCKETS = 4429


@database_sync_to_async
def presence_rows() -> int:
    return Presence.objects.count()


async def test_a_user_over_the_cap_is_told_why_and_not_retried_and_writes_no_presence(
    open_socket: SocketOpener, lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_SOCKETS_PER_USER = 2
    session = await database_sync_to_async(session_of)(alice)
    tabs = [await open_socket(session=session) for _ in range(2)]
    rows = await presence_rows()

    refused = await open_socket(session=session, settle=False)
    frames, code = await receive_close(refused)

    assert code == TOO_MANY_SOCKETS  # an application code: htmx does not reconnect
    assert any(NOTICE in frame and TOO_MANY_TABS in frame for frame in frames), frames
    assert any(FORM in frame and TOO_MANY_TABS in frame for frame in frames), "the form says why too"
    await asyncio.sleep(settings.CHAT_PRESENCE_BATCH_SECONDS * 3)
    assert await presence_rows() == rows == 2

    await tabs[0].disconnect()
    await open_socket(session=session)  # closing a tab frees its place


async def test_visitors_are_capped_per_address_and_members_do_not_count_against_it(
    open_socket: SocketOpener, lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_SOCKETS_PER_ADDRESS = 2
    for _ in range(2):
        await open_socket()

    frames, code = await receive_close(await open_socket(settle=False))

    assert code == TOO_MANY_SOCKETS
    assert any(TOO_MANY_FROM_ADDRESS in frame for frame in frames), frames
    await open_socket(user=alice)  # a signed-in user counts against their own cap


def test_visitors_behind_the_proxy_count_by_the_address_it_names(settings) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.9")]}

    holder, refusal = take_socket(scope, AnonymousUser())

    assert holder == "address:203.0.113.9" and refusal == ""
    open_sockets.give_back(holder)


# Against a real daphne ----------------------------------------------------------------------


async def close_of_socket(url: str) -> tuple[list[str], int | None]:
    """Read a socket until the server closes it: what it said, and the code the client saw."""
    frames: list[str] = []
    async with websockets.connect(url, origin=Origin(url.replace("ws", "http", 1))) as client:
        try:
            while True:
                frames.append(str(await asyncio.wait_for(client.recv(), 10)))
        except ConnectionClosed:
            pass
        return frames, client.close_code


def test_a_real_browser_over_the_cap_gets_the_notice_and_the_application_code(start_daphne) -> None:
    server = start_daphne(CHAT_SOCKETS_PER_ADDRESS="3")
    url = server.url.replace("http", "ws") + "/ws/rooms/lobby/"

    async def fourth_socket() -> tuple[list[str], int | None]:
        origin = Origin(server.url)
        async with (
            websockets.connect(url, origin=origin),
            websockets.connect(url, origin=origin),
            websockets.connect(url, origin=origin),
        ):
            return await close_of_socket(url)

    frames, code = asyncio.run(fourth_socket())

    assert code == TOO_MANY_SOCKETS
    assert any(TOO_MANY_FROM_ADDRESS in frame for frame in frames), frames


MESSAGES = 5000
UNREAD_SOCKETS = 20  # the probe's "20 slow readers took the server from 79 to 143 MiB"
# Each frame is about 1.1 KB: 5.5 MB per socket, more than the kernel takes (tcp_wmem, 4 MiB here).
BODY = "x" * 700
MIB = 1024 * 1024
BOUND = 64 * 1024  # unread bytes per socket in daphne's process: 20 of them hold at most 1.3 MiB


def test_sockets_that_stop_reading_are_closed_and_hold_no_more_than_their_bound(start_daphne) -> None:
    """5,000 messages into a room with 20 sockets that never read: they are closed, the server
    grows by less than 30 MiB, and a member who reads gets every message in order, promptly.

    Without the bound, each holds what the kernel does not take (about 1.5 MB; 30 MB in all).
    The growth includes the message cache (fragments._message_html: up to 10,000 renders,
    about 13 MB of these messages)."""
    # A history frame must fit the bound (the settings refuse less): 48 KiB of history, 16 of header.
    server = start_daphne(
        CHAT_FLOOD_MESSAGES="1000000",
        CHAT_SOCKET_SEND_BUFFER_BYTES=str(BOUND),
        CHAT_HISTORY_MAX_BYTES=str(BOUND - 16 * 1024),
    )
    session = signed_in_session_in(server.env, "prolific")
    assert server.process is not None
    pid = server.process.pid
    url = server.url.replace("http", "ws") + "/ws/rooms/lobby/"
    headers = {"Cookie": f"sessionid={session}"}

    async def run() -> tuple[list[int], dict[int, float], dict[int, float], int, int, list[tcp.socket]]:
        origin = Origin(server.url)
        async with (
            websockets.connect(url, origin=origin, additional_headers=headers, max_size=None) as sender,
            websockets.connect(url, origin=origin, max_size=None) as reader,
        ):
            await post(sender, "warm-up", range(100), {})  # caches and pools filled before measuring
            before = rss_bytes(pid)
            unread = [open_unread_socket(server.port) for _ in range(UNREAD_SOCKETS)]
            received: list[int] = []
            stored_at: dict[int, float] = {}
            arrived_at: dict[int, float] = {}
            reading = asyncio.create_task(read_numbers(reader, received, arrived_at))
            await post(sender, "m", range(MESSAGES), stored_at)
            await asyncio.wait_for(reading, 30)
            after = rss_bytes(pid)
            return received, stored_at, arrived_at, before, after, unread

    received, stored_at, arrived_at, before, after, unread = asyncio.run(run())
    # What a browser that reads again sees: the 1011 waits behind what it did not read, and
    # autobahn drops the connection a second later (1006). htmx reconnects after either.
    assert close_code_after_reading(unread[0]) in (1006, 1011)
    for raw in unread:
        raw.close()

    assert received == list(range(MESSAGES)), "every message, once, in order"
    # From the sender's acknowledgement (stored, broadcast) to the reader: the fan-out's delay.
    delays = sorted(max(0.0, arrived_at[n] - stored_at[n]) for n in received)
    p50, p99 = delays[len(delays) // 2], delays[len(delays) * 99 // 100]
    growth = (after - before) / MIB
    print(f"delivery p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; server +{growth:.1f} MiB")
    assert p99 < 0.5, f"p99 {p99:.3f} s"
    assert growth < 30, f"the server grew by {growth:.1f} MiB"
    time.sleep(0.5)
    server.stop()
    log = server.log_path.read_text()
    assert log.count("bytes unread") == UNREAD_SOCKETS, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


async def post(sender, prefix: str, numbers: range, stored_at: dict[int, float]) -> None:
    """Post numbered messages 20 at a time; note when the sender's reply (its fresh form) says
    each was stored. Replies come in the order of the posts."""
    for start in range(numbers.start, numbers.stop, 20):
        batch = range(start, min(start + 20, numbers.stop))
        for n in batch:
            await sender.send(ws_send_frame(f"{prefix}{n} {BODY}"))
        for n in batch:
            while FORM not in str(await asyncio.wait_for(sender.recv(), 10)):
                pass
            stored_at[n] = time.monotonic()


async def read_numbers(reader, received: list[int], arrived_at: dict[int, float]) -> None:
    """Collect the numbers of the messages as they arrive, and when each did."""
    while len(received) < MESSAGES:
        frame = str(await reader.recv())
        if NEW_MESSAGE not in frame:
            continue
        for number in re.findall(r"\bm(\d+) x", without_announcement(frame)):
            received.append(int(number))
            arrived_at[int(number)] = time.monotonic()


# The kernel's share ---------------------------------------------------------------------------

CHATTERS = 10
SILENT_SOCKETS = 40  # the probe's "40 sockets that never read, in a room where 10 people chat"
POSTS_EACH = 40
LONG_POST = "y" * 1900  # about 2.3 KB a frame: 400 of them put 0.9 MB in front of each silent socket
ROOM_AND_CHATTERS = """
from chat.models import Room
from chat.standing import Account
from testsupport.sessions import session_key_for
Room.objects.create(slug="{slug}", name="{slug}")
for n in range({chatters}):
    print(session_key_for(Account.objects.create_user(username=f"{slug}-{{n}}")))
"""


def kernel_send_queues(port: int) -> int:
    """Bytes the kernel holds unsent or unacknowledged for the server's side of every connection
    to `port` (tx_queue in /proc/net/tcp, as `ss` shows it in Send-Q)."""
    total = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state, queues = line.split()[1], line.split()[3], line.split()[4]
            if int(local.split(":")[1], 16) == port and state != "0A":  # 0A: the listening socket
                total += int(queues.split(":")[0], 16)
    return total


def test_sockets_that_never_read_hold_little_in_the_kernel(start_daphne, site_env) -> None:
    """40 sockets that never read while 10 people post 400 long messages: the kernel's send queues
    of the server's connections stay under 16 MiB in all (Linux would grow each towards
    net.ipv4.tcp_wmem's maximum, 4 MiB, unless SO_SNDBUF bounds it)."""
    from testsupport.servers import manage

    server = start_daphne(CHAT_FLOOD_MESSAGES="1000000")
    slug = f"quiet-{uuid.uuid4().hex[:8]}"
    sessions = manage(site_env, "shell", "-c", ROOM_AND_CHATTERS.format(slug=slug, chatters=CHATTERS)).split()
    url = server.url.replace("http", "ws") + f"/ws/rooms/{slug}/"

    async def chat_past_silent_sockets() -> int:
        silent = [open_unread_socket(server.port, f"/ws/rooms/{slug}/") for _ in range(SILENT_SOCKETS)]
        peak = 0
        chatting = asyncio.gather(*(chatter(url, server.url, session) for session in sessions[-CHATTERS:]))
        while not chatting.done():
            peak = max(peak, kernel_send_queues(server.port))
            await asyncio.sleep(0.05)
        await chatting
        for _ in range(20):  # and a second after
            peak = max(peak, kernel_send_queues(server.port))
            await asyncio.sleep(0.05)
        for raw in silent:
            raw.close()
        return peak

    peak = asyncio.run(chat_past_silent_sockets())

    print(f"kernel send queues at most {peak / MIB:.1f} MiB")
    assert peak < 16 * MIB, f"the kernel held {peak / MIB:.1f} MiB for {SILENT_SOCKETS} silent sockets"
    assert peak > SILENT_SOCKETS * 64 * 1024, "the silent sockets were sent something to hold"


async def chatter(url: str, site: str, session: str) -> None:
    """One person posting long messages, each after the last was acknowledged (a fresh form)."""
    headers = {"Cookie": f"sessionid={session}"}
    async with websockets.connect(
        url, origin=Origin(site), additional_headers=headers, max_size=None
    ) as socket:
        for n in range(POSTS_EACH):
            await socket.send(ws_send_frame(f"{n} {LONG_POST}", slug=url.rstrip("/").rsplit("/", 1)[-1]))
            while FORM not in str(await asyncio.wait_for(socket.recv(), 20)):
                pass


# Frames written straight to daphne's connections (chat.sockets.write_text) ------------------

WORDS = "héllo wörld 🎉 ✓ "  # more bytes than characters in UTF-8: a length counted in the wrong unit shows


def test_frames_of_every_length_reach_a_strict_client_as_sent(start_daphne, site_env) -> None:
    """What every socket of a room is sent, short (a typing line, under 126 bytes), long (a message
    in UTF-8, 126 bytes to 64 KiB) or longer (a history past 64 KiB), reaches a client that checks
    every frame (the `websockets` library) with its text as sent, and the socket stays open."""
    from testsupport.servers import manage

    server = start_daphne(CHAT_FLOOD_MESSAGES="1000000")
    slug = f"frames-{uuid.uuid4().hex[:8]}"
    sessions = manage(site_env, "shell", "-c", ROOM_AND_CHATTERS.format(slug=slug, chatters=2)).split()
    url = server.url.replace("http", "ws") + f"/ws/rooms/{slug}/"
    long_text = WORDS * 110  # about 2,000 characters, 2,500 bytes

    async def talk() -> tuple[str, str, str]:
        origin = Origin(server.url)
        writer_headers = {"Cookie": f"sessionid={sessions[-1]}"}
        reader_headers = {"Cookie": f"sessionid={sessions[-2]}"}
        async with (
            websockets.connect(
                url, origin=origin, additional_headers=writer_headers, max_size=None
            ) as writer,
            websockets.connect(
                url, origin=origin, additional_headers=reader_headers, max_size=None
            ) as reader,
        ):
            for n in range(30):  # 30 long messages: the next history is past 64 KiB
                await writer.send(ws_send_frame(f"{n} {long_text}", slug=slug))
                message = await frame_with(reader, NEW_MESSAGE)
            await writer.send(TYPING_FRAME)
            typing = await frame_with(reader, TYPING)
        async with websockets.connect(
            url, origin=origin, additional_headers=reader_headers, max_size=None
        ) as late:
            history = await frame_with(late, HISTORY)
        return typing, message, history

    typing, message, history = asyncio.run(talk())

    assert len(typing.encode()) < 126 and typing_text(typing), typing
    assert f"29 {long_text.strip()}" in message
    assert len(history.encode()) > 65535
    assert history.count(long_text.strip()) >= 30


async def frame_with(client, marker: str) -> str:
    while marker not in (frame := str(await asyncio.wait_for(client.recv(), 10))):
        pass
    return frame
