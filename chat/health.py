"""GET /healthz for load balancers: 200 when the database and the channel layer answer, else 503;
503 "draining" too once SIGTERM started this process's shutdown, so a proxy's active check takes it
out of rotation whoever stopped it.

Served in front of Django, like chat.pagecache.FastPages: no session, no host check, no HTTPS
redirect, no middleware, never cached. A probe runs `SELECT 1` and PINGs each Redis of the channel
layer (a layer without Redis gets a send and receive on a fresh channel), each within
HEALTHZ_TIMEOUT_SECONDS.
"""

import asyncio
import logging
from collections.abc import Callable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from redis.asyncio import Redis

from chat.hub import hub

log = logging.getLogger(__name__)

PATH = "/healthz"


class HealthCheck:
    """ASGI middleware answering PATH itself and passing every other request on."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if draining():
            body, failing = b"draining\n", ["draining"]
        else:
            failing = await failing_parts()
            body = b"ok\n" if not failing else f"unavailable: {', '.join(failing)}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 503 if failing else 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def draining() -> bool:
    """This process is shutting down: its sockets are being closed and new ones refused."""
    return hub().draining


async def failing_parts() -> list[str]:
    """The names of the parts that did not answer in time, e.g. ["channel layer"]."""
    checks = {"database": _database_answers(), "channel layer": _layer_answers()}
    timeout = settings.HEALTHZ_TIMEOUT_SECONDS
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout) for check in checks.values()), return_exceptions=True
    )
    failing = [name for name, result in zip(checks, results, strict=True) if result is not None]
    for name, result in zip(checks, results, strict=True):
        if result is not None:
            log.warning("healthz: the %s did not answer (%s)", name, type(result).__name__)
    return failing


@database_sync_to_async
def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _layer_answers() -> None:
    layer_settings: dict = settings.CHANNEL_LAYERS["default"]
    hosts = layer_settings.get("CONFIG", {}).get("hosts")
    if hosts:
        for host in hosts:
            url = host if isinstance(host, str) else host["address"]
            async with Redis.from_url(url) as redis:
                await redis.ping()
        return
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS always has a default layer"
    channel = await layer.new_channel("healthz.")  # type: ignore[call-arg]
    await layer.send(channel, {"type": "healthz"})
    await layer.receive(channel)
