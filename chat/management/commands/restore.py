from pathlib import Path

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.management import backups


class Command(BaseCommand):
    help = (
        "Put a copy made by `backup` back in place of the SQLite database (and MEDIA_ROOT). "
        "Stop every server process first, then pass --force. PostgreSQL: use pg_restore."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a copy made by `manage.py backup`")
        parser.add_argument(
            "--force", action="store_true", help="replace the database: every server process is stopped"
        )

    def handle(self, *args: object, path: Path, force: bool, **options: object) -> None:
        backups.check_copy(path)
        if not force:
            raise CommandError(
                "Restoring replaces the whole database and media, and running servers would keep "
                "serving what they hold: stop every server process, then run this again with --force."
            )
        self.stdout.write(backups.restore(path))
        cache.clear()  # no page rendered from the replaced data may be served again
