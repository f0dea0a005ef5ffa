"""The production shape itself (deploy/shape.py): HAProxy with TLS in front of two daphne processes
under supervisor, with PostgreSQL and Redis. What an operator relies on: it comes up over HTTPS,
plain HTTP redirects, a rolling restart brings every process back, supervisor restarts a process
killed with -9 (the background worker too, which then sends what was queued meanwhile), and `down`
leaves nothing running.
"""

import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from deploy.processes import alive
from deploy.shape import Shape
from testsupport.servers import free_port

NO_VERIFY = ssl.create_default_context()
NO_VERIFY.check_hostname, NO_VERIFY.verify_mode = False, ssl.CERT_NONE


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """Status, headers and body (a POST with `body`), without following redirects."""
    opener = urllib.request.build_opener(NoRedirects, urllib.request.HTTPSHandler(context=NO_VERIFY))
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, _lowercase(answer.headers.items()), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, _lowercase(error.headers.items()), error.read().decode()


def _lowercase(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    shape = Shape(
        tmp_path_factory.mktemp("shape"), https_port=free_port(), http_port=free_port(), processes=2
    )
    shape.up()
    try:
        yield shape
    finally:
        shape.down()


def test_https_healthz_answers_through_the_proxy_and_both_processes_are_in_rotation(shape: Shape) -> None:
    status, _, body = get(shape.url + "/healthz")
    assert (status, body) == (200, "ok\n")
    assert shape.server_status() == dict.fromkeys(shape.processes(), "UP")
    assert len({shape.pid(name) for name in shape.processes()}) == 2


def test_plain_http_redirects_to_the_https_port(shape: Shape) -> None:
    status, headers, _ = get(shape.http_url + "/rooms/?x=1")
    assert status == 301
    assert headers["location"] == shape.url + "/rooms/?x=1"


def test_a_body_over_the_cap_is_answered_with_parleys_sentence_by_the_proxy(shape: Shape) -> None:
    over = b"x" * (int(shape.control.env["PARLEY_BODY_CAP"]) + 1)
    url = shape.url + "/rooms/lobby/attachments/"
    sentence = "Files can be at most 10.0\xa0MB (this one is larger)."

    status, _, page = get(url, over)
    assert status == 413
    assert f"<p>{sentence}</p>" in page and "<title" in page
    # htmx swaps 2xx answers only: the notice line, swapped by id, the form left as it was.
    status, headers, fragment = get(url, over, {"HX-Request": "true"})
    assert (status, headers["hx-reswap"]) == (200, "none")
    assert 'id="chat-notice"' in fragment and sentence in fragment
    daphne_logs = "".join(path.read_text() for path in (shape.folder / "logs").glob("daphne_*.log"))
    assert "attachments" not in daphne_logs, "nothing of it reached daphne"


def test_a_rolling_restart_brings_every_process_back_with_a_new_pid(shape: Shape) -> None:
    before = {name: shape.pid(name) for name in shape.processes()}
    steps: list[str] = []
    shape.rolling_restart(on_step=steps.append)
    after = {name: shape.pid(name) for name in shape.processes()}
    assert all(after[name] != before[name] for name in before), (before, after)
    assert not any(alive(pid) for pid in before.values())
    assert shape.server_status() == dict.fromkeys(shape.processes(), "UP")
    assert get(shape.url + "/healthz")[:3:2] == (200, "ok\n")
    # One at a time: the first process is back before the second is drained.
    first, second = shape.processes()
    assert steps.index(f"{first}: back, pid {after[first]}") < steps.index(f"{second}: draining")


def test_supervisor_restarts_a_process_killed_with_9_and_haproxy_takes_it_back(shape: Shape) -> None:
    victim = shape.processes()[0]
    killed = shape.pid(victim)
    os.kill(killed, signal.SIGKILL)
    assert wait_until(lambda: shape.server_status()[victim] == "DOWN", 5), "HAProxy kept a dead process"
    assert get(shape.url + "/healthz")[0] == 200  # the other process answers meanwhile
    assert wait_until(lambda: shape.server_status()[victim] == "UP", 20)
    assert shape.pid(victim) != killed


def test_the_worker_runs_under_supervisor_and_sends_what_was_queued_while_it_was_killed(
    shape: Shape,
) -> None:
    """The emails a worker sends land as files in the shape (no mail server on this machine)."""
    assert " RUNNING " in shape.supervisorctl("status", "worker")
    killed = shape.pid("worker")
    os.kill(killed, signal.SIGKILL)
    emails = shape.folder / "emails"
    queue = (
        "from chat import mentionmail; "
        "mentionmail.send_email.enqueue('ops@example.com', 'Queued while the worker was down', 'body')"
    )
    shape.manage("shell", "-c", queue)
    assert wait_until(lambda: " RUNNING " in shape.supervisorctl("status", "worker"), 30)
    assert shape.pid("worker") != killed

    def sent() -> list[Path]:
        return [path for path in emails.glob("*.log") if "Queued while the worker" in path.read_text()]

    assert wait_until(lambda: len(sent()) == 1, 30)
    time.sleep(1)  # anything doubled would have come by now
    assert len(sent()) == 1


def test_down_leaves_no_process(tmp_path: Path) -> None:
    shape = Shape(tmp_path, https_port=free_port(), http_port=free_port(), processes=1)
    shape.up()
    try:
        pids = [
            int(word) for word in shape.supervisorctl("status").replace(",", " ").split() if word.isdigit()
        ]
        supervisord = int((tmp_path / "supervisord.pid").read_text())
    finally:
        shape.down()
    assert len(pids) == 5  # postgres, redis, haproxy, daphne, the worker
    assert not [pid for pid in [supervisord, *pids] if alive(pid)]
    # HAProxy's worker and PostgreSQL's backends are children: nothing listens on any port either.
    ports = [shape.https_port, shape.http_port, shape.settings.pg_port, shape.settings.redis_port]
    ports += [shape.port(name) for name in shape.processes()]
    assert not [port for port in ports if listening(port)]
