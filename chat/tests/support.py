"""What the tests share: people with a role, messages, ws-send frames, reading sockets, DB snapshots.

Fixtures live in conftest.py; everything a test imports comes from here.
"""

import asyncio
import base64
import gzip
import json
import os
import re
import socket as tcp
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone
from hypothesis import strategies as st

from chat import broadcast
from chat.health import HealthCheck
from chat.models import (
    AuditEntry,
    Ban,
    Membership,
    Message,
    Mute,
    Presence,
    Report,
    Role,
    Room,
    ServerProcess,
)
from chat.pagecache import FastPages
from chat.standing import Account

ORIGIN = b"http://127.0.0.1"
HOST = b"127.0.0.1"

# Markers that identify each kind of fragment the consumer sends.
HISTORY = 'id="messages"'
FORM = 'id="message-form"'
MEMBERS = 'id="members"'
NOTICE = 'id="chat-notice"'
NEW_MESSAGE = 'hx-swap-oob="beforeend:#live-messages"'
# A new message's frame ends with its spoken line for screen readers (the text once more), which
# replaces a slot of the live region #announcements.
ANNOUNCEMENT = '<div id="announcement-'
HEADER = 'id="room-header"'
TOMBSTONE = "Message removed by a moderator"
DELETED = "Message deleted"  # the tombstone of a message its author deleted
EDITED = "(edited)"
REMOVED_FROM_ROOM = 4403
SESSION_ENDED = 4401
MODERATION_PANEL = 'id="moderation-tools"'
TYPING = 'id="typing"'

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SocketOpener = Callable[..., Awaitable[WebsocketCommunicator]]
ListOpener = Callable[..., Awaitable[WebsocketCommunicator]]  # the room list's socket (open_list)


# People and rooms ---------------------------------------------------------------------------


def make_user(username: str, **extra: object) -> Account:
    """A user who signs in with force_login (no password: hashing one takes a noticeable while)."""
    return Account.objects.create_user(username=username, **extra)  # type: ignore[arg-type]


def make_staff(username: str = "sam") -> Account:
    """A staff member who can also use the admin."""
    return make_user(username, is_staff=True, is_superuser=True)


def make_moderator(room: Room, username: str = "mona") -> Account:
    user = make_user(username)
    Membership.objects.create(room=room, user=user, role=Role.MODERATOR)
    return user


def make_member(room: Room, user: Account) -> Account:
    Membership.objects.create(room=room, user=user, role=Role.MEMBER)
    return user


def private_room(slug: str = "secret", name: str = "Secret") -> Room:
    return Room.objects.create(slug=slug, name=name, is_public=False)


def pending_room(proposer: Account, slug: str = "garden", name: str = "Garden") -> Room:
    room = Room.objects.create(slug=slug, name=name, status=Room.Status.PENDING, proposed_by=proposer)
    Membership.objects.create(room=room, user=proposer, role=Role.MODERATOR)
    return room


def client_for(user: Account | None, headers: dict[str, str] | None = None) -> Client:
    """A browser, signed in as `user` if one is given, sending `headers` with every request."""
    client = Client(headers=headers)
    if user is not None:
        client.force_login(user)
    return client


@dataclass
class Page:
    status: int
    html: str
    cached: bool  # served from the page cache before Django's middleware (chat.pagecache.FastPages)
    response: HttpResponseBase


def get_page(client: Client, path: str, headers: dict[str, str] | None = None) -> Page:
    """GET `path` (with its query string, if any) as daphne would serve it: the page cache's fast
    path first, Django when that passes. The client keeps the cookies either sets, like a browser."""
    from site_config.asgi import application

    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    headers = {"accept-encoding": "gzip"} | (headers or {})
    bare_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": "GET",
        "path": bare_path,
        "query_string": query.encode(),
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"cookie", cookies.encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
    }
    health_check = application.application_mapping["http"]
    assert isinstance(health_check, HealthCheck)  # /healthz, in front of the page cache
    fast_pages = health_check.app
    assert isinstance(fast_pages, FastPages)
    hit = fast_pages.serve(scope)
    response: HttpResponseBase
    if hit is None:
        response = client.get(path, headers=headers)
    else:
        response = hit
        client.cookies.update(hit.cookies)
    body = response.content
    if response.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return Page(response.status_code, body.decode(), hit is not None, response)


PASSWORD = "correct horse battery"  # the password of the alice, bob and carol fixtures


def log_in(username: str, password: str, address: str = "203.0.113.1", client: Client | None = None):
    """Post the login form from `address` (REMOTE_ADDR), as a fresh browser unless `client` is given."""
    client = client or Client()
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def sign_up(username: str, address: str = "203.0.113.1", client: Client | None = None):
    """Post the signup form from `address` with a password every validator accepts."""
    client = client or Client()
    passphrase = "a long enough passphrase"
    data = {"username": username, "password1": passphrase, "password2": passphrase}
    return client.post("/accounts/signup/", data, REMOTE_ADDR=address)


def room_links(client: Client) -> str:
    """The room list as `client` sees it."""
    response = client.get("/")
    assert response.status_code == 200
    return response.text


def session_cookie(user: Account) -> bytes:
    return f"sessionid={session_of(user)}".encode()


def session_of(user: Account) -> str:
    """The key of a new session signing `user` in, as a browser holds it after logging in."""
    return client_for(user).cookies["sessionid"].value


def present(room: Room, user: Account | None, socket_id: str, age_seconds: float = 0) -> Presence:
    """A socket open on `room`, held by a process last heard from `age_seconds` ago."""
    process = ServerProcess.objects.create(last_seen=timezone.now() - timedelta(seconds=age_seconds))
    return Presence.objects.create(room=room, user=user, socket_id=socket_id, process=process)


# Messages -----------------------------------------------------------------------------------


def add_messages(room: Room, author: Account, count: int) -> list[Message]:
    Message.objects.bulk_create(Message(room=room, author=author, body=f"message {n}") for n in range(count))
    broadcast.bump(room)  # as posting does: bulk_create sends no signals
    return list(room.messages.order_by("pk"))


@database_sync_to_async
def new_message(room: Room, author: Account, body: str) -> Message:
    return Message.objects.create(room=room, author=author, body=body)


@database_sync_to_async
def stored_message(pk: int) -> Message:
    return Message.objects.get(pk=pk)


@database_sync_to_async
def stored_bodies() -> list[str]:
    return list(Message.objects.order_by("pk").values_list("body", flat=True))


def sent_ago(message: Message, seconds: float) -> Message:
    """Pretend the message was sent `seconds` ago (e.g. to be past the edit window)."""
    message.created_at = timezone.now() - timedelta(seconds=seconds)
    Message.objects.filter(pk=message.pk).update(created_at=message.created_at)
    return message


def mute_for(room: Room, user: Account, minutes: float = 10) -> Mute:
    return Mute.objects.create(room=room, user=user, until=timezone.now() + timedelta(minutes=minutes))


def react_frame(message: Message, emoji: str = "👍") -> str:
    """What a click on one emoji of a message's menu sends (the clicked button's name and value)."""
    return ws_send_frame(action="react", message_id=str(message.pk), emoji=emoji)


# A typing signal as the composer's hidden ws-send element sends it: its hx-vals, nothing else.
TYPING_FRAME = json.dumps(
    {
        "action": "typing",
        "HEADERS": {"HX-Request": "true", "HX-Trigger": "typing-signal", "HX-Trigger-Name": None},
    }
)


# Reading HTML -------------------------------------------------------------------------------

# Marks a message rendered with a ··· menu (for signed-in readers); visitors' messages have none.
MENU = 'class="message-actions'


def message_id(html: str, body: str) -> int:
    """The id of the message showing `body` in a page or frame."""
    match = re.search(rf'id="message-(\d+)"(?:(?!</article>).)*?{re.escape(body)}', html, re.DOTALL)
    assert match, f"no message showing {body!r}"
    return int(match.group(1))


def menu_status(user: Account | None, message_pk: int) -> int:
    """The status `user` gets on opening a message's ···: pages carry only a lazy link to the menu."""
    return client_for(user).get(f"/messages/{message_pk}/menu/").status_code


def menu_of(user: Account | None, message_pk: int) -> str:
    """The menu's HTML as `user` gets it on opening (htmx's fetch), or "" when refused."""
    response = client_for(user).get(f"/messages/{message_pk}/menu/", headers={"HX-Request": "true"})
    return response.text if response.status_code == 200 else ""


def reactions_shown(html: str, message_pk: int) -> dict[str, tuple[int, str]]:
    """The reactions under a message in a page or frame: emoji -> (count, the tooltip's names)."""
    match = re.search(
        rf'<div class="reactions" id="reactions-{message_pk}"[^>]*>(.*?)</div>', html, re.DOTALL
    )
    assert match, f"no reactions under message {message_pk}"
    chips = re.findall(r'title="([^"]*)"[^>]*>(\S+) <b>(\d+)</b>', match.group(1))
    return {emoji: (int(count), who) for who, emoji, count in chips}


def typing_text(html: str) -> str:
    match = re.search(r'<p id="typing"[^>]*>([^<]*)</p>', html)
    assert match, f"no typing line in {html!r}"
    return match.group(1)


def message_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="message-(\d+)"', html)]


def member_names(html: str) -> list[str]:
    return re.findall(r'<span class="member-name">([^<]*)</span>', html)


def message_input(html: str) -> str:
    match = re.search(r'<input type="text" name="message"[^>]*>', html)
    assert match, f"no message input in {html!r}"
    return match.group(0)


# Sockets ------------------------------------------------------------------------------------


def ws_send_frame(message: str | None = None, *, slug: str = "lobby", **fields: object) -> str:
    """The text frame htmx's ws extension sends for `<form id="message-form" ws-send>`."""
    payload: dict[str, object] = dict(fields)
    if message is not None:
        payload["message"] = message
    payload["HEADERS"] = {
        "HX-Request": "true",
        "HX-Trigger": "message-form",
        "HX-Trigger-Name": None,
        "HX-Target": "message-form",
        "HX-Current-URL": f"http://127.0.0.1/rooms/{slug}/",
    }
    return json.dumps(payload)


async def receive_until(socket: WebsocketCommunicator, marker: str, timeout: float = 3.0) -> str:
    """Read frames, skipping others, until one containing `marker` arrives; fail after `timeout` s.

    If the consumer crashed meanwhile, its exception is raised here.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[str] = []
    while True:
        try:
            frame = await receive_text(socket, timeout=max(deadline - loop.time(), 0.01))
        except TimeoutError:
            pytest.fail(f"no frame containing {marker!r} within {timeout} s; got instead: {seen!r}")
        if marker in frame:
            return frame
        seen.append(frame)


async def receive_text(socket: WebsocketCommunicator, timeout: float = 1.0) -> str:
    """The next frame, which must be text: the chat sends nothing else."""
    frame = await socket.receive_from(timeout=timeout)
    assert isinstance(frame, str), f"a binary frame arrived: {frame!r}"
    return frame


async def receive_message_frame(socket: WebsocketCommunicator, body: str) -> str:
    frame = await receive_until(socket, NEW_MESSAGE)
    assert body in frame
    return frame


async def drain(socket: WebsocketCommunicator, quiet: float = 0.2) -> list[str]:
    """Every frame already sent or arriving until the socket has been quiet for `quiet` s."""
    frames: list[str] = []
    while not await socket.receive_nothing(timeout=quiet):
        frames.append(await receive_text(socket))
    return frames


async def settle(*sockets: WebsocketCommunicator) -> None:
    """Let the member-list updates from everyone joining pass."""
    for socket in sockets:
        await drain(socket)


async def receive_close(socket: WebsocketCommunicator, timeout: float = 3.0) -> tuple[list[str], int]:
    """The frames sent until the server closes the socket, and the close code; fail if it stays open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    frames: list[str] = []
    while True:
        try:
            output = await socket.receive_output(timeout=max(deadline - loop.time(), 0.01))
        except TimeoutError:
            pytest.fail(f"the socket was not closed within {timeout} s; it got {frames!r}")
        if output["type"] == "websocket.close":
            return frames, output.get("code", 1000)
        frames.append(output.get("text", ""))


# The database as a snapshot -----------------------------------------------------------------


def snapshot() -> dict[str, list[Any]]:
    """Everything moderation can change, to compare before and after a refused action."""
    return {
        "rooms": list(Room.objects.order_by("pk").values()),
        "messages": list(Message.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values("room", "user", "role")),
        "mutes": list(Mute.objects.order_by("pk").values("room", "user", "until", "reason")),
        "bans": list(Ban.objects.order_by("pk").values("room", "user", "reason")),
        "reports": list(Report.objects.order_by("pk").values()),
        "audit": list(AuditEntry.objects.order_by("pk").values()),
    }


def audit_rows() -> list[tuple]:
    """The audit log, oldest first, as (actor, action, room, target user, message, reason, detail)."""
    return list(
        AuditEntry.objects.order_by("pk").values_list(
            "actor__username", "action", "room__slug", "target_user__username", "message", "reason", "detail"
        )
    )


def without_announcement(frame: str) -> str:
    """The frame as shown on screen: without the line read to screen readers, which repeats the
    text (so counting a text counts each message once)."""
    return frame.split(ANNOUNCEMENT, 1)[0]


# Real daphne processes ----------------------------------------------------------------------


def signed_in_session_in(env: dict[str, str], username: str) -> str:
    """A session key signing `username` (created if new) in, in the database a real server uses."""
    from testsupport.servers import manage

    code = (
        "from chat.standing import Account\n"
        "from testsupport.sessions import session_key_for\n"
        f"user, _ = Account.objects.get_or_create(username={username!r})\n"
        "print(session_key_for(user))\n"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def rss_bytes(pid: int) -> int:
    """A process's resident memory, as `ps` and the kernel's OOM killer count it."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def open_unread_socket(port: int, path: str = "/ws/rooms/lobby/") -> tcp.socket:
    """A websocket handshake sent over a raw TCP connection with a tiny receive buffer that is
    then never read: a browser tab whose machine stopped reading."""
    raw = tcp.socket(tcp.AF_INET, tcp.SOCK_STREAM)
    raw.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    return raw


# Frames of every shape, for property tests --------------------------------------------------

# Any code point, lone surrogates included: JSON escapes them, and a client may send them raw.
LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
ANY_TEXT = st.lists(st.one_of(st.characters(), LONE_SURROGATES), max_size=60).map("".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(["action", "message", "message_id", "user_id", "reason", "minutes", "HEADERS"])
ACTIONS = st.sampled_from(
    ["", "post", "remove", "report", "mute", "unmute", "ban", "unban", "lock", "settings", "form"]
)
FORM_LIKE = st.dictionaries(FIELD_NAMES | ANY_TEXT, ACTIONS | ANY_TEXT | JSON_VALUES, max_size=6)


def _oversized(size: int) -> str:
    return json.dumps({"message": "x" * size})


# (text_data, bytes_data) as the consumer's receive gets them.
FRAMES = st.one_of(
    st.tuples(ANY_TEXT, st.none()),
    st.tuples(st.none(), st.binary(max_size=60)),
    st.tuples(JSON_VALUES.map(json.dumps), st.none()),
    st.tuples(FORM_LIKE.map(json.dumps), st.none()),
    st.tuples(st.integers(16 * 1024 - 20, 16 * 1024 + 20).map(_oversized), st.none()),
)


def close_code_after_reading(raw: tcp.socket, timeout: float = 10.0) -> int:
    """Read a raw websocket to its end: 1011 if it ends with that close frame, else 1006 (the
    connection dropped without one), as a browser would report it."""
    raw.settimeout(timeout)
    received = b""
    try:
        while chunk := raw.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return 1011 if received.endswith(b"\x88\x02\x03\xf3") else 1006


# Mentions and replies -------------------------------------------------------------------------


def mention_counts(html: str) -> dict[str, str]:
    """Room name → the unread-mentions badge next to it on the room list."""
    return {
        name: badges["mention-count"]
        for name, badges in unread_badges(html).items()
        if "mention-count" in badges
    }


def unread_counts(html: str) -> dict[str, str]:
    """Room name → the unread-messages badge next to it on the room list ("3 new")."""
    return {
        name: badges["unread-count"]
        for name, badges in unread_badges(html).items()
        if "unread-count" in badges
    }


def unread_badges(html: str) -> dict[str, dict[str, str]]:
    """Room name → its unread badges on the room list by class (chat/parts/unread.html)."""
    cards = re.findall(
        r'# ([^<]+?)\s*(?:<span class="badge">Private</span>)?\s*'
        r'<span id="unread-\d+" class="unread"[^>]*>(.*?)</span>\s*</span>',
        html,
    )
    return {name: dict(re.findall(r'<span class="([a-z-]+)"[^>]*>([^<]*)', inner)) for name, inner in cards}


def quote_in(html: str, reply_pk: int) -> str:
    """The text of the quote reply `reply_pk` shows of its original ("" if none)."""
    match = re.search(
        rf'<(?:a|p) class="quote[^"]*" id="quote-{reply_pk}"[^>]*>(.*?)</(?:a|p)>', html, re.DOTALL
    )
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split()) if match else ""


def quote_link(html: str, reply_pk: int) -> str | None:
    match = re.search(rf'<a class="quote" id="quote-{reply_pk}" href="([^"]+)"', html)
    return match.group(1) if match else None


def suggestion_values(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', html)
