"""Online backups of the embedded SQLite database, and putting one back.

SQLite's backup API copies the database page by page inside one read transaction: the copy is a
consistent snapshot even while daphne writes (in WAL mode writers are not blocked meanwhile).
Restoring goes through the same API in the other direction, so the live file and its WAL stay
consistent. MEDIA_ROOT, when it holds files, travels as a tar beside the copy.
"""

import os
import shutil
import sqlite3
import tarfile
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError


def live_database() -> Path:
    """The SQLite file of the default database; PostgreSQL has its own tools."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        raise CommandError(
            "The database is not SQLite: back it up with pg_dump and restore it with pg_restore."
        )
    return Path(database["NAME"])


def media_archive(copy: Path) -> Path:
    return copy.with_name(copy.name + ".media.tar.gz")


def media_root() -> Path | None:
    return Path(settings.MEDIA_ROOT) if settings.MEDIA_ROOT else None


def copy_database(source: Path, target: Path) -> None:
    """Copy `source` into `target` with SQLite's backup API (target is replaced, page by page)."""
    with (
        closing(sqlite3.connect(source, timeout=20)) as src,
        closing(sqlite3.connect(target, timeout=20)) as dst,
    ):
        src.backup(dst)


def check_copy(path: Path) -> None:
    """Refuse a file that is not an intact Parley database."""
    if not path.is_file():
        raise CommandError(f"No backup at {path}.")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as problem:
        raise CommandError(f"{path} is not an SQLite database ({problem}).") from None
    if verdict != "ok":
        raise CommandError(f"{path} is damaged: {verdict}")
    if not {"django_migrations", "chat_message"} <= tables:
        raise CommandError(f"{path} is not a Parley database.")


def backup(copy: Path) -> str:
    """Write a consistent copy of the live database (and media) to `copy`; a line saying what was done."""
    partial = copy.with_name(copy.name + ".partial")
    partial.unlink(missing_ok=True)
    copy_database(live_database(), partial)
    with closing(sqlite3.connect(partial)) as db:
        db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    check_copy(partial)
    os.replace(partial, copy)
    return f"Database copied to {copy} ({copy.stat().st_size} bytes). " + _backup_media(copy)


def _backup_media(copy: Path) -> str:
    archive, root = media_archive(copy), media_root()
    files = [path for path in root.rglob("*") if path.is_file()] if root and root.is_dir() else []
    if root is None or not files:
        archive.unlink(missing_ok=True)  # an older archive must not come back with this copy
        return "No media files."
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(root, arcname=".")
    os.replace(partial, archive)
    return f"{len(files)} media files to {archive}."


def restore(copy: Path) -> str:
    """Put the copy (and its media) in place; everything is checked, and the media unpacked beside
    MEDIA_ROOT, before anything is replaced: a refused archive leaves the database as it was."""
    check_copy(copy)
    incoming = _unpack_media(copy)
    try:
        copy_database(copy, live_database())
    except BaseException:
        if incoming is not None:
            shutil.rmtree(incoming, ignore_errors=True)
        raise
    return f"Database restored from {copy}. " + _swap_media(incoming)


def _unpack_media(copy: Path) -> Path | None:
    """Unpack the media archive beside MEDIA_ROOT (None when there is none), or refuse it."""
    archive, root = media_archive(copy), media_root()
    if not archive.is_file():
        return None
    if root is None:
        raise CommandError(f"{archive} holds media files: set MEDIA_ROOT to restore them.")
    incoming = root.with_name(root.name + ".restoring")
    shutil.rmtree(incoming, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(incoming, filter="data")  # refuses ../, absolute paths, links out, devices
    except (tarfile.TarError, OSError) as problem:
        shutil.rmtree(incoming, ignore_errors=True)
        raise CommandError(f"{archive} was refused, and nothing was restored: {problem}") from None
    return incoming


def _swap_media(incoming: Path | None) -> str:
    """Swap MEDIA_ROOT for the unpacked files."""
    root = media_root()
    if incoming is None or root is None:
        return "No media archive beside it."
    outgoing = root.with_name(root.name + ".replaced")
    if root.exists():
        os.replace(root, outgoing)
    os.replace(incoming, root)
    shutil.rmtree(outgoing, ignore_errors=True)
    return f"Media restored to {root}."
