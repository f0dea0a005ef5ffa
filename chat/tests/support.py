"""What the tests share: people with a role, messages, ws-send frames, reading sockets, DB snapshots.

Fixtures live in conftest.py; everything a test imports comes from here.
"""

import asyncio
import gzip
import json
import re
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
NEW_MESSAGE = 'hx-swap-oob="beforeend:#messages"'
HEADER = 'id="room-header"'
TOMBSTONE = "Message removed by a moderator"
REMOVED_FROM_ROOM = 4403
SESSION_ENDED = 4401
MODERATION_PANEL = 'id="moderation-tools"'

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SocketOpener = Callable[..., Awaitable[WebsocketCommunicator]]


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


def get_page(client: Client, path: str) -> Page:
    """GET `path` as daphne would serve it: the page cache's fast path first, Django when that
    passes. The client keeps the cookies either sets, like a browser."""
    from site_config.asgi import application

    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", cookies.encode()), (b"accept-encoding", b"gzip")],
    }
    health_check = application.application_mapping["http"]
    assert isinstance(health_check, HealthCheck)  # /healthz, in front of the page cache
    fast_pages = health_check.app
    assert isinstance(fast_pages, FastPages)
    hit = fast_pages.serve(scope)
    response: HttpResponseBase
    if hit is None:
        response = client.get(path, headers={"accept-encoding": "gzip"})
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
    """The menu's HTML as `user` gets it on opening, or "" when refused."""
    response = client_for(user).get(f"/messages/{message_pk}/menu/")
    return response.text if response.status_code == 200 else ""


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


# Mentions and replies -------------------------------------------------------------------------


def mention_counts(html: str) -> dict[str, str]:
    """Room name → the unread-mentions badge next to it on the room list."""
    found = re.findall(
        r'# ([^<]+?)\s*(?:<span class="badge">Private</span>)?\s*<span class="mention-count"[^>]*>([^<]*)<',
        html,
    )
    return dict(found)


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
