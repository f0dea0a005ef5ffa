"""Fixtures: users, rooms, real websockets through the full ASGI stack, a real redis-server.

Helpers the tests import are in chat/tests/support.py."""

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import override_settings

from chat.models import Room
from chat.standing import Account
from chat.tests.support import (
    FAST_HASHERS,
    HISTORY,
    HOST,
    MEMBERS,
    ORIGIN,
    ListOpener,
    SocketOpener,
    make_moderator,
    make_staff,
    receive_until,
    session_cookie,
)
from testsupport.servers import DaphneServer, RedisServer, free_port, manage, production_like_env


@pytest.fixture(scope="session", autouse=True)
def asgi_application_loaded() -> None:
    """Load the ASGI app before any test: its django.setup() applies LOGGING again, which drops the
    handler that `caplog` put on the root logger, so the first test to load it captured no logs."""
    import site_config.asgi  # noqa: F401


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture(autouse=True)
def tasks_run_at_once(settings) -> None:
    """Tasks (emails, webhooks) run in the test's own process as they are queued, after the commit.
    The tests of the worker itself (test_worker.py) run real `manage.py db_worker` processes."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own in-memory channel layer, so no group outlives a test."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest.fixture(autouse=True)
def fresh_page_cache() -> Iterator[None]:
    """Rolled-back tests reuse ids: no page or version may outlive its test."""
    from django.core.cache import cache

    from chat import pagecache

    pagecache.clear()
    cache.clear()
    yield
    pagecache.clear()
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_refusal_counts() -> Iterator[None]:
    """Rolled-back tests reuse user ids: no count of texts refused as too big outlives a test."""
    from chat import services

    services.refused_as_too_big.clear()
    yield
    services.refused_as_too_big.clear()


@pytest.fixture
async def open_socket() -> AsyncIterator[SocketOpener]:
    """Open a websocket through site_config.asgi.application, as a browser on 127.0.0.1 would.

    The socket is connected and has received its initial history + form frame and the
    member list; every socket still open is disconnected after the test.
    """
    from site_config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def _open(
        slug: str = "lobby",
        user: Account | None = None,
        settle: bool = True,
        refused: bool = False,
        session: str | None = None,
    ) -> WebsocketCommunicator:
        """`user` signs in afresh for the socket, unless `session` (a browser's, e.g. a tab's) is given."""
        headers = [(b"origin", ORIGIN), (b"host", HOST)]
        if session is not None:
            headers.append((b"cookie", f"sessionid={session}".encode()))
        elif user is not None:
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
async def open_list() -> AsyncIterator[ListOpener]:
    """Open the room list's socket as `user` (None: a visitor), as the list page does."""
    from site_config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def _open(user: Account | None, refused: bool = False) -> WebsocketCommunicator:
        headers = [(b"origin", ORIGIN), (b"host", HOST)]
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        socket = WebsocketCommunicator(application, "/ws/rooms/", headers=headers)
        opened.append(socket)
        connected, _ = await socket.connect(timeout=5)
        assert connected != refused
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
def alice(db: None) -> Account:
    return Account.objects.create_user(username="alice", password="correct horse battery")


@pytest.fixture
def bob(db: None) -> Account:
    return Account.objects.create_user(username="bob", password="correct horse battery")


@pytest.fixture
def carol(db: None) -> Account:
    return Account.objects.create_user(username="carol", password="correct horse battery")


@pytest.fixture
def moderator(lobby: Room) -> Account:
    return make_moderator(lobby, "mona")


@pytest.fixture
def staff(db: None) -> Account:
    return make_staff("sam")


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


@pytest.fixture(scope="session")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite file (the migrations make the lobby): what real daphne processes run with."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "static").mkdir()  # WhiteNoise warns about a missing STATIC_ROOT
    env = production_like_env(folder)
    manage(env, "migrate", "--noinput")
    return env


@pytest.fixture
def start_daphne(site_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., DaphneServer]]:
    """Starts `daphne site_config.asgi:application` (daphne's options as arguments, extra environment
    as keywords); stops it after."""
    started: list[DaphneServer] = []

    def start(*options: str, **env: str) -> DaphneServer:
        log = tmp_path / f"daphne{len(started)}.log"
        server = DaphneServer({**site_env, **env}, log, options=options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _cache_at(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


@pytest.fixture
def redis_cache(redis_server: RedisServer) -> Iterator[None]:
    """Django's cache on the real redis-server, as in production; emptied before and after."""
    # Not the `settings` fixture: that one is undone after fresh_page_cache has cleared the cache.
    with override_settings(CACHES=_cache_at(redis_server.url)):
        cache.clear()
        yield
        cache.clear()


@pytest.fixture
def unreachable_cache() -> Iterator[None]:
    """Django's cache pointed at a Redis that is not there: every call raises ConnectionError."""
    with override_settings(CACHES=_cache_at(f"redis://127.0.0.1:{free_port()}/0")):
        yield
