"""`manage.py prune_webhook_deliveries`: forget sent and failed webhook deliveries older than N days.

Run daily beside `prune_db_task_results` (docs/operations.md); deliveries still queued are kept.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat import webhooks


class Command(BaseCommand):
    help = "Delete sent and failed webhook deliveries older than --min-age-days (30)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--min-age-days", type=float, default=30, help="keep younger ones (default 30)")

    def handle(self, *args: Any, min_age_days: float, **options: Any) -> None:
        deleted = webhooks.prune(min_age_days)
        self.stdout.write(f"Deleted {deleted} webhook deliveries older than {min_age_days:g} days.")
