"""The daphne ceiling: the smallest ASGI app on daphne that does what Parley's hub does.

It keeps one local set of sockets per room (the path) and writes each text frame it receives, as
it is, to every socket in that room: no Django, no database, no channel layer, no rendering.
What separates Parley from it is Parley's own work; what separates it from the `websockets`
relay (bench/relay.py) is daphne's and autobahn's, which Parley keeps.

    daphne -p PORT bench.daphne_relay:application
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

rooms: dict[str, set[Send]] = defaultdict(set)


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return  # daphne sends no lifespan events; plain HTTP gets no answer here
    room = rooms[scope["path"]]
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                room.add(send)
            elif event["type"] == "websocket.receive":
                frame = {"type": "websocket.send", "text": event.get("text")}
                for member in list(room):  # as Parley's hub: one send per local socket
                    await member(frame)
            elif event["type"] == "websocket.disconnect":
                return
    finally:
        room.discard(send)
