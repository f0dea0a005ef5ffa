"""The room socket: the websocket twin of the room page view.

It parses what htmx sends, hands it to chat.actions (the same forms and services the
HTTP side and the admin use) and sends back the HTML they return. Broadcasts arrive
already rendered, once per event and role, through the process's hub (chat/hub.py), which
writes them to the socket itself; this consumer has no channel of its own.
"""

import asyncio
import logging
import secrets
from typing import cast

from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from chat import actions, fragments, queries, services
from chat.hub import Hub, hub
from chat.models import Room, account_group_name
from chat.payloads import BadFrame, parse_ws_send
from chat.standing import (
    SessionEnded,
    Standing,
    User,
    room_and_standing,
    session_tag,
    shut_out_notice,
    standing,
)

log = logging.getLogger(__name__)

# Close codes. htmx's ws extension reconnects after 1006/1011/1012/1013 only, but autobahn (inside
# daphne) refuses to send any code but 1000 and 3000-4999. The one retried code that reaches the
# browser is 1011, which daphne sends itself when the application raises: "come back later" raises
# TryAgainLater. "Don't retry" is an application code.
TRY_AGAIN_LATER = 1011
REMOVED_FROM_ROOM = 4403
SESSION_ENDED = 4401  # signed out, disabled, password changed: not retried either


class TryAgainLater(Exception):
    """Ends the socket with 1011 so the page reconnects; expected, so logged without a traceback."""

    log_traceback = False


class RoomConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per socket: the process's hub subscribes once per group and
    # writes to every local socket (an alias with no layer configured gives none).
    channel_layer_alias = "no channel per socket: see chat.hub"
    # Set once the handshake is accepted; `in_room` says whether it has been.
    room: Room
    standing: Standing
    in_room = False
    groups_joined: tuple[str, ...] = ()
    # The session the socket opened with (None for visitors): every action re-checks it, and a
    # sign-out names it by its tag.
    session_key: str | None = None
    session_hash = session_tag(None)
    mute_ends: asyncio.Task | None = None
    hub: Hub
    # Hub events that arrived while a handler ran, and how many handlers run (see deliver).
    held: list[dict] = []
    handlers_running = 0
    handling: asyncio.Task | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.socket_id = secrets.token_hex(16)
        self.hub = hub()

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        found = await database_sync_to_async(room_and_standing)(slug, self.user)
        if found is None or not found[1].can_read:
            # Missing, private to others, or banned: refuse the handshake, as the page answers 404/403.
            await self.close()
            return
        room, viewer = self.hub.shared_room(found[0]), found[1]
        if self.user.is_authenticated:
            self.session_key = self.scope["session"].session_key
            self.session_hash = session_tag(self.session_key)
        await self.accept()
        self._forget_handshake()
        try:
            await self._join_groups(room, viewer)
        except Exception as problem:
            log.warning("Could not join the room's groups (%s); the page will retry", type(problem).__name__)
            await self._leave_groups()
            raise TryAgainLater("The channel layer did not answer; the page will retry.") from None
        self.room, self.standing, self.in_room = room, viewer, True
        # A reconnecting browser missed broadcasts meanwhile: replace its history and header whole.
        # (Not the form: the page has it, and replacing it would wipe what the user is typing.)
        await self.send(await self.hub.reconnect_html(room, viewer.role))
        self.hub.arrived(self._socket_presence())
        self._give_form_back_when_mute_ends()
        if self.user.is_authenticated:  # opening the room reads what named the user there
            await database_sync_to_async(services.mark_mentions_read)(room, self.user)

    async def __call__(self, scope, receive, send) -> None:
        # Leave the room however the consumer ends: a clean close, a crash, a server shutdown.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._leave()

    async def send(  # type: ignore[override]  # the same override as in the Channels stubs
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Write a frame, unless the browser has just gone: then nothing is lost but the frame.

        Between a client's close (or a dropped connection) and daphne's disconnect event, autobahn
        raises Disconnected ("Attempt to send on a closed protocol"); the disconnect follows.
        """
        try:
            await super().send(text_data, bytes_data, close)
        except Disconnected:
            log.debug("Socket %s went away before a frame could be sent", self.socket_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = parse_ws_send(text_data, bytes_data)
        except BadFrame as problem:
            await self.send(fragments.notice_html(str(problem), error=True))
            return
        try:
            reply = await database_sync_to_async(actions.handle)(self.room, self.user, data, self.session_key)
        except SessionEnded as ended:
            await self._end_session(await database_sync_to_async(fragments.session_ended_html)(str(ended)))
            return
        await self.send(reply)

    # Group events, handed over by the hub (finished HTML it writes to the socket itself) ----

    async def deliver(self, event: dict) -> None:
        """An event from the hub. Finished HTML is written at once, unless a handler is running:
        then it waits, so a sender gets its own reply before the broadcasts it caused, as
        with a channel per socket. Other events run their handler (which may read the database)
        in a task, so the hub moves on to the next socket.
        """
        if self.handlers_running:
            self.held = [*self.held, event]
        elif "html" in event:
            await self.send(event["html"])
        else:
            self.handlers_running += 1
            self.handling = asyncio.create_task(self._handle(event))

    async def dispatch(self, message: dict) -> None:
        self.handlers_running += 1
        await self._handle(message)

    async def _handle(self, message: dict) -> None:
        """Run the handler (its count is already taken), then pass on what the hub held meanwhile."""
        try:
            await super().dispatch(message)
        finally:
            self.handlers_running -= 1
            while self.held and not self.handlers_running:
                event, *self.held = self.held
                await self.deliver(event)

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
            await self._switch_groups(self.room, viewer)
            await self.send(await database_sync_to_async(fragments.history_html)(self.room, viewer.role))
            if self.standing.is_moderator:
                await self.send(await database_sync_to_async(fragments.moderation_panel_gone_html)())
        self.standing = viewer
        await self.send(await database_sync_to_async(fragments.form_html)(self.room, viewer))
        self._give_form_back_when_mute_ends()

    async def room_access(self, event: dict) -> None:
        """The room became private: sockets of people who may no longer read it close."""
        if self.standing.is_moderator:
            return  # moderators keep access; only members need a membership check
        viewer = await database_sync_to_async(self._refresh)()
        if not viewer.can_read:
            await self._close_for_good(viewer)

    async def account_ended(self, event: dict) -> None:
        """Signed out (this session, i.e. every tab of that browser), disabled, or the password
        changed: close with the reason, rendered once for every socket."""
        if "session" in event and event["session"] != self.session_hash:
            return  # another session of the same user signed out
        await self._end_session(event["farewell"])

    # Helpers ------------------------------------------------------------------------------

    @property
    def user(self) -> User:
        # AuthMiddlewareStack puts a lazy stand-in for the User or AnonymousUser in the scope.
        return cast(User, self.scope["user"])

    def _refresh(self) -> Standing:
        """The room and this user's standing in it as stored now."""
        self.room = self.hub.shared_room(queries.reload(self.room, self.user))
        return standing(self.room, self.user)

    def _forget_handshake(self) -> None:
        """Free the request headers once the handshake is done: nothing reads them again, and
        every socket would otherwise keep them (about 1 KiB) for as long as it stays open.
        The list is daphne's own, shared by every copy of the scope the middleware made.
        """
        headers = self.scope["headers"]
        if isinstance(headers, list):  # the ASGI spec only promises an iterable
            headers.clear()

    def presence(self) -> services.SocketPresence | None:
        """This socket in the room's member list, once it has joined."""
        return self._socket_presence() if self.in_room else None

    def _socket_presence(self) -> services.SocketPresence:
        return services.SocketPresence(self.room, self.user, self.socket_id)

    def _groups(self, room: Room, viewer: Standing) -> tuple[str, ...]:
        groups = [room.group_name, room.role_group_name(viewer.role)]
        if self.user.is_authenticated:
            groups += [room.user_group_name(self.user.pk), account_group_name(self.user.pk)]
        return tuple(groups)

    async def _join_groups(self, room: Room, viewer: Standing) -> None:
        self.groups_joined = self._groups(room, viewer)
        await self.hub.join(self.groups_joined, self)

    async def _switch_groups(self, room: Room, viewer: Standing) -> None:
        """A new role: join its groups before leaving the old ones, so the socket is never without."""
        old, self.groups_joined = self.groups_joined, self._groups(room, viewer)
        await self.hub.join(self.groups_joined, self)
        await self.hub.leave(tuple(set(old) - set(self.groups_joined)), self, for_good=False)

    async def _leave_groups(self) -> None:
        groups, self.groups_joined = self.groups_joined, ()
        await self.hub.leave(groups, self)

    async def _close_for_good(self, viewer: Standing) -> None:
        text = shut_out_notice(self.room, viewer)
        await self.send(await database_sync_to_async(fragments.removed_from_room_html)(self.room, text))
        await self.close(code=REMOVED_FROM_ROOM)

    async def _end_session(self, farewell: str) -> None:
        await self.send(farewell)
        await self.close(code=SESSION_ENDED)

    async def _leave(self) -> None:
        if self.mute_ends:
            self.mute_ends.cancel()
        was_in_room, self.in_room = self.in_room, False
        try:
            if was_in_room:
                self.hub.departed(self.socket_id, self.room)
            if self.groups_joined:
                await self._leave_groups()
        except Exception:
            log.exception("Could not announce a departure from %s", self.room)

    def _give_form_back_when_mute_ends(self) -> None:
        """A muted user's form says until when; at that moment it turns back into a form by itself."""
        if self.mute_ends:
            self.mute_ends.cancel()
            self.mute_ends = None
        until = self.standing.muted_until
        if until is not None and self.standing.is_muted:
            seconds = (until - timezone.now()).total_seconds()
            self.mute_ends = asyncio.create_task(self._redraw_after(seconds + 0.5))

    async def _redraw_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.mute_ends = None
        await self.room_standing({"type": "room.standing"})
