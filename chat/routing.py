from django.urls import path, re_path

from chat.consumers import RoomConsumer
from chat.room_list_consumer import RoomListConsumer


async def refuse_socket(scope: dict, receive, send) -> None:
    """Any other websocket path: refuse the handshake (daphne answers 403), no error, no traceback.

    Without it Channels' URLRouter raises "No route found", which daphne turns into a 500 and logs
    with a traceback, for anyone who asks.
    """
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


websocket_urlpatterns = [
    # Channels' URLRouter reads Django's path() patterns; django-stubs only knows view callables.
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/rooms/", RoomListConsumer.as_asgi()),  # type: ignore[arg-type]  # the room list's counts
    # Last: everything else, e.g. /ws/nope/ or a slug with %00 in it.
    re_path(r"", refuse_socket),  # type: ignore[arg-type]
]
