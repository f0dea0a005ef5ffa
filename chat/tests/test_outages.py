"""Outages and restarts against real servers: two daphne processes, a redis-server stopped and
started again, SIGTERM and kill -9. Each test checks what the user sees and that every message
acknowledged is stored once and shown once, and nothing refused is stored.
"""

import asyncio
import http.client
import re
import signal
import uuid
from collections.abc import Iterator

import pytest
import websockets
from django.utils.html import escape
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat.consumers import DATABASE_DOWN, TRY_AGAIN_LATER
from chat.hub import BROKER_DOWN
from chat.tests.support import (
    FORM,
    HISTORY,
    MEMBERS,
    NEW_MESSAGE,
    NOTICE,
    signed_in_session_in,
    without_announcement,
    ws_send_frame,
)
from chat.unavailable import CACHE_DOWN
from chat.unavailable import DATABASE_DOWN as PAGE_DATABASE_DOWN
from testsupport.servers import DaphneServer, RedisServer, manage
from testsupport.with_postgres import PostgresServer

COUNT = 'from chat.models import Message; print(Message.objects.filter(body="{body}").count())'
OUTAGE_NOTICE = escape(BROKER_DOWN)  # as the page shows it
FAST = {"CHAT_BROKER_CHECK_SECONDS": "0.2", "CHAT_FLOOD_MESSAGES": "1000"}


def sign_in(env: dict[str, str]) -> tuple[str, str]:
    """A new user (unique: the site database lives for the session) and a session signing them in."""
    name = f"u{uuid.uuid4().hex[:10]}"
    return name, signed_in_session_in(env, name)


def stored(env: dict[str, str], body: str) -> int:
    return int(manage(env, "shell", "-c", COUNT.format(body=body)).split()[-1])


class Page:
    """A browser tab's socket: what htmx's ws extension sends and receives, frame by frame."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.frames: list[str] = []

    @classmethod
    async def open(cls, server: DaphneServer, session: str | None = None) -> "Page":
        headers = {"Cookie": f"sessionid={session}"} if session else {}
        url = server.url.replace("http", "ws") + "/ws/rooms/lobby/"
        page = cls(await websockets.connect(url, origin=Origin(server.url), additional_headers=headers))
        await page.until(HISTORY)
        return page

    async def until(self, marker: str, timeout: float = 8) -> str:
        """The next frame containing `marker` (others are kept in `frames`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                frame = str(await asyncio.wait_for(self.socket.recv(), max(deadline - loop.time(), 0.01)))
            except TimeoutError:
                pytest.fail(f"no frame with {marker!r} within {timeout} s; got {self.frames[-5:]!r}")
            self.frames.append(frame)
            if marker in frame:
                return frame

    async def post(self, text: str) -> None:
        await self.socket.send(ws_send_frame(text))

    async def closed(self, timeout: float = 15) -> int | None:
        """Read until the server closes; the close code the browser sees (1006: no close frame)."""
        try:
            while True:
                self.frames.append(str(await asyncio.wait_for(self.socket.recv(), timeout)))
        except ConnectionClosed:
            pass
        return self.socket.close_code if self.socket.close_code is not None else 1006

    def shown(self, text: str) -> int:
        """How often `text` was shown as a new message or in a history replay (the last one counts)."""
        histories = [i for i, frame in enumerate(self.frames) if HISTORY in frame]
        start = histories[-1] if histories else 0
        shown = [without_announcement(f) for f in self.frames[start:] if HISTORY in f or NEW_MESSAGE in f]
        return sum(frame.count(text) for frame in shown)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server this test may stop and start again (on the same port)."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def redis_outage(a: DaphneServer, b: DaphneServer, redis: RedisServer, env: dict[str, str]) -> None:
    _, session = sign_in(env)
    talker, listener = await Page.open(a, session), await Page.open(b)
    await talker.post("before the outage")
    await listener.until("before the outage")

    redis.stop()
    await talker.until(OUTAGE_NOTICE)
    await listener.until(OUTAGE_NOTICE)  # listeners stay open, and are told
    await talker.post("during the outage")
    await talker.until(OUTAGE_NOTICE)
    assert page_status(a) == (503, CACHE_DOWN)  # pages need the cache on the same Redis
    await asyncio.sleep(1)

    redis.start()
    for page in (talker, listener):  # caught up by themselves, the notice taken down
        await page.until(HISTORY)
        await page.until(NOTICE)
    await talker.post("after the outage")
    await talker.until(FORM)  # acknowledged: a fresh form
    for page in (talker, listener):
        await page.until("after the outage")
    late = await Page.open(b)  # the first connect after the broker returned works

    for page in (talker, listener, late):
        assert [page.shown(f"{when} the outage") for when in ("before", "during", "after")] == [1, 0, 1]
        assert page.socket.close_code is None, "the socket stayed open"
    assert [stored(env, body) for body in ("before the outage", "during the outage", "after the outage")] == [
        1,
        0,
        1,
    ]


def test_a_redis_outage_keeps_sockets_open_refuses_posts_then_catches_up(start_daphne, site_env, own_redis):
    a = start_daphne(REDIS_URL=own_redis.url, **FAST)
    b = start_daphne(REDIS_URL=own_redis.url, **FAST)

    asyncio.run(redis_outage(a, b, own_redis, site_env))

    for server in (a, b):  # no socket was closed by a crash (1011)
        assert "Exception inside application" not in server.log_path.read_text()


async def graceful_restart(a: DaphneServer, b: DaphneServer, env: dict[str, str], body: str) -> None:
    _, session = sign_in(env)
    talker, listener = await Page.open(a, session), await Page.open(b)
    await talker.post(body)  # in flight as the process is told to stop
    a.signal(signal.SIGTERM)

    assert await talker.closed() == TRY_AGAIN_LATER  # htmx reconnects at once
    acknowledged = any(FORM in frame for frame in talker.frames)
    assert a.wait() == 0, "a clean exit"
    again = await Page.open(b, session)  # the page reconnects to the other process
    copies = stored(env, body)
    # Acknowledged means stored once; a frame the process never read is not stored.
    assert copies == (1 if acknowledged else 0)
    assert again.shown(body) == copies
    if copies:
        await listener.until(body)
        assert listener.shown(body) == 1
    await again.post(f"{body}, again")
    await listener.until(f"{body}, again")


def test_sigterm_closes_every_socket_with_a_retried_code_and_loses_no_post(
    start_daphne, site_env, redis_server
):
    a = start_daphne(REDIS_URL=redis_server.url)
    b = start_daphne(REDIS_URL=redis_server.url)

    asyncio.run(graceful_restart(a, b, site_env, f"in flight {uuid.uuid4().hex[:6]}"))

    log = a.log_path.read_text()
    assert "closing 1 sockets" in log
    assert "Traceback" not in log


async def killed(a: DaphneServer, b: DaphneServer, env: dict[str, str]) -> None:
    name, session = sign_in(env)
    watcher, doomed = await Page.open(a), await Page.open(b, session)
    await watcher.until(name)
    b.signal(signal.SIGKILL)

    assert await doomed.closed() == 1006  # htmx retries after 1006 too
    while True:  # presence of the killed process expires: the name leaves the list
        frame = await watcher.until(MEMBERS, timeout=15)
        if not re.search(rf">{name}<", frame):
            break


def test_kill_9_drops_sockets_with_1006_and_its_presence_expires(start_daphne, site_env, redis_server):
    quick = {"CHAT_PRESENCE_HEARTBEAT_SECONDS": "0.5", "CHAT_PRESENCE_TTL_SECONDS": "2"}
    a = start_daphne(REDIS_URL=redis_server.url, **quick)
    b = start_daphne(REDIS_URL=redis_server.url, **quick)

    asyncio.run(killed(a, b, site_env))


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


def page_status(server: DaphneServer, path: str = "/") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path, headers={"Host": "127.0.0.1"})
    response = connection.getresponse()
    status, body = response.status, response.read().decode(errors="replace")
    connection.close()
    return status, body


async def database_outage(server: DaphneServer, db: PostgresServer, env: dict[str, str]) -> None:
    _, session = sign_in(env)
    talker = await Page.open(server, session)
    await talker.post("before the database stopped")
    await talker.until(FORM)

    db.stop()
    assert page_status(server) == (503, PAGE_DATABASE_DOWN)
    assert page_status(server, "/rooms/lobby/") == (503, PAGE_DATABASE_DOWN)
    await talker.post("while the database is down")
    await talker.until(escape(DATABASE_DOWN))

    db.start()  # no restart of daphne: broken connections are dropped and reopened
    assert page_status(server)[0] == 200, "the first page after the database returned"
    await talker.post("after the database returned")
    await talker.until(FORM)
    assert talker.socket.close_code is None, "the socket stayed open throughout"
    bodies = ("before the database stopped", "while the database is down", "after the database returned")
    assert [stored(env, body) for body in bodies] == [1, 0, 1]


def test_a_database_outage_answers_503_refuses_posts_and_recovers_without_a_restart(
    start_daphne, site_env, postgres, tmp_path
):
    own = {"DATABASE_URL": postgres.url, "CONN_MAX_AGE": "60", "STATIC_ROOT": str(tmp_path / "static")}
    env = {**site_env, **own}
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput")  # the pages link the hashed CSS
    server = start_daphne(**own)

    asyncio.run(database_outage(server, postgres, env))


async def healthz_while_draining(server: DaphneServer, env: dict[str, str]) -> list[tuple[int, str]]:
    """/healthz's answers from SIGTERM until the process stops listening."""
    _, session = sign_in(env)
    page = await Page.open(server, session)  # a socket: the hub drains it on SIGTERM
    server.signal(signal.SIGTERM)
    answers: list[tuple[int, str]] = []
    while True:
        try:
            answers.append(await asyncio.to_thread(page_status, server, "/healthz"))
        except OSError:  # refused: the process is gone
            break
        await asyncio.sleep(0.05)
    assert await page.closed() == TRY_AGAIN_LATER
    return answers


def test_healthz_says_draining_from_sigterm_so_the_proxy_takes_the_process_out(start_daphne, site_env):
    server = start_daphne()

    answers = asyncio.run(healthz_while_draining(server, site_env))

    assert (503, "draining\n") in answers, answers
    assert (200, "ok\n") not in answers[answers.index((503, "draining\n")) :], "never ok again"
    assert server.wait() == 0
