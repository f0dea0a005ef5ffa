"""Clients that go away while messages fan out, against a real daphne: its log stays one line per event."""

import asyncio
import json
import re

import websockets
from websockets.typing import Origin

from chat.tests.support import signed_in_session_in, ws_send_frame

LISTENERS = 150
MESSAGES = 60
# 150 handshakes at once: on a loaded machine the last may wait past daphne's default 5 s, after
# which autobahn drops it without an answer. This test is about leaving, not joining.
PATIENT_HANDSHAKES = ("--websocket_connect_timeout", "30")


async def listen_then_vanish(url: str, origin: str, after: float, abort: bool) -> None:
    """Read the room for a moment, then leave: abort the TCP connection, or close and not wait."""
    socket = await websockets.connect(url, origin=Origin(origin), max_queue=None)
    await asyncio.sleep(after)
    if abort:
        socket.transport.abort()
    else:
        asyncio.get_running_loop().create_task(socket.close())
        await asyncio.sleep(0)


async def talk_while_listeners_vanish(server, session: str) -> int:
    url, origin = server.url.replace("http", "ws") + "/ws/rooms/lobby/", server.url
    sender = await websockets.connect(
        url, origin=Origin(origin), additional_headers={"Cookie": f"sessionid={session}"}
    )
    listeners = [
        asyncio.create_task(listen_then_vanish(url, origin, after=0.5 + i * 0.004, abort=i % 3 == 0))
        for i in range(LISTENERS)
    ]
    await asyncio.sleep(0.5)
    for number in range(MESSAGES):
        await sender.send(ws_send_frame(f"private words {number}"))
        await asyncio.sleep(0.005)
    await asyncio.gather(*listeners)
    received = 0
    try:
        while True:
            received += "private words" in await asyncio.wait_for(sender.recv(), 2)
    except TimeoutError:
        pass
    await sender.close()
    return received


def test_clients_leaving_mid_fanout_leave_no_traceback_and_no_private_data(start_daphne, site_env):
    session = signed_in_session_in(site_env, "talker")
    server = start_daphne(*PATIENT_HANDSHAKES, CHAT_FLOOD_MESSAGES="1000000")

    received = asyncio.run(talk_while_listeners_vanish(server, session))

    server.stop()
    log = server.log_path.read_text()
    assert received >= MESSAGES, "the sender saw its own messages broadcast"
    assert "WSDISCONNECT" in log
    assert "Traceback" not in log and "Attempt to send on a closed protocol" not in log, log
    assert "private words" not in log and session not in log
    # One event per line: every line starts with a timestamp or is daphne's access log.
    for line in log.splitlines():
        assert re.match(
            r"(\d{4}-\d\d-\d\d |127\.0\.0\.1:\d+ - - |Starting|HTTP/2|Configuring|Listening)", line
        ), line
    json.dumps(log)  # (the log is text)
