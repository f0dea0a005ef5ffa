"""The tutorial's ASGI application: websockets only, through the same origin check and router as Parley."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.tutorial.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from bench.tutorial.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            # Channels' URLRouter reads Django's path() patterns; django-stubs only knows view callables.
            URLRouter([path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi())])  # type: ignore[arg-type, list-item]
        ),
    }
)
