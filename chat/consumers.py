"""The room socket: the websocket twin of the room page view.

It parses what htmx sends, hands it to the services and fragments the HTTP side uses,
and sends the HTML they return. Fragments for the room are rendered once and fanned
out through the channel layer as ready HTML.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import fragments, services
from chat.models import Room
from chat.payloads import BadFrame, parse_ws_send

log = logging.getLogger(__name__)

# Close codes. htmx's ws extension reconnects after 1006/1011/1012/1013 only, so
# "come back later" uses 1013 and "don't retry" uses an application code.
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
ROOM_NOT_FOUND = 4404


class RoomConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    heartbeat: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        slug = self.scope["url_route"]["kwargs"]["slug"]
        room = await database_sync_to_async(services.find_room)(slug)
        if room is None:
            await self.send(fragments.notice_html("This room does not exist."))
            await self.close(code=ROOM_NOT_FOUND)
            return
        try:
            await self.channel_layer.group_add(room.group_name, self.channel_name)
        except Exception:
            log.exception("Could not join the room group; asking the browser to retry")
            await self.close(code=TRY_AGAIN_LATER)
            return
        self.room = room
        # A reconnecting browser missed broadcasts meanwhile: replace its history whole.
        # (Not the form: the page has it, and replacing it would wipe what the user is typing.)
        await self.send(await database_sync_to_async(fragments.history_html)(room))
        await database_sync_to_async(services.join_room)(room, self.user, self.channel_name)
        await self._broadcast_members()
        self.heartbeat = asyncio.create_task(self._keep_presence_fresh())

    async def __call__(self, scope, receive, send) -> None:
        # Leave the room however the consumer ends: a clean close, a crash, a server shutdown.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._leave()

    async def _leave(self) -> None:
        if self.heartbeat:
            self.heartbeat.cancel()
        if self.room is None:
            return
        room, self.room = self.room, None
        try:
            await database_sync_to_async(services.leave_room)(self.channel_name)
            await self.channel_layer.group_discard(room.group_name, self.channel_name)
            html = await database_sync_to_async(fragments.members_html)(room)
            await self.channel_layer.group_send(room.group_name, {"type": "room.html", "html": html})
        except Exception:
            log.exception("Could not announce a departure from %s", room)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = parse_ws_send(text_data, bytes_data)
        except BadFrame as problem:
            await self.send(fragments.notice_html(str(problem)))
            return
        broadcast, reply = await database_sync_to_async(self._post)(data)
        if broadcast:
            try:
                await self._broadcast(broadcast)
            except Exception:
                # Stored already: the reconnect re-sends history to everyone who missed it.
                log.exception("Broadcast failed in %s", self.room)
                await self.close(code=INTERNAL_ERROR)
                return
        await self.send(reply)

    async def room_html(self, event: dict) -> None:
        """A fragment rendered once for the whole room."""
        await self.send(event["html"])

    # Helpers ------------------------------------------------------------------------------

    @property
    def user(self) -> services.User:
        return self.scope["user"]

    def _post(self, data: dict) -> tuple[str | None, str]:
        """Store the message; return (fragment for the room, fragment for the sender)."""
        outcome = services.post_message(self.room, self.user, data)
        if outcome.message is None:
            return None, fragments.form_html(self.room, self.user, outcome.form)
        broadcast = fragments.new_message_html(outcome.message)
        # A fresh, empty form for the sender only; it carries autofocus so typing goes on.
        return broadcast, fragments.form_html(self.room, self.user) + fragments.notice_html("")

    async def _broadcast(self, html: str) -> None:
        await self.channel_layer.group_send(self.room.group_name, {"type": "room.html", "html": html})

    async def _broadcast_members(self) -> None:
        await self._broadcast(await database_sync_to_async(fragments.members_html)(self.room))

    async def _keep_presence_fresh(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT_SECONDS)
            await database_sync_to_async(services.touch_presence)(self.channel_name)
