"""Outgoing webhooks through the real parts: daphne, the background worker (`manage.py db_worker`),
Redis between them, and receivers on loopback, one of them the docs' 20-line example run as written.
"""

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets
from websockets.typing import Origin

from chat import webhooks
from chat.models import Room, WebhookDelivery
from chat.standing import Account
from chat.tests.support import HISTORY, NEW_MESSAGE, signed_in_session_in, ws_send_frame
from testsupport.receiver import Reply, receiving
from testsupport.servers import (
    REPO,
    DaphneServer,
    RedisServer,
    TaskWorker,
    free_port,
    manage,
    production_like_env,
    stop,
    wait_for_port,
)

DOCS = REPO / "docs" / "integrations.md"
WORKER_ENV = {
    "CHAT_WEBHOOK_ALLOW_PRIVATE": "true",  # the receivers are on this host
    "CHAT_WEBHOOK_TIMEOUT_SECONDS": "1",
    "CHAT_WEBHOOK_ATTEMPTS": "2",
    "CHAT_TASK_BACKOFF_SECONDS": "0.2",
    # A task still running 2 s after its worker took it was lost with the worker (kill -9).
    "CHAT_TASK_STALE_SECONDS": "2",
    "CHAT_TASK_SWEEP_SECONDS": "0.2",
}
MAKE_BOT = """
import json
from chat import bots
from chat.models import Room
bot, _ = bots.create({name!r}, webhook_url={url!r})
bots.set_rooms(bot, [Room.objects.get(slug="lobby")])
print(json.dumps({{"secret": bot.webhook_secret}}))
"""
DELIVERIES = """
import json
from chat.models import WebhookDelivery
rows = WebhookDelivery.objects.filter(bot__account__username={name!r}).order_by("pk")
print(json.dumps([
    [row.status, row.attempts, row.response_status, row.last_error, row.reply.body if row.reply else None]
    for row in rows
]))
"""


def last_json(output: str) -> object:
    return json.loads(output.strip().splitlines()[-1])


def receiver_example() -> str:
    """The docs' receiver, exactly as written there."""
    text = DOCS.read_text()
    after = text[text.index("<!-- receiver example") :]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert found, "docs/integrations.md has no receiver example"
    return found.group(1)


@pytest.fixture
def run_docs_receiver(tmp_path: Path) -> Iterator[Callable[[str, int], None]]:
    """Starts the docs' example with a secret on a port; stopped after the test."""
    started: list[subprocess.Popen] = []
    script = tmp_path / "receiver.py"
    script.write_text(receiver_example())

    def start(secret: str, port: int) -> None:
        env = {"PARLEY_WEBHOOK_SECRET": secret, "PORT": str(port), "PATH": "/usr/bin:/bin"}
        process = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.DEVNULL)
        started.append(process)
        wait_for_port(port, process)

    yield start
    for process in started:
        stop(process)


def test_the_docs_receiver_is_twenty_lines_or_so() -> None:
    lines = [line for line in receiver_example().splitlines() if line.strip()]
    assert len(lines) <= 20, f"{len(lines)} lines"


# In this process: the docs' receiver checks the signature ---------------------------------------


@pytest.mark.django_db
def test_the_docs_receiver_refuses_a_delivery_signed_with_another_secret(
    run_docs_receiver: Callable[[str, int], None], settings, lobby: Room, alice: Account
) -> None:
    from chat import bots, services

    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = True
    port = free_port()
    run_docs_receiver("not the bot's secret", port)
    bot, _ = bots.create("helper", webhook_url=f"http://127.0.0.1:{port}/")
    bots.set_rooms(bot, [lobby])
    services.post_message(lobby, alice, {"message": "@helper hello"})

    webhooks.attempt(WebhookDelivery.objects.get().pk)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_status) == (WebhookDelivery.Status.FAILED, 401)
    assert not lobby.messages.filter(author=bot.account).exists()


# Through the worker and daphne -------------------------------------------------------------------


@pytest.fixture
def site(redis_server: RedisServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A migrated database, daphne and a worker sharing it and Redis, as production runs them."""
    (tmp_path / "static").mkdir()
    env = production_like_env(tmp_path, REDIS_URL=redis_server.url, **WORKER_ENV)
    manage(env, "migrate", "--noinput")
    yield env


@pytest.fixture
def worker(site: dict[str, str], tmp_path: Path) -> Iterator[TaskWorker]:
    """`manage.py db_worker`, as supervisor runs it; stopped after the test."""
    running = TaskWorker(site, tmp_path / "worker.log")
    yield running
    running.stop()
    # django-tasks-db logs the traceback of a retried attempt (RetryLater); nothing else may fail.
    failures = [line for line in running.log_path.read_text().splitlines() if "Traceback" in line]
    assert all("chat.jobs.RetryLater: " in line for line in failures), failures


@pytest.fixture
def daphne(site: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """daphne on a free port (its URL is yielded), stopped after the test."""
    server = DaphneServer(site, tmp_path / "daphne.log")
    yield server.url
    server.stop()
    assert "Traceback" not in server.log_path.read_text()


@pytest.fixture
def servers(daphne: str, worker: TaskWorker) -> str:
    """daphne and a worker, as production runs them; daphne's URL."""
    return daphne


def deliveries(env: dict[str, str], name: str) -> list:
    found = last_json(manage(env, "shell", "-c", DELIVERIES.format(name=name)))
    assert isinstance(found, list)
    return found


def wait_for_outcome(env: dict[str, str], name: str, timeout: float = 20) -> list:
    """The bot's deliveries once none is queued any more."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(env, name)
        if rows and all(row[0] != WebhookDelivery.Status.QUEUED for row in rows):
            return rows
        assert time.monotonic() < deadline, f"still queued after {timeout} s: {rows}"
        time.sleep(0.3)


def test_a_mention_is_answered_by_the_docs_receiver_and_the_answer_shows_live(
    site: dict[str, str], servers: str, run_docs_receiver: Callable[[str, int], None]
) -> None:
    port = free_port()
    made = last_json(
        manage(site, "shell", "-c", MAKE_BOT.format(name="helper", url=f"http://localhost:{port}/"))
    )
    assert isinstance(made, dict)
    run_docs_receiver(made["secret"], port)
    alice = signed_in_session_in(site, "alice")
    url = servers.replace("http", "ws") + "/ws/rooms/lobby/"

    origin = Origin(servers)

    async def mention_and_watch() -> str:
        async with (
            websockets.connect(url, origin=origin) as reader,
            websockets.connect(
                url, origin=Origin(servers), additional_headers={"Cookie": f"sessionid={alice}"}
            ) as writer,
        ):
            for socket in (reader, writer):
                while HISTORY not in str(await asyncio.wait_for(socket.recv(), 10)):
                    pass
            await writer.send(ws_send_frame("@helper is the build green?"))
            while True:
                frame = str(await asyncio.wait_for(reader.recv(), 20))
                if NEW_MESSAGE in frame and "you said" in frame:
                    return frame

    frame = asyncio.run(mention_and_watch())

    assert "Hello alice, you said: " in frame and ">@helper</a> is the build green?" in frame
    assert wait_for_outcome(site, "helper")[0][:3] == ["sent", 1, 200]


def test_through_the_worker_a_500_is_retried_once_and_the_reply_posted_once(
    site: dict[str, str], servers: str
) -> None:
    with receiving(Reply(500, b"busy"), Reply(200, b"second time lucky")) as receiver:
        manage(site, "shell", "-c", MAKE_BOT.format(name="flaky", url=receiver.url))
        writer = signed_in_session_in(site, "alice")
        post_as(servers, writer, "@flaky status?")
        rows = wait_for_outcome(site, "flaky")
        received = receiver.received

    assert rows == [["sent", 2, 200, "", "second time lucky"]]
    assert len({request.headers["X-Parley-Delivery"] for request in received}) == 1 and len(received) == 2


def test_through_the_worker_a_receiver_that_times_out_is_retried_then_failed(
    site: dict[str, str], servers: str
) -> None:
    with receiving(Reply(200, b"too late", delay=3)) as receiver:
        manage(site, "shell", "-c", MAKE_BOT.format(name="sleepy", url=receiver.url))
        post_as(servers, signed_in_session_in(site, "alice"), "@sleepy wake up")
        rows = wait_for_outcome(site, "sleepy")
        tries = len(receiver.received)

    [[status, attempts, _, error, reply]] = rows
    assert (status, attempts, reply, tries) == ("failed", 2, None, 2)
    assert "No answer within 1 seconds" in error and "Gave up after 2 attempts" in error


def post_as(server: str, session: str, text: str) -> None:
    url = server.replace("http", "ws") + "/ws/rooms/lobby/"

    async def send() -> None:
        async with websockets.connect(
            url, origin=Origin(server), additional_headers={"Cookie": f"sessionid={session}"}
        ) as socket:
            while HISTORY not in str(await asyncio.wait_for(socket.recv(), 10)):
                pass
            await socket.send(ws_send_frame(text))
            while NEW_MESSAGE not in str(await asyncio.wait_for(socket.recv(), 10)):
                pass

    asyncio.run(send())


def test_a_worker_killed_mid_delivery_loses_nothing_and_posts_each_answer_once(
    site: dict[str, str], daphne: str, worker: TaskWorker
) -> None:
    """kill -9 while a delivery is on the wire, then two more are queued while no worker runs. The
    restarted worker takes the lost one up again (chat/jobs.py's recovery) with the same
    X-Parley-Delivery; each message gets exactly one answer in the room."""
    with receiving(Reply(200, b"answer", delay=5), Reply(200, b"answer")) as receiver:
        manage(site, "shell", "-c", MAKE_BOT.format(name="keeper", url=receiver.url))
        alice = signed_in_session_in(site, "alice")
        post_as(daphne, alice, "@keeper one")
        receiver.wait_for(1)  # on the wire: the receiver answers in 5 s, the sender waits 1 s
        worker.kill()
        for text in ("@keeper two", "@keeper three"):
            post_as(daphne, alice, text)
        worker.start()
        rows = wait_for_outcome(site, "keeper", timeout=30)
        received = receiver.received

    assert [row[0] for row in rows] == ["sent"] * 3
    assert [row[4] for row in rows] == ["answer"] * 3
    ids = [request.headers["X-Parley-Delivery"] for request in received]
    assert len(set(ids)) == 3 and ids.count(ids[0]) == 2, ids  # the cut-off one was sent again
    assert bot_messages_in_lobby(site, "keeper") == ["answer"] * 3


BOT_MESSAGES = """
import json
from chat.models import Message
print(json.dumps(list(Message.objects.filter(author__username={name!r}).values_list("body", flat=True))))
"""


def bot_messages_in_lobby(env: dict[str, str], name: str) -> list:
    found = last_json(manage(env, "shell", "-c", BOT_MESSAGES.format(name=name)))
    assert isinstance(found, list)
    return found
