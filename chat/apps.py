from django.apps import AppConfig
from django.core import checks
from django.db import connections
from django.db.models.signals import post_migrate


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        # Connects the page cache's invalidation to model saves (chat/broadcast.py).
        # chat.accounts: no session is ever made for a bot's account (its user_logged_in receiver).
        from chat import (
            accounts,  # noqa: F401
            broadcast,  # noqa: F401
            pagecache,
        )

        # Says when MIDDLEWARE changed under the page cache's hits (they are then left to Django).
        checks.register(pagecache.check_middleware)

        post_migrate.connect(restore_search_index, sender=self)

        # A stored message that mentions a bot, or is written to one, calls its webhook.
        from chat import webhooks

        webhooks.connect()


def restore_search_index(using: str = "default", **kwargs: object) -> None:
    """SQLite's schema editor rebuilds a table to alter it, dropping its triggers: after every
    migrate, put the search index's back (once its migration has run; see chat/search.py)."""
    from chat.models import MentionEmails
    from chat.search import install_index

    db = connections[using]
    if MentionEmails._meta.db_table in db.introspection.table_names():
        install_index(db)
