from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        # Connects the page cache's invalidation to model saves (chat/broadcast.py).
        from chat import broadcast  # noqa: F401
