"""The room socket: the websocket twin of the room page view.

It parses what htmx sends, hands it to chat.actions (the same forms and services the
HTTP side and the admin use) and sends back the HTML they return. Broadcasts arrive
already rendered, once per event and role; this consumer only forwards them.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from chat import actions, fragments, queries, services
from chat.models import Room
from chat.payloads import BadFrame, parse_ws_send
from chat.standing import Standing, ban_notice, standing

log = logging.getLogger(__name__)

# Close codes. htmx's ws extension reconnects after 1006/1011/1012/1013 only, so
# "come back later" uses 1013 and "don't retry" uses an application code.
TRY_AGAIN_LATER = 1013
REMOVED_FROM_ROOM = 4403


class RoomConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    standing: Standing | None = None
    groups_joined: tuple[str, ...] = ()
    heartbeat: asyncio.Task | None = None
    mute_ends: asyncio.Task | None = None

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        room, viewer = await database_sync_to_async(self._room_and_standing)(slug)
        if viewer is None or not viewer.can_read:
            # Missing, private to others, or banned: refuse the handshake, as the page answers 404/403.
            await self.close()
            return
        await self.accept()
        try:
            await self._join_groups(room, viewer)
        except Exception:
            log.exception("Could not join the room's groups; asking the browser to retry")
            await self.close(code=TRY_AGAIN_LATER)
            return
        self.room, self.standing = room, viewer
        # A reconnecting browser missed broadcasts meanwhile: replace its history and header whole.
        # (Not the form: the page has it, and replacing it would wipe what the user is typing.)
        await self.send(await database_sync_to_async(fragments.reconnect_html)(room, viewer.role))
        await database_sync_to_async(services.join_room)(room, self.user, self.channel_name)
        self.heartbeat = asyncio.create_task(self._keep_presence_fresh())
        self._give_form_back_when_mute_ends()

    async def __call__(self, scope, receive, send) -> None:
        # Leave the room however the consumer ends: a clean close, a crash, a server shutdown.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = parse_ws_send(text_data, bytes_data)
        except BadFrame as problem:
            await self.send(fragments.notice_html(str(problem), error=True))
            return
        await self.send(await database_sync_to_async(actions.handle)(self.room, self.user, data))

    # Group events ------------------------------------------------------------------------

    async def room_html(self, event: dict) -> None:
        """A fragment rendered once for everyone (or everyone of this socket's role)."""
        await self.send(event["html"])

    async def room_form(self, event: dict) -> None:
        """The room's settings changed: take the form rendered for this role."""
        viewer = self.standing
        if not viewer.is_visitor and not viewer.is_muted:
            await self.send(event[viewer.role])

    async def room_standing(self, event: dict) -> None:
        """This user was muted, banned, promoted...: re-check, then redraw or leave."""
        viewer = await database_sync_to_async(self._refresh)()
        if not viewer.can_read:
            await self._close_for_good(viewer)
            return
        if viewer.role != self.standing.role:
            await self._leave_groups()
            await self._join_groups(self.room, viewer)
            await self.send(await database_sync_to_async(fragments.history_html)(self.room, viewer.role))
        self.standing = viewer
        await self.send(await database_sync_to_async(fragments.form_html)(self.room, self.user))
        self._give_form_back_when_mute_ends()

    async def room_access(self, event: dict) -> None:
        """The room became private: sockets of people who may no longer read it close."""
        if self.standing.is_moderator:
            return  # moderators keep access; only members need a membership check
        viewer = await database_sync_to_async(self._refresh)()
        if not viewer.can_read:
            await self._close_for_good(viewer)

    # Helpers ------------------------------------------------------------------------------

    @property
    def user(self):
        return self.scope["user"]

    def _refresh(self) -> Standing:
        """The room and this user's standing in it as stored now."""
        self.room = queries.reload(self.room, self.user)
        return standing(self.room, self.user)

    def _room_and_standing(self, slug: str) -> tuple[Room | None, Standing | None]:
        room = queries.find_room(slug)
        return room, standing(room, self.user) if room else None

    async def _join_groups(self, room: Room, viewer: Standing) -> None:
        groups = [room.group_name, room.role_group_name(viewer.role)]
        if self.user.is_authenticated:
            groups.append(room.user_group_name(self.user.pk))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = tuple(groups)

    async def _leave_groups(self) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = ()

    async def _close_for_good(self, viewer: Standing) -> None:
        text = ban_notice(self.room) if viewer.banned else "This room is private."
        await self.send(await database_sync_to_async(fragments.removed_from_room_html)(self.room, text))
        await self.close(code=REMOVED_FROM_ROOM)

    async def _leave(self) -> None:
        for task in (self.heartbeat, self.mute_ends):
            if task:
                task.cancel()
        if self.room is None:
            return
        room, self.room = self.room, None
        try:
            await self._leave_groups()
            await database_sync_to_async(services.leave_room)(self.channel_name)
        except Exception:
            log.exception("Could not announce a departure from %s", room)

    def _give_form_back_when_mute_ends(self) -> None:
        """A muted user's form says until when; at that moment it turns back into a form by itself."""
        if self.mute_ends:
            self.mute_ends.cancel()
            self.mute_ends = None
        if self.standing.is_muted:
            seconds = (self.standing.muted_until - timezone.now()).total_seconds()
            self.mute_ends = asyncio.create_task(self._redraw_after(seconds + 0.5))

    async def _redraw_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.mute_ends = None
        await self.room_standing({"type": "room.standing"})

    async def _keep_presence_fresh(self) -> None:
        """Refresh this socket's presence; a failed beat is logged and the next one tries again."""
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT_SECONDS)
            try:
                await database_sync_to_async(services.touch_presence)(self.channel_name)
            except Exception:
                log.exception(
                    "Presence heartbeat failed for %s; retrying on the next beat", self.channel_name
                )
