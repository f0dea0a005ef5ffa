"""Websocket clients for every server: open many sockets, send as each page does, read seq numbers.

Every message text carries `<tag>-<sender>-<seq>`, so receivers find it in any frame (raw text,
the tutorial's JSON, Parley's HTML) and count loss, doubles and reordering per sender.
"""

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from bench.servers import Server

OPEN_TIMEOUT = 30.0
# Handshakes in flight at once: enough to be "at once", few enough not to overflow the listen backlog.
HANDSHAKES_IN_FLIGHT = 100
HTMX_HEADERS = {
    "HX-Request": "true",
    "HX-Trigger": "message-form",
    "HX-Trigger-Name": None,
    "HX-Target": None,
}


def socket_url(server: Server, room: str, index: int) -> str:
    port = server.port_for(index)
    path = {"relay": f"/{room}", "tutorial": f"/ws/chat/{room}/", "parley": f"/ws/rooms/{room}/"}[server.kind]
    return f"ws://127.0.0.1:{port}{path}"


def encode(server: Server, text: str, room: str = "") -> str:
    """A chat message as each server's page would send it."""
    if server.kind == "relay":
        return text
    if server.kind == "tutorial":
        return json.dumps({"message": text})
    headers = HTMX_HEADERS | {"HX-Current-URL": f"http://127.0.0.1/rooms/{room}/"}
    return json.dumps({"message": text, "HEADERS": headers})


def is_reply(server: Server, frame: str, text: str) -> bool:
    """The sender's acknowledgement: its own echo, or Parley's reply (a fresh form and an empty notice)."""
    if server.kind == "parley":
        return 'id="chat-notice"' in frame and 'id="message-form"' in frame
    return text in frame


def is_refusal(server: Server, frame: str) -> bool:
    return server.kind == "parley" and "form-errors" in frame


class Member:
    """One open socket: reads every frame as it arrives and hands it to whoever watches."""

    def __init__(self, server: Server, room: str, index: int, session: str = "") -> None:
        self.server, self.room, self.index = server, room, index
        self.url = socket_url(server, room, index)
        self.session = session
        self.socket: ClientConnection | None = None
        self.reader: asyncio.Task | None = None
        self.first_frame: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.tracker: Tracker | None = None
        self.watch: Callable[[str], None] | None = None
        self.last_frame_at = 0.0

    async def open(self, handshakes: asyncio.Semaphore) -> None:
        headers = {"Cookie": f"sessionid={self.session}"} if self.session else None
        async with handshakes:
            socket = await connect(
                self.url,
                origin=Origin(f"http://127.0.0.1:{self.server.port_for(self.index)}"),
                additional_headers=headers,
                compression=None,
                max_queue=None,
                max_size=None,
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=2,
                proxy=None,
            )
        self.socket = socket
        self.reader = asyncio.create_task(self._read(socket))

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for frame in socket:
                self._saw(frame if isinstance(frame, str) else frame.decode())
        except Exception:
            pass  # a dropped socket just stops reading; the scenario notices what is missing

    def _saw(self, frame: str) -> None:
        self.last_frame_at = time.perf_counter()
        if not self.first_frame.done():
            self.first_frame.set_result(frame)
        if self.tracker:
            self.tracker.saw(self.index, frame, time.perf_counter())
        if self.watch:
            self.watch(frame)

    async def send(self, text: str) -> None:
        assert self.socket is not None, "send() before open()"
        await self.socket.send(encode(self.server, text, self.room))

    async def ready(self) -> str:
        """Open, and (Parley) holding its first frame, the history."""
        return await self.first_frame if self.server.kind == "parley" else ""

    def drop(self) -> None:
        """Gone without a goodbye, as when a network or a laptop lid goes."""
        if self.socket:
            self.socket.transport.abort()
        if self.reader:
            self.reader.cancel()

    async def close(self) -> None:
        if self.socket:
            await self.socket.close()
        if self.reader:
            self.reader.cancel()


class OpenFailed(RuntimeError):
    pass


async def open_all(members: list[Member]) -> None:
    """Open every socket (and wait for Parley's history); raise once, counting the sockets that failed."""
    handshakes = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    outcomes = await asyncio.gather(*(member.open(handshakes) for member in members), return_exceptions=True)
    problems = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if problems:
        for member in members:
            member.drop()
        first = f"{type(problems[0]).__name__}: {problems[0]}"[:80]
        raise OpenFailed(f"{len(problems)}/{len(members)} handshakes failed, e.g. {first}")
    await asyncio.gather(*(member.ready() for member in members))


def drop_all(members: list[Member]) -> None:
    for member in members:
        member.drop()


async def close_all(members: list[Member]) -> None:
    await asyncio.gather(*(member.close() for member in members), return_exceptions=True)


@dataclass
class Tracker:
    """Who got which message when: loss, doubles and reordering per (receiver, sender)."""

    tag: str
    receivers: int
    sent_at: dict[tuple[int, int], float] = field(default_factory=dict)
    last_arrival: dict[tuple[int, int], float] = field(default_factory=dict)
    copies: dict[tuple[int, int], int] = field(default_factory=dict)
    newest: dict[tuple[int, int], int] = field(default_factory=dict)  # (receiver, sender) -> highest seq seen
    seen: set[tuple[int, int, int]] = field(default_factory=set)
    doubles: int = 0
    reordered: int = 0

    def __post_init__(self) -> None:
        self.pattern = re.compile(rf"{re.escape(self.tag)}-(\d+)-(\d+)~")

    def text(self, sender: int, seq: int) -> str:
        # The "~" ends the number: "t-1-12~" is not found inside "t-1-123~".
        return f"{self.tag}-{sender}-{seq}~"

    def sending(self, sender: int, seq: int) -> None:
        self.sent_at[(sender, seq)] = time.perf_counter()

    def saw(self, receiver: int, frame: str, now: float) -> None:
        for sender_text, seq_text in self.pattern.findall(frame):
            self._count(receiver, int(sender_text), int(seq_text), now)

    def _count(self, receiver: int, sender: int, seq: int, now: float) -> None:
        if (receiver, sender, seq) in self.seen:
            self.doubles += 1
            return
        self.seen.add((receiver, sender, seq))
        if seq < self.newest.get((receiver, sender), -1):
            self.reordered += 1
        self.newest[(receiver, sender)] = max(seq, self.newest.get((receiver, sender), -1))
        key = (sender, seq)
        self.copies[key] = self.copies.get(key, 0) + 1
        self.last_arrival[key] = now

    def complete(self) -> bool:
        return all(self.copies.get(key, 0) >= self.receivers for key in self.sent_at)

    def lost(self) -> int:
        return sum(self.receivers - self.copies.get(key, 0) for key in self.sent_at)

    def latencies(self) -> list[float]:
        """Send to the last receiver, for every message that reached them all."""
        return sorted(
            self.last_arrival[key] - sent
            for key, sent in self.sent_at.items()
            if self.copies.get(key, 0) >= self.receivers
        )


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def post(member: Member, text: str, timeout: float) -> bool:
    """Send one chat message and wait for the sender's acknowledgement: True if accepted."""
    answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def watch(frame: str) -> None:
        if answer.done():
            return
        if is_refusal(member.server, frame):
            answer.set_result(False)
        elif is_reply(member.server, frame, text):
            answer.set_result(True)

    member.watch = watch
    try:
        await member.send(text)
        return await asyncio.wait_for(answer, timeout)
    finally:
        member.watch = None


async def quiet(members: list[Member], gap: float = 0.3, timeout: float = 30.0) -> bool:
    """Until no socket got a frame for `gap` seconds, e.g. after the member-list updates of many joins."""
    return await wait_until(
        lambda: time.perf_counter() - max(member.last_frame_at for member in members) > gap, timeout, 0.05
    )
