"""The flood limit holds for posts sent at the same moment, against a real daphne on SQLite and on
PostgreSQL. The limit is counted in the database; only a count and insert made atomic keep two
posts from both seeing room for one more message. Uploads run in a thread each, so one person's
files sent at once are posted concurrently (a socket's frames are handled one at a time)."""

import uuid
from collections.abc import Iterator

import pytest

from chat.tests.files import uploads_at_once
from chat.tests.test_outages import sign_in
from testsupport.servers import manage
from testsupport.with_postgres import PostgresServer

AT_ONCE = 8
LIMIT = 5  # the default CHAT_FLOOD_MESSAGES, in its default 5 s window
STORED = 'from chat.models import Message; print(Message.objects.filter(author__username="{name}").count())'
TOO_FAST = "You&#x27;re sending messages too fast"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, site_env: dict[str, str], tmp_path) -> Iterator[dict[str, str]]:
    """The environment of a server on the session's SQLite file, or on a fresh PostgreSQL."""
    if request.param == "sqlite":
        yield {}
        return
    postgres = PostgresServer()
    own = {"DATABASE_URL": postgres.url, "STATIC_ROOT": str(tmp_path / "static")}
    manage({**site_env, **own}, "migrate", "--noinput")
    yield own
    postgres.remove()


def test_files_sent_at_once_by_one_person_store_no_more_than_the_flood_limit(
    start_daphne, site_env: dict[str, str], database: dict[str, str]
) -> None:
    env = {**site_env, **database}
    server = start_daphne(**database)
    name, session = sign_in(env)
    files = [f"note {number} {uuid.uuid4()}".encode() for number in range(AT_ONCE)]

    answers = uploads_at_once(server.url, [(session, file, "note.txt") for file in files])

    stored = int(manage(env, "shell", "-c", STORED.format(name=name)).split()[-1])
    assert stored == LIMIT, f"{stored} of {AT_ONCE} files sent at once were stored; the limit is {LIMIT}"
    assert all(status == 200 for status, _ in answers)  # htmx's picker: the outcome is in the answer
    assert sum(TOO_FAST in page for _, page in answers) == AT_ONCE - LIMIT
