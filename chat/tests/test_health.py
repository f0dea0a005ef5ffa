"""/healthz for load balancers, asked of a real daphne with a real Redis behind its channel layer."""

import http.client

from channels.testing import HttpCommunicator

from testsupport.servers import RedisServer


def get(server, path: str, host: str = "10.0.0.7") -> tuple[int, dict[str, str], bytes]:
    """One plain GET, redirects not followed, as a load balancer's probe (often by address)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    status, headers, body = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return status, headers, body


def test_healthz_answers_200_while_redis_runs_and_503_once_it_stops(start_daphne, tmp_path):
    redis = RedisServer(tmp_path)
    server = start_daphne(REDIS_URL=redis.url, SECURE_SSL_REDIRECT="true")
    try:
        status, headers, body = get(server, "/healthz")
        assert (status, body) == (200, b"ok\n")
        assert headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in headers
        assert get(server, "/", host="127.0.0.1")[0] == 301, "every other page redirects to HTTPS"

        redis.stop()
        status, headers, body = get(server, "/healthz")
        assert (status, body) == (503, b"unavailable: channel layer\n")
        assert headers["Cache-Control"] == "no-store"
    finally:
        redis.stop()
    server.stop()
    assert "Traceback" not in server.log_path.read_text()


def test_healthz_answers_503_when_the_database_cannot_be_opened(start_daphne, tmp_path):
    server = start_daphne(DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")

    assert get(server, "/healthz")[::2] == (503, b"unavailable: database\n")


async def test_healthz_in_process_is_200_on_the_default_layers(db):
    from site_config.asgi import application

    response = await HttpCommunicator(application, "GET", "/healthz").get_response()

    assert (response["status"], response["body"]) == (200, b"ok\n")
