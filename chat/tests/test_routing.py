"""Websocket paths nobody serves, asked of a real daphne: a refused handshake, never a 500."""

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin


async def handshake_status(url: str, origin: str) -> int:
    try:
        async with websockets.connect(url, origin=Origin(origin)):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/rooms/%00/", "/ws/%00", "/ws/rooms/lobby/x/"])
def test_unrouted_socket_paths_are_refused_without_a_traceback(start_daphne, path: str):
    server = start_daphne()
    ws_url = server.url.replace("http", "ws")

    assert asyncio.run(handshake_status(ws_url + path, server.url)) == 403
    assert asyncio.run(handshake_status(ws_url + "/ws/rooms/lobby/", server.url)) == 101
    server.stop()
    log = server.log_path.read_text()
    assert "WSREJECT" in log
    assert "Traceback" not in log and "No route found" not in log
