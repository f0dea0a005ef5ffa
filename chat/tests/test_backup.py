"""`manage.py backup` and `restore` on a real SQLite file, the way an operator runs them."""

import sqlite3
import subprocess
import sys
import tarfile
import time
from contextlib import closing
from pathlib import Path

import pytest

from testsupport.servers import REPO, manage, production_like_env

WRITE_FOR_SECONDS = """
import time
from pathlib import Path
from chat.models import Message, Room
from chat.standing import Account
author = Account.objects.create_user(username="writer")
lobby, number, until = Room.objects.get(slug="lobby"), 0, time.monotonic() + {seconds}
while time.monotonic() < until and not Path({stop!r}).exists():
    Message.objects.create(room=lobby, author=author, body=f"m{{number}}")
    number += 1
print(number)
"""


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def bodies(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as db:
        return [body for (body,) in db.execute("SELECT body FROM chat_message ORDER BY id")]


def wait_for_rows(database: Path, more_than: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(bodies(database)) > more_than:
                return
        except sqlite3.OperationalError:  # the table is not there yet, or the file is busy
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no more than {more_than} messages within {timeout} s")


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    env = production_like_env(tmp_path, MEDIA_ROOT=str(tmp_path / "media"))
    manage(env, "migrate", "--noinput")
    return env


def test_a_backup_taken_while_messages_are_written_is_a_consistent_copy(site, tmp_path):
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", WRITE_FOR_SECONDS.format(seconds=120, stop=str(stop))],
        cwd=REPO,
        env=site,
        stdout=subprocess.PIPE,
        text=True,
    )
    # However slow the machine: the backup starts once rows are being written, and the writer
    # stops only once it has written more after the backup ended.
    wait_for_rows(tmp_path / "db.sqlite3", more_than=0)
    result = run(site, "backup", str(tmp_path / "copy.sqlite3"))
    if result.returncode == 0:
        wait_for_rows(tmp_path / "db.sqlite3", more_than=len(bodies(tmp_path / "copy.sqlite3")))
    stop.touch()
    written = int(writer.communicate(timeout=60)[0].split()[-1])

    assert result.returncode == 0, result.stderr
    assert "Database copied to" in result.stdout and "No media files." in result.stdout
    copied = bodies(tmp_path / "copy.sqlite3")
    assert 0 < len(copied) < written, "the copy was taken mid-way"
    assert copied == [f"m{n}" for n in range(len(copied))], "every row up to a moment, none missing"
    assert not (tmp_path / "copy.sqlite3-wal").exists()


def test_restore_needs_force_then_puts_the_database_and_media_back(site, tmp_path):
    media = Path(site["MEDIA_ROOT"])
    (media / "avatars").mkdir(parents=True)
    (media / "avatars" / "a.png").write_bytes(b"png")
    manage(site, "shell", "-c", WRITE_FOR_SECONDS.format(seconds=0.2, stop=str(tmp_path / "never")))
    database, copy = tmp_path / "db.sqlite3", tmp_path / "copy.sqlite3"
    before = bodies(database)
    assert "1 media files" in run(site, "backup", str(copy)).stdout

    with closing(sqlite3.connect(database)) as db, db:
        db.execute("DELETE FROM chat_message")
    (media / "avatars" / "a.png").unlink()
    (media / "later.txt").write_text("added after the backup")

    refused = run(site, "restore", str(copy))
    assert refused.returncode != 0
    assert "stop every server process" in refused.stderr and "--force" in refused.stderr
    assert bodies(database) == []

    restored = run(site, "restore", "--force", str(copy))
    assert restored.returncode == 0, restored.stderr
    assert bodies(database) == before != []
    assert (media / "avatars" / "a.png").read_bytes() == b"png"
    assert not (media / "later.txt").exists()


def test_restore_refuses_a_file_that_is_not_a_parley_database(site, tmp_path):
    (tmp_path / "notes.txt").write_text("not a database")

    result = run(site, "restore", "--force", str(tmp_path / "notes.txt"))

    assert result.returncode != 0 and "is not an SQLite database" in result.stderr


def test_postgresql_users_are_sent_to_pg_dump(tmp_path):
    env = production_like_env(tmp_path, DATABASE_URL="postgres://parley:secret@127.0.0.1:1/parley")

    result = run(env, "backup", str(tmp_path / "copy"))

    assert result.returncode != 0 and "pg_dump" in result.stderr


def test_a_refused_media_archive_leaves_the_database_and_media_as_they_were(site, tmp_path):
    media = Path(site["MEDIA_ROOT"])
    media.mkdir()
    (media / "kept.txt").write_text("today's file")
    manage(site, "shell", "-c", WRITE_FOR_SECONDS.format(seconds=0.2, stop=str(tmp_path / "never")))
    database, copy = tmp_path / "db.sqlite3", tmp_path / "copy.sqlite3"
    assert "1 media files" in run(site, "backup", str(copy)).stdout
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("DELETE FROM chat_message")  # today's state, which the refused restore must keep
    # The archive beside the copy was tampered with: one entry climbs out of MEDIA_ROOT.
    escaping = tmp_path / "escaping.txt"
    escaping.write_text("written outside MEDIA_ROOT")
    with tarfile.open(copy.with_name(copy.name + ".media.tar.gz"), "w:gz") as tar:
        tar.add(escaping, arcname="../escaped.txt")

    result = run(site, "restore", "--force", str(copy))

    assert result.returncode != 0
    assert bodies(database) == [], "the database was not replaced"
    assert "was refused, and nothing was restored" in result.stderr
    assert (media / "kept.txt").read_text() == "today's file"
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("media")) == ["media"]
