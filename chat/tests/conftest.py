"""Shared fixtures: users, rooms, real websockets through the full ASGI stack, a real redis-server."""

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from chat.models import Room
from testsupport.servers import RedisServer

ORIGIN = b"http://127.0.0.1"
HOST = b"127.0.0.1"

# Markers that identify each kind of fragment the consumer sends.
HISTORY = 'id="messages"'
FORM = 'id="message-form"'
MEMBERS = 'id="members"'
NOTICE = 'id="chat-notice"'
NEW_MESSAGE = 'hx-swap-oob="beforeend:#messages"'


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
            frame = await socket.receive_from(timeout=max(deadline - loop.time(), 0.01))
        except TimeoutError:
            pytest.fail(f"no frame containing {marker!r} within {timeout} s; got instead: {seen!r}")
        if marker in frame:
            return frame
        seen.append(frame)


async def drain(socket: WebsocketCommunicator, quiet: float = 0.2) -> list[str]:
    """Every frame already sent or arriving until the socket has been quiet for `quiet` s."""
    frames: list[str] = []
    while not await socket.receive_nothing(timeout=quiet):
        frames.append(await socket.receive_from())
    return frames


def session_cookie(user: AbstractBaseUser) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


SocketOpener = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own in-memory channel layer, so no group outlives a test."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest.fixture
async def open_socket() -> AsyncIterator[SocketOpener]:
    """Open a websocket through site_config.asgi.application, as a browser on 127.0.0.1 would.

    The socket is connected and has received its initial history + form frame and the
    member list; every socket still open is disconnected after the test.
    """
    from site_config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def _open(
        slug: str = "lobby", user: AbstractBaseUser | None = None, settle: bool = True, refused: bool = False
    ) -> WebsocketCommunicator:
        headers = [(b"origin", ORIGIN), (b"host", HOST)]
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        socket = WebsocketCommunicator(application, f"/ws/rooms/{slug}/", headers=headers)
        opened.append(socket)
        connected, _ = await socket.connect(timeout=5)
        if refused:
            assert not connected, f"the socket on /ws/rooms/{slug}/ should have been refused"
            return socket
        assert connected, f"the socket on /ws/rooms/{slug}/ was refused"
        if settle:
            await receive_until(socket, HISTORY)
            await receive_until(socket, MEMBERS)
        return socket

    yield _open
    for socket in opened:
        if not socket.future.done():
            await socket.disconnect()


@pytest.fixture
def lobby(db: None) -> Room:
    room, _ = Room.objects.get_or_create(slug="lobby", defaults={"name": "Lobby"})
    return room


@pytest.fixture
def other_room(db: None) -> Room:
    return Room.objects.create(slug="kitchen", name="Kitchen")


@pytest.fixture
def alice(django_user_model: type[AbstractBaseUser]) -> AbstractBaseUser:
    return django_user_model.objects.create_user(username="alice", password="correct horse battery")


@pytest.fixture
def bob(django_user_model: type[AbstractBaseUser]) -> AbstractBaseUser:
    return django_user_model.objects.create_user(username="bob", password="correct horse battery")


@pytest.fixture
def carol(django_user_model: type[AbstractBaseUser]) -> AbstractBaseUser:
    return django_user_model.objects.create_user(username="carol", password="correct horse battery")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not installed, so the channel layer cannot be tested over Redis. "
            "Install it (e.g. `apt-get install redis-server`) and run the tests again.",
            pytrace=False,
        )
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
