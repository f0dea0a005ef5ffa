"""Pages as a real daphne serves them: what a HEAD gets, and what a refusal writes to the log."""

import http.client
from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport.servers import DaphneServer, manage

# What differs from one response to the next whatever the method: the time, the per-response nonce.
PER_RESPONSE = {"date", "content-security-policy", "set-cookie"}


def fetch(server: DaphneServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return (
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


@pytest.fixture
def server(
    start_daphne: Callable[..., DaphneServer], site_env: dict[str, str], tmp_path: Path
) -> DaphneServer:
    """A production-like daphne whose pages can link their hashed CSS."""
    static = {"STATIC_ROOT": str(tmp_path / "static")}
    manage({**site_env, **static}, "collectstatic", "--noinput")
    return start_daphne(**static)


def test_a_head_of_the_room_list_and_a_room_answers_as_its_get_without_the_body(server: DaphneServer) -> None:
    for path in ("/", "/rooms/lobby/"):
        # The first HEAD renders the page (Django), the last is served from the page cache.
        first_head, get, cached_head = (fetch(server, method, path) for method in ("HEAD", "GET", "HEAD"))

        status, headers, body = get
        assert status == 200 and b"Lobby" in body
        for head_status, head_headers, head_body in (first_head, cached_head):
            assert (head_status, head_body) == (200, b""), path
            assert int(head_headers["content-length"]) == len(body)
            assert {name: value for name, value in head_headers.items() if name not in PER_RESPONSE} == {
                name: value for name, value in headers.items() if name not in PER_RESPONSE
            }


def test_a_refused_request_is_one_line_in_the_log_without_a_traceback(server: DaphneServer) -> None:
    status, _, body = fetch(server, "GET", "/rooms/lobby/mentions/")  # visitors may not mention

    assert status == 403 and body
    server.stop()
    log = server.log_path.read_text()
    refusals = [line for line in log.splitlines() if "Forbidden" in line]
    assert len(refusals) == 1, log
    assert "/rooms/lobby/mentions/" in refusals[0] and "Sign in to mention people." in refusals[0]
    assert "Traceback" not in log, log
