"""Background work that survives a killed worker: real `manage.py db_worker` processes on a real SQLite
file, sending mention emails to a real SMTP server started by the test (testsupport/smtp.py).

What an operator relies on: a worker killed with -9, even in the middle of sending, loses nothing and
doubles nothing once a worker runs again; a mail server that refuses for now is tried again with
backoff, and after the last attempt the email is marked failed; a post that is rolled back queues
nothing.
"""

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from chat import mentionmail, services
from chat.models import Room
from chat.standing import Account
from chat.tests.sample_jobs import always_later
from testsupport.servers import TaskWorker, manage, production_like_env
from testsupport.smtp import SmtpServer

TASKS_TABLE = "django_tasks_database_dbtaskresult"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite file the posting process and the workers share (the lobby comes with it)."""
    folder = tmp_path_factory.mktemp("worker-site")
    env = production_like_env(folder)
    manage(env, "migrate", "--noinput")
    return env


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def worker_env(site: dict[str, str], smtp: SmtpServer) -> dict[str, str]:
    """The workers send through the test's SMTP server; a task still running after 3 s lost its worker
    (every send here takes milliseconds), and retries wait 0.2 s, then 0.4 s, and so on."""
    return site | {
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "CHAT_TASK_STALE_SECONDS": "3",
        "CHAT_TASK_SWEEP_SECONDS": "0.5",
        "CHAT_TASK_BACKOFF_SECONDS": "0.2",
    }


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], TaskWorker]]:
    started: list[TaskWorker] = []

    def start(worker_id: str) -> TaskWorker:
        worker = TaskWorker(worker_env, tmp_path / f"worker-{worker_id}.log", ("--worker-id", worker_id))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def post_mentions(env: dict[str, str], names: list[str]) -> list[str]:
    """In a process of its own, as daphne would: accounts with confirmed addresses, then one post in
    the lobby naming them all (one email task each, queued after the commit). Their addresses."""
    script = f"""
from chat import mentionmail, services
from chat.models import Room
from chat.standing import Account
names = {names!r}
for name in names:
    person = Account.objects.create_user(username=name, email=name + "@example.com")
    mentionmail.confirm(person)
poster, _ = Account.objects.get_or_create(username="poster")
text = " ".join("@" + name for name in names)
posted = services.post_message(Room.objects.get(slug="lobby"), poster, {{"message": text}})
assert posted.message is not None, posted
"""
    manage(env, "shell", "-c", script)
    return sorted(f"{name}@example.com" for name in names)


def email_tasks(env: dict[str, str], addresses: list[str]) -> dict[str, dict]:
    """The email tasks to `addresses` as the worker left them: status and the workers that took them."""
    database = env["DATABASE_URL"].removeprefix("sqlite:///")
    with closing(sqlite3.connect(database, timeout=20)) as db:
        rows = db.execute(f"SELECT status, worker_ids, args_kwargs FROM {TASKS_TABLE}").fetchall()
    tasks = {}
    for status, worker_ids, args_kwargs in rows:
        address = json.loads(args_kwargs)["args"][0]
        if address in addresses:
            tasks[address] = {"status": status, "workers": json.loads(worker_ids)}
    return tasks


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def all_finished(env: dict[str, str], addresses: list[str]) -> Callable[[], bool]:
    def finished() -> bool:
        tasks = email_tasks(env, addresses)
        return len(tasks) == len(addresses) and all(
            task["status"] in ("SUCCESSFUL", "FAILED") for task in tasks.values()
        )

    return finished


def test_a_worker_killed_in_the_middle_of_an_email_loses_nothing_and_doubles_nothing(
    worker_env: dict[str, str], smtp: SmtpServer, start_worker: Callable[[str], TaskWorker]
) -> None:
    addresses = post_mentions(worker_env, ["ann", "ben", "cat", "dan", "eve", "fay"])
    assert {task["status"] for task in email_tasks(worker_env, addresses).values()} == {"READY"}

    smtp.hold_next()  # the first email is sent in full, but its 250 never comes
    first = start_worker("first")
    assert smtp.held.wait(20), "the worker never got as far as sending an email"
    first.kill()
    assert smtp.dropped.wait(5), "the mail server did not see the sender go"
    [cut_off] = [a for a, task in email_tasks(worker_env, addresses).items() if task["status"] == "RUNNING"]
    assert smtp.recipients() == []  # the cut-off email was never acknowledged, so never delivered

    start_worker("second")
    assert wait_until(all_finished(worker_env, addresses)), email_tasks(worker_env, addresses)

    assert smtp.recipients() == addresses  # every email once: nothing lost, nothing doubled
    tasks = email_tasks(worker_env, addresses)
    assert {task["status"] for task in tasks.values()} == {"SUCCESSFUL"}
    assert tasks[cut_off]["workers"] == ["first", "second"]  # the killed attempt counts as one
    others = [task["workers"] for address, task in tasks.items() if address != cut_off]
    assert others == [["second"]] * 5


def test_a_mail_server_that_refuses_for_now_gets_the_email_once_it_takes_it(
    worker_env: dict[str, str], smtp: SmtpServer, start_worker: Callable[[str], TaskWorker]
) -> None:
    smtp.refuse(2)
    [address] = post_mentions(worker_env, ["gus"])
    start_worker("patient")
    assert wait_until(all_finished(worker_env, [address]))
    assert smtp.recipients() == [address]
    assert email_tasks(worker_env, [address])[address] == {
        "status": "SUCCESSFUL",
        "workers": ["patient"] * 3,  # refused twice, then sent
    }


def test_an_email_the_mail_server_always_refuses_is_marked_failed_after_its_attempts_even_across_a_kill(
    worker_env: dict[str, str], smtp: SmtpServer, start_worker: Callable[[str], TaskWorker]
) -> None:
    smtp.refuse(1000)
    [address] = post_mentions(worker_env, ["hal"])
    first = start_worker("one")
    assert wait_until(lambda: len(email_tasks(worker_env, [address])[address]["workers"]) >= 2)
    first.kill()
    start_worker("two")
    assert wait_until(all_finished(worker_env, [address]))

    task = email_tasks(worker_env, [address])[address]
    assert task["status"] == "FAILED"
    assert len(task["workers"]) == mentionmail.EMAIL_ATTEMPTS
    assert smtp.recipients() == []


@pytest.mark.django_db(transaction=True)
def test_a_post_rolled_back_queues_no_email_and_a_committed_one_queues_one(
    lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    bob.email = "bob@example.com"
    bob.save()
    mentionmail.confirm(bob)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.post_message(lobby, alice, {"message": "@bob rolled back"})
        raise RuntimeError("something after the post failed")
    assert not DBTaskResult.objects.exists()

    services.post_message(lobby, alice, {"message": "@bob committed"})
    [queued] = DBTaskResult.objects.all()
    assert (queued.task_path, queued.status) == ("chat.mentionmail.send_email", "READY")
    assert queued.args_kwargs["args"][0] == "bob@example.com"


def test_a_job_that_keeps_failing_is_tried_its_attempts_then_given_up_once(
    worker_env: dict[str, str], start_worker: Callable[[str], TaskWorker], tmp_path: Path
) -> None:
    """What webhooks rely on (chat/jobs.py): attempt() counts, on_give_up runs once, after the last."""
    record = tmp_path / "record.txt"
    queue = f"from chat.tests.sample_jobs import always_later; always_later.enqueue({str(record)!r})"
    manage(worker_env, "shell", "-c", queue)
    start_worker("steady")
    assert wait_until(lambda: record.exists() and "gave up" in record.read_text())
    time.sleep(1)  # a fourth attempt or a second giving up would come by now (backoff: 0.2, 0.4 s)
    assert record.read_text().splitlines() == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
        "gave up: the receiver answered 503",
    ]


@pytest.mark.django_db(transaction=True)
def test_with_the_immediate_backend_a_job_is_tried_once_and_given_up(tmp_path: Path) -> None:
    """Tests that are not about the worker run tasks at once (conftest.py): nothing retries there."""
    record = tmp_path / "record.txt"
    always_later.enqueue(str(record))
    assert record.read_text().splitlines() == ["attempt 1", "gave up: the receiver answered 503"]
