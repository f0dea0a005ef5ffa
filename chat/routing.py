from django.urls import path

from chat.consumers import RoomConsumer

websocket_urlpatterns = [
    # Channels' URLRouter reads Django's path() patterns; django-stubs only knows view callables.
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),  # type: ignore[arg-type]
]
