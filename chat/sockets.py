"""What one server process lets a websocket hold: how many per person, how many unread bytes each.

Open sockets are counted per process, in memory: a dictionary lookup on connect and on close, no
database or cache round trip, nothing that grows with the number of sockets. The count is exact
(it drops when a socket closes, however it closes, and a crashed process takes its counts with
it), where a shared counter in Redis would leak on a crash and lock people out until it expired.
The cost: with P processes behind a load balancer, a person may hold up to P times the limit.

The unread bytes are Twisted's: daphne writes every frame to the connection's transport, which
buffers whatever the client has not read yet, without bound. The consumer reads that buffer's
size after each frame it writes (two attribute reads) and closes the socket past the bound.
Behind it, the kernel's own send queue is bounded too (SO_SNDBUF), or Linux lets each connection
that stops reading hold up to net.ipv4.tcp_wmem's maximum (4 MiB by default) outside the process.
"""

import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from channels.sessions import InstanceSessionWrapper
from django.conf import settings
from twisted.internet.tcp import Connection

from chat.accounts import scope_address
from chat.standing import User

log = logging.getLogger(__name__)

TOO_MANY_TABS = "You have too many Parley tabs open; close some and reload."
TOO_MANY_FROM_ADDRESS = "Too many Parley tabs are open from your network; close some and reload."


class OpenSockets:
    """How many sockets each holder (a signed-in user, or a visitor's address) has open here."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    def take(self, holder: str, limit: int) -> bool:
        """Count one more socket for `holder`, unless it already has `limit` open."""
        if self.open[holder] >= limit:
            return False
        self.open[holder] += 1
        return True

    def give_back(self, holder: str) -> None:
        self.open[holder] -= 1
        if self.open[holder] <= 0:
            del self.open[holder]  # no entry left behind per visitor who came once


open_sockets = OpenSockets()


def take_socket(scope: Mapping[str, Any], user: User) -> tuple[str | None, str]:
    """(the holder this socket now counts against, "") or (None, why it is refused)."""
    if user.is_authenticated:
        holder, limit, refusal = f"user:{user.pk}", settings.CHAT_SOCKETS_PER_USER, TOO_MANY_TABS
    else:
        holder, limit = f"address:{scope_address(scope)}", settings.CHAT_SOCKETS_PER_ADDRESS
        refusal = TOO_MANY_FROM_ADDRESS
    if open_sockets.take(holder, limit):
        return holder, ""
    return None, refusal


def send_buffer_of(send: Callable) -> Any | None:
    """The Twisted transport that buffers what daphne writes for the socket behind `send`.

    None when `send` does not lead to a daphne websocket (e.g. Channels' test communicator).
    """
    protocol = _websocket_protocol(send)
    transport = getattr(protocol, "transport", None)
    return transport if hasattr(transport, "_tempDataLen") else None


def bound_kernel_buffer(transport: Any | None) -> None:
    """Cap the kernel's send queue of the connection behind `transport` at
    CHAT_SOCKET_KERNEL_BUFFER_BYTES (Linux reserves twice that and stops growing it by itself):
    what a client leaves unread then piles up in the process, where the consumer sees and bounds it.
    """
    handle = transport.getHandle() if transport is not None else None
    if not isinstance(handle, socket.socket):
        return
    try:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.CHAT_SOCKET_KERNEL_BUFFER_BYTES)
    except OSError as problem:  # e.g. the connection is already gone
        log.debug("Could not bound a socket's kernel buffer: %s", problem)


def unsent_bytes(transport: Any) -> int:
    """Bytes written but not yet taken by the kernel: the sum Twisted itself compares with its
    bufferSize to pause a producer (FileDescriptor._isSendBufferFull). We cannot register a
    producer to be told: daphne's HTTPChannel is already the connection's producer."""
    return len(transport.dataBuffer) + transport._tempDataLen


def _websocket_protocol(send: Callable) -> Any | None:
    """daphne's protocol object behind the ASGI `send`: daphne passes `partial(handle_reply,
    protocol)`; Channels' SessionMiddleware wraps it in a method of an object with `real_send`."""
    found: Any = send
    for _ in range(8):
        if isinstance(found, partial):
            return next((arg for arg in found.args if hasattr(arg, "registerProducer")), None)
        found = getattr(getattr(found, "__self__", None), "real_send", None)
        if found is None:
            return None
    return None


# Finished frames written straight to the connection ----------------------------------------
# A broadcast goes to every socket of a room as the same text. Through Channels and daphne each
# socket would pay for the whole way down: the session wrapper's send, daphne's reply handling,
# the text encoded to UTF-8 again, autobahn's header built and joined to a copy of the payload,
# then Twisted's buffering. Here the frame's bytes are built once and handed to each connection
# as autobahn's sendMessage would hand them, whenever that is all it would do.

FIN_TEXT = 0x81  # a final frame (no fragments) of text, no extension bits


def text_frame(text: str) -> tuple[bytes, int]:
    """`text` as one final, unmasked, uncompressed websocket text frame (RFC 6455, 5.2): the bytes
    autobahn writes for a server's text message, and the length of its payload."""
    payload = text.encode()
    length = len(payload)
    if length <= 125:
        header = bytes((FIN_TEXT, length))
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", FIN_TEXT, 127, length)
    return header + payload, length


class LastFrame:
    """The frame of the text written last: a broadcast's text is one object for all its sockets."""

    def __init__(self) -> None:
        self.text = ""
        self.frame = text_frame("")

    def of(self, text: str) -> tuple[bytes, int]:
        if text is not self.text:  # identity, not equality: a new text costs one encoding
            self.text, self.frame = text, text_frame(text)
        return self.frame


last_frame = LastFrame()


def direct_protocol(send: Callable) -> Any | None:
    """daphne's websocket protocol behind `send`, when nothing between does anything with a
    websocket frame: daphne's own send, possibly behind Channels' session wrappers (whose send
    only acts on HTTP responses). None otherwise: another wrapper must see every frame."""
    found: Any = send
    for _ in range(8):
        if isinstance(found, partial):
            return next((arg for arg in found.args if isinstance(arg, WebSocketProtocol)), None)
        wrapper = getattr(found, "__self__", None)
        if not isinstance(wrapper, InstanceSessionWrapper):
            return None
        found = wrapper.real_send
    return None


def write_text(protocol: Any, text: str) -> bool:
    """Write `text` as a frame to the connection, as autobahn's sendMessage does for a server
    without compression, fragmentation or frame logging. False when autobahn must do it itself
    (the connection is not open, the payload is over its cap, a write is queued, ...): the caller
    then sends the usual way, which raises what it raises (Disconnected, PayloadExceededError)."""
    frame, length = last_frame.of(text)
    if (
        protocol.state != WebSocketProtocol.STATE_OPEN
        or protocol._perMessageCompress is not None
        or 0 < protocol.maxMessagePayloadSize < length
        or 0 < protocol.autoFragmentSize < length
        or protocol.send_queue
        or protocol.maskServerFrames
        or protocol.logFrames
        or protocol.logOctets
        or protocol.trackedTimings
    ):
        return False
    _write_now(protocol.transport, frame)
    stats = protocol.trafficStats  # counted as autobahn counts them, though nothing here reads them
    stats.outgoingWebSocketMessages += 1
    stats.outgoingWebSocketFrames += 1
    stats.outgoingOctetsAppLevel += length
    stats.outgoingOctetsWebSocketLevel += length
    stats.outgoingOctetsWireLevel += len(frame)
    return True


def _write_now(transport: Any, frame: bytes) -> None:
    """Hand `frame` to the kernel at once when nothing waits before it, as asyncio's own transports
    do; what the kernel does not take (and every frame of a TLS or busy connection) goes through
    Twisted's buffer. Twisted would always buffer it, watch the socket for writability and send on
    the next turn of the loop: two more changes of the poller's interest per frame and socket."""
    if (
        not isinstance(transport, Connection)
        or transport.TLS
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
        or transport._tempDataLen
        or len(transport.dataBuffer) > transport.offset
    ):
        transport.write(frame)
        return
    try:
        sent = transport.socket.send(frame)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        sent = 0  # a broken connection: Twisted's own write finds out and closes it
    if sent < len(frame):
        transport.write(frame[sent:])
