from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from chat.management import backups


class Command(BaseCommand):
    help = (
        "Copy the SQLite database to PATH, consistently, while the server runs "
        "(and MEDIA_ROOT's files to PATH.media.tar.gz). PostgreSQL: use pg_dump."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="where to write the copy (replaced if it exists)")

    def handle(self, *args: object, path: Path, **options: object) -> None:
        self.stdout.write(backups.backup(path))
