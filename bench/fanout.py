"""Fan-out benchmark: how long one chat message takes to reach every socket in a room.

Parley renders a broadcast once per event and sends the finished HTML to every socket.
The baseline, measured in the same run on the same machine, is the naive design: broadcast
the message id and let every receiving consumer load and render it itself. Both run the real
consumer over the real ASGI stack with the in-memory channel layer.

    make bench            # or: python -m bench.fanout [--rounds 15] [--sizes 1,10,50,100]
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_config.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}")
os.environ.setdefault("CHAT_FLOOD_MESSAGES", "1000000")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.urls import path  # noqa: E402

from chat import broadcast, fragments  # noqa: E402
from chat.consumers import RoomConsumer  # noqa: E402
from chat.models import Message, Room  # noqa: E402


class RenderPerReceiverConsumer(RoomConsumer):
    """The baseline: each socket loads and renders the new message for itself."""

    async def room_render(self, event: dict) -> None:
        html = await database_sync_to_async(render_stored_message)(event["message_id"], self.standing.role)
        await self.send(html)


def render_stored_message(pk: int, role: str) -> str:
    return fragments.new_message_html(Message.objects.select_related("author", "room").get(pk=pk), role)


def broadcast_message_id(message: Message) -> None:
    """What the baseline broadcasts instead of finished HTML."""
    event = {"type": "room.render", "message_id": message.pk}
    transaction.on_commit(
        lambda: async_to_sync(get_channel_layer().group_send)(message.room.group_name, event)
    )


@contextmanager
def baseline_broadcasts():
    real = broadcast.new_message
    broadcast.new_message = broadcast_message_id
    try:
        yield
    finally:
        broadcast.new_message = real


def application(consumer: type[RoomConsumer]) -> URLRouter:
    return URLRouter([path("ws/rooms/<slug:slug>/", consumer.as_asgi())])


async def open_socket(app: URLRouter, room: Room, sender: bool = False) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(app, f"/ws/rooms/{room.slug}/")
    # The same scope AuthMiddlewareStack would give: a signed-in sender, anonymous readers.
    socket.scope["user"] = BENCH_USER if sender else AnonymousUser()
    connected, _ = await socket.connect()
    assert connected
    await drain(socket)
    return socket


async def drain(socket: WebsocketCommunicator) -> None:
    while not await socket.receive_nothing(timeout=0.05):
        await socket.receive_from()


async def deliver_once(
    sender: WebsocketCommunicator, receivers: list[WebsocketCommunicator], text: str
) -> float:
    started = time.perf_counter()
    await sender.send_to(text_data=f'{{"message": "{text}", "HEADERS": {{"HX-Request": "true"}}}}')
    for socket in receivers:
        while text not in await socket.receive_from(timeout=30):
            pass
    elapsed = time.perf_counter() - started
    await drain(sender)
    return elapsed


async def measure(consumer: type[RoomConsumer], room: Room, receivers: int, rounds: int) -> float:
    app = application(consumer)
    sender = await open_socket(app, room, sender=True)
    sockets = [await open_socket(app, room) for _ in range(receivers)]
    for socket in sockets:
        await drain(socket)
    timings = [await deliver_once(sender, sockets, f"bench {consumer.__name__} {n}") for n in range(rounds)]
    for socket in [sender, *sockets]:
        await socket.disconnect()
    return statistics.median(timings)


async def main(sizes: list[int], rounds: int) -> None:
    print(f"Fan-out of one message, median of {rounds} rounds (lower is better)")
    print(f"{'receivers':>9}  {'render once':>12}  {'per receiver':>13}  {'ratio':>6}")
    for index, size in enumerate(sizes):
        room = await database_sync_to_async(Room.objects.create)(name=f"Bench {size}", slug=f"bench-{index}")
        ours = await measure(RoomConsumer, room, size, rounds)
        with baseline_broadcasts():
            naive = await measure(RenderPerReceiverConsumer, room, size, rounds)
        print(f"{size:>9}  {ours * 1000:>10.2f}ms  {naive * 1000:>11.2f}ms  {naive / ours:>5.2f}x")
    print("ratio = per-receiver baseline / Parley's render-once path (above 1 means Parley is faster)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,100", help="receivers per room, comma-separated")
    parser.add_argument("--rounds", type=int, default=15)
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    BENCH_USER, _ = get_user_model().objects.get_or_create(username="bench-sender")
    asyncio.run(main([int(size) for size in arguments.sizes.split(",")], arguments.rounds))
