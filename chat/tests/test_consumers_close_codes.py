"""Close codes as a real daphne sends them: only what autobahn lets through reaches htmx.

htmx's ws extension (django_htmx/ext/hx-ws-2.js) reconnects after 1006, 1011, 1012 and 1013 only.
autobahn refuses to send 1011-1013 when asked (only 1000 and 3000-4999), so "come back later"
is a 1011 that daphne itself sends when the application raises.
"""

import asyncio
import time

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat.consumers import TRY_AGAIN_LATER


async def close_code_of_first_socket(server) -> int | None:
    """Connect to the lobby and read until the server closes; the code the client saw."""
    url = server.url.replace("http", "ws") + "/ws/rooms/lobby/"
    async with websockets.connect(url, origin=Origin(server.url)) as socket:
        try:
            while True:
                await asyncio.wait_for(socket.recv(), 15)
        except ConnectionClosed:
            pass
        return socket.close_code


def test_an_unreachable_channel_layer_closes_with_a_code_htmx_retries(start_daphne, tmp_path):
    from testsupport.servers import RedisServer

    redis = RedisServer(tmp_path)
    server = start_daphne(REDIS_URL=redis.url)
    redis.stop()

    code = asyncio.run(close_code_of_first_socket(server))

    assert code == TRY_AGAIN_LATER == 1011
    time.sleep(0.5)
    server.stop()
    log = server.log_path.read_text()
    assert "invalid close code" not in log
    assert "Traceback" not in log, log
