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

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.servers import Server

OPEN_TIMEOUT = 30.0
# Handshakes in flight at once: enough to be "at once", few enough not to overflow the listen backlog.
HANDSHAKES_IN_FLIGHT = 100
# Where Parley's frame for a new message starts the line read to screen readers (the text again).
ANNOUNCEMENT = '<div id="announcement-'
HTMX_HEADERS = {
    "HX-Request": "true",
    "HX-Trigger": "message-form",
    "HX-Trigger-Name": None,
    "HX-Target": None,
}


def socket_url(server: Server, room: str, index: int) -> str:
    path = {"relay": f"/{room}", "tutorial": f"/ws/chat/{room}/", "parley": f"/ws/rooms/{room}/"}[server.kind]
    return server.origin_for(index).replace("http", "ws", 1) + path  # https://... -> wss://...


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
    """One open socket: reads every frame as it arrives and hands it to whoever watches.

    The client is picows (its frame parsing is compiled): a websocket library written in Python
    costs the client about 40 µs per frame it receives, which on a two-core machine matters
    wherever the servers need both cores (the two-process column).
    """

    def __init__(self, server: Server, room: str, index: int, session: str = "") -> None:
        self.server, self.room, self.index = server, room, index
        self.url = socket_url(server, room, index)
        self.session = session
        self.transport: WSTransport | None = None
        loop = asyncio.get_running_loop()
        self.first_frame: asyncio.Future[str] = loop.create_future()
        self.reader: asyncio.Future[None] = loop.create_future()  # done once the socket is closed
        self.server_close_code: int | None = None  # the server's, if it sent a close frame
        self.tracker: Tracker | None = None
        self.watch: Callable[[str], None] | None = None
        self.last_frame_at = 0.0

    async def open(self, handshakes: asyncio.Semaphore) -> None:
        headers = {"Origin": self.server.origin_for(self.index)}
        if self.session:
            headers["Cookie"] = f"sessionid={self.session}"
        async with handshakes:
            self.transport, _listener = await ws_connect(
                lambda: Listener(self),
                self.url,
                ssl_context=self.server.ssl_context,
                websocket_handshake_timeout=OPEN_TIMEOUT,
                extra_headers=headers,
                enable_auto_pong=True,
                use_aiofastnet=False,
            )

    def _saw(self, frame: str) -> None:
        self.last_frame_at = time.perf_counter()
        if not self.first_frame.done():
            self.first_frame.set_result(frame)
        if self.tracker:
            self.tracker.saw(self.index, frame, time.perf_counter())
        if self.watch:
            self.watch(frame)

    def _closed(self) -> None:
        if not self.reader.done():
            self.reader.set_result(None)

    async def send(self, text: str) -> None:
        assert self.transport is not None, "send() before open()"
        self.transport.send(WSMsgType.TEXT, encode(self.server, text, self.room).encode())

    async def ready(self) -> str:
        """Open, and (Parley) holding its first frame, the history."""
        return await self.first_frame if self.server.kind == "parley" else ""

    def drop(self) -> None:
        """Gone without a goodbye, as when a network or a laptop lid goes."""
        if self.transport:
            self.transport.underlying_transport.abort()
        self._closed()

    async def close(self) -> None:
        if self.transport and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode.OK)
            try:
                await asyncio.wait_for(self.transport.wait_disconnected(), 2)
            except TimeoutError:
                self.transport.disconnect(graceful=False)
        self._closed()


class Listener(WSListener):
    """picows calls this for every frame of one socket."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.parts: list[str] = []  # a message split into frames (daphne sends whole ones)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION or kind == WSMsgType.BINARY:
            self.parts.append(frame.get_payload_as_utf8_text())
            if frame.fin:
                text, self.parts = "".join(self.parts), []
                self.member._saw(text)
        elif kind == WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.member.server_close_code = code.value if isinstance(code, WSCloseCode) else int(code)
            transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.member._closed()


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
        # Parley's frame ends with the line read to screen readers, which repeats the text.
        shown = frame.split(ANNOUNCEMENT, 1)[0]
        for sender_text, seq_text in self.pattern.findall(shown):
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
