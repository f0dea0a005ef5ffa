"""The ceiling: a raw `websockets` relay. A room is a set of sockets; each text frame goes to all of them.

python -m bench.relay PORT
"""

import asyncio
import sys
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = defaultdict(set)


async def relay(socket: ServerConnection) -> None:
    assert socket.request is not None  # serve() runs the handler only after the handshake
    room = rooms[socket.request.path]
    room.add(socket)
    try:
        async for frame in socket:
            broadcast(room, frame)
    finally:
        room.discard(socket)


async def main(port: int) -> None:
    # Same settings as the client: no compression, no pings, so only the relaying is measured.
    async with serve(relay, "127.0.0.1", port, compression=None, ping_interval=None, max_queue=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
