import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_config.settings")
# Set up Django before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.handshake import format_autobahn_debug_lines_lazily  # noqa: E402
from chat.health import HealthCheck  # noqa: E402
from chat.pagecache import FastPages  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

format_autobahn_debug_lines_lazily()  # a dropped debug line cost every handshake a pformat

application = ProtocolTypeRouter(
    {
        # /healthz (chat/health.py), then cached room pages and room lists, before Django's middleware
        # (chat/pagecache.py).
        "http": HealthCheck(FastPages(django_asgi_app)),
        # URLRouter takes the path() patterns of chat/routing.py; types-channels expects its own pattern type.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),  # type: ignore[arg-type]
    }
)
