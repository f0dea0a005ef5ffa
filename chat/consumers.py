"""The room socket: the websocket twin of the room page view.

It parses what htmx sends, hands it to chat.actions (the same forms and services the
HTTP side and the admin use) and sends back the HTML they return. Broadcasts arrive
already rendered, once per event and role, through the process's hub (chat/hub.py), which
writes them to the socket itself; this consumer has no channel of its own.
"""

import asyncio
import functools
import logging
import re
import secrets
import time
from typing import cast
from urllib.parse import parse_qs

from autobahn.exception import Disconnected, PayloadExceededError
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from redis.exceptions import RedisError

from chat import actions, broadcast, fragments, posting, queries, reading, services
from chat.hub import BROKER_DOWN, Hub, HubConsumer, hub
from chat.models import Room, account_group_name, live_updates_paused
from chat.payloads import BadFrame, parse_ws_send
from chat.sockets import (
    bound_kernel_buffer,
    direct_protocol,
    open_sockets,
    send_buffer_of,
    take_socket,
    unsent_bytes,
    write_text,
)
from chat.standing import (
    SessionEnded,
    Standing,
    User,
    check_session,
    may_signal_typing,
    room_and_standing,
    session_tag,
    shut_out_notice,
)

log = logging.getLogger(__name__)

# Close codes. htmx's ws extension reconnects after 1006/1011/1012/1013 only, but autobahn (inside
# daphne) refuses to send any code but 1000 and 3000-4999. The one retried code that reaches the
# browser is 1011, which daphne sends itself when the application raises: "come back later" raises
# TryAgainLater. "Don't retry" is an application code.
TRY_AGAIN_LATER = 1011
REMOVED_FROM_ROOM = 4403
# A message committed just before a history was read reaches the hub within this long after.
HISTORY_OVERLAP_SECONDS = 10.0
SESSION_ENDED = 4401  # signed out, disabled, password changed: not retried either
TOO_MANY_SOCKETS = 4429  # over CHAT_SOCKETS_PER_USER / _PER_ADDRESS: retrying would only be refused again

DATABASE_DOWN = "The chat can't reach its database right now; your message was not sent. Try again soon."
RESTARTING = "This server is restarting; reconnecting you now."
TOO_LARGE_TO_SEND = "Part of this room was too large to send to your browser, so it was left out."


class TryAgainLater(Exception):
    """Ends the socket with 1011 so the page reconnects; expected, so logged without a traceback."""

    log_traceback = False


class RoomConsumer(HubConsumer):
    # Set once the handshake is accepted; `in_room` says whether it has been.
    room: Room
    standing: Standing
    in_room = False
    groups_joined: tuple[str, ...] = ()
    # The session the socket opened with (None for visitors): every action re-checks it, and a
    # sign-out names it by its tag.
    session_key: str | None = None
    session_hash = session_tag(None)
    typing_session_checked_at = float("-inf")  # when a typing signal last re-checked it
    mute_ends: asyncio.Task | None = None
    hub: Hub
    # Hub events that arrived while a handler ran, and how many handlers run (see deliver).
    held: list[dict] = []
    # The history last sent and when, to skip broadcasts of messages it already shows.
    history_sent: tuple[str, float] | None = None
    # A permalink page's socket: the newest message its history covers (see _already_shown).
    history_until: int | None = None
    handlers_running = 0
    handling: asyncio.Task | None = None
    # Set by the hub on SIGTERM: close with 1011 once no handler runs (see restart).
    restarting = False
    # Whom this socket counts against (chat.sockets), once counted.
    holder: str | None = None
    # The task running this consumer, cancelled when the client stops reading (see _fell_behind)
    # or the server restarts (see restart).
    main_task: asyncio.Task | None = None
    send_buffer: object | None = None  # daphne's Twisted transport, when served by daphne
    # daphne's protocol, to write text frames to directly (chat.sockets.write_text), when served by daphne.
    direct: object | None = None
    fell_behind = False
    # How far this socket has shown the room, and how far that is stored (chat.reading).
    read_up_to = 0
    read_written = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.socket_id = secrets.token_hex(16)
        self.hub = hub()

    async def connect(self) -> None:
        self.holder, refusal = take_socket(self.scope, self.user)
        if self.holder is None:
            await self._refuse_socket(refusal)
            return
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
        self.send_buffer = send_buffer_of(self.base_send)
        self.direct = direct_protocol(self.base_send)
        bound_kernel_buffer(self.send_buffer)
        try:
            await self._join_groups(room, viewer)
        except Exception as problem:
            log.warning("Could not join the room's groups (%s); the page will retry", type(problem).__name__)
            await self._leave_groups()
            raise TryAgainLater("The channel layer did not answer; the page will retry.") from None
        self.room, self.standing, self.in_room = room, viewer, True
        # A reconnecting browser missed broadcasts meanwhile: replace its history and header whole.
        # (Not the form: the page has it, and replacing it would wipe what the user is typing.)
        history = shared = await self._history_on_connect(room, viewer)
        # The member list with this socket in it: the next announcement may be a second away.
        name = self.user.get_username() if self.user.is_authenticated else None
        history += await self.hub.members_on_joining(room, name)
        if self.user.is_authenticated:  # "New messages" above what came since they last read
            history += await self._open_for_reading(room, history)
            # Live updates on, or paused in Settings (the page, cached per role, has them on); a
            # change saved from now on arrives on the account's group (account_live_mode).
            paused = await database_sync_to_async(live_updates_paused)(self.user.pk)
            history += fragments.live_mode_html(paused)
        await self.send(history)
        # What follows the messages (member list, divider, controls) shows none of them: only the
        # history, shared by the room's sockets, is kept to look in (see _already_shown).
        self.history_sent = (shared, time.monotonic())
        self.held = [event for event in self.held if not self._already_shown(event)]
        if typing := self.hub.typing_now(room, self.user_id):
            await self.send(typing)
        self.hub.arrived(self._socket_presence())
        self._give_form_back_when_mute_ends()
        if self.user.is_authenticated:  # opening the room reads what named the user there
            await database_sync_to_async(services.mark_mentions_read)(room, self.user)

    async def __call__(self, scope, receive, send) -> None:
        # Leave the room however the consumer ends: a clean close, a crash, a server shutdown.
        self.main_task = asyncio.current_task()
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if self.fell_behind:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]  # we are in it
                unread = settings.CHAT_SOCKET_SEND_BUFFER_BYTES
                raise TryAgainLater(
                    f"Socket {self.socket_id} left over {unread} bytes unread; closed so the page reconnects"
                ) from None
            if not self.restarting:
                raise
            # Graceful restart: daphne answers the exception with 1011, which the page retries.
            await self.send(fragments.notice_html(RESTARTING))
            raise TryAgainLater("The server is restarting; the page reconnects to another.") from None
        finally:
            await self._leave()

    async def send(  # type: ignore[override]  # the same override as in the Channels stubs
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Write a frame, unless the browser has just gone: then nothing is lost but the frame.

        Between a client's close (or a dropped connection) and daphne's disconnect event, autobahn
        raises Disconnected ("Attempt to send on a closed protocol"); the disconnect follows.
        A client that stopped reading gets nothing more: it is being closed, and catches up on reconnect.
        """
        if self.fell_behind:
            return
        try:
            if not text_data or close or self.direct is None or not write_text(self.direct, text_data):
                await super().send(text_data, bytes_data, close)
        except Disconnected:
            log.debug("Socket %s went away before a frame could be sent", self.socket_id)
        except PayloadExceededError as problem:
            # Over daphne's cap (none of Parley's frames should be: see CHAT_HISTORY_MAX_BYTES).
            # Raised, it would end the socket with 1011, which htmx retries for ever.
            log.warning("Socket %s: %s; sent a notice in its place", self.socket_id, problem)
            await self.send(fragments.notice_html(TOO_LARGE_TO_SEND, error=True))
            return
        if (
            self.send_buffer is not None
            and unsent_bytes(self.send_buffer) > settings.CHAT_SOCKET_SEND_BUFFER_BYTES
        ):
            self._fell_behind()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = parse_ws_send(text_data, bytes_data)
        except BadFrame as problem:
            await self.send(fragments.notice_html(str(problem), error=True))
            return
        if data.get("action") == "typing":
            if not self.hub.broker_down:  # nothing to pass on meanwhile, nothing to refuse
                await self._typing()
            return
        if data.get("action") == "catch_up":
            # Live updates paused: "Show new messages" brings the history again, held ones in it;
            # #messages is no live region, so nothing of it is read aloud.
            await self.send(await self._history_on_connect(self.room, self.standing))
            return
        if self.hub.broker_down:
            # Nothing is stored that others could not be shown: refused before storing.
            await self.send(fragments.notice_html(BROKER_DOWN, error=True))
            return
        try:
            reply = await self._reply(data)
        except (OperationalError, InterfaceError) as problem:
            await self._refuse_frame(DATABASE_DOWN, problem)
            return
        except (RedisError, OSError) as problem:  # the cache or the broker, before anything was stored
            await self._refuse_frame(BROKER_DOWN, problem)
            return
        except SessionEnded as ended:
            await self._session_ended(ended)
            return
        await self.send(reply)

    async def _reply(self, data: dict) -> str:
        """The reply to a frame once what it changed is committed and broadcast. Posts go in the
        process's next batch (chat.posting): one hop and one commit for those that came together."""
        if (data.get("action") or "post") == "post":
            post = functools.partial(actions.handle, self.room, self.user, data, self.session_key)
            return await posting.batcher().answer(post, order=self.user_id or 0)
        reply, events = await database_sync_to_async(self._answer)(data)
        await broadcast.send_collected(events)
        return reply

    def _answer(self, data: dict) -> tuple[str, list[tuple[str, dict]]]:
        """The reply to a frame, and the events it committed, for the event loop to send."""
        with broadcast.collected() as events:
            return actions.handle(self.room, self.user, data, self.session_key), events

    async def _open_for_reading(self, room: Room, history: str) -> str:
        """Mark the room read (chat.reading) and return the divider above the first message that
        was unread, if any: above its message when the history shows it, else at the top; and the
        viewer's notification level control."""
        position = await database_sync_to_async(reading.open_room)(room, self.user)
        self.read_up_to = self.read_written = position.newest
        # The viewer's notification level control, into the header's slot (the page is cached alike for all).
        control = fragments.live_level_control_html(room.pk, room.slug, position.level)
        control += fragments.tab_id_html(self.socket_id)  # level posts from this page name it
        first = position.first_unread
        if position.read_up_to is None or first is None:
            return control  # never opened before, or nothing new
        return fragments.new_divider_html(first if f'id="message-{first}"' in history else None) + control

    async def _history_on_connect(self, room: Room, viewer: Standing) -> str:
        """The recent history, shared by every socket of the room and role; a permalink page's
        socket (`?around=<id>`) gets the history around its message instead, rendered for it."""
        around = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("around", [""])[0]
        if around.isascii() and around.isdigit() and len(around) < 19:
            render = database_sync_to_async(fragments.around_reconnect_html)
            history, self.history_until = await render(room, viewer.role, int(around))
            return history
        return await self.hub.reconnect_html(room, viewer.role)

    async def _typing(self) -> None:
        """A typing signal: no reply; the hub coalesces it. Ignored from those who may not post
        (visitors, the muted; banned users have no socket), and like every frame only while the
        session stands."""
        if not (self.user.is_authenticated and may_signal_typing(self.room, self.standing)):
            return
        if await self._session_stands_for_typing():
            self.hub.typing(self.room, self.user.pk, self.user.get_username())

    async def _session_stands_for_typing(self) -> bool:
        """Re-check the session as actions do (one small read), or close the socket as they do.

        At most once per CHAT_TYPING_BROADCAST_SECONDS: signals closer together than that go out
        together anyway, so a flood of them costs one read per interval, not one per frame.
        """
        now = time.monotonic()
        if now - self.typing_session_checked_at < settings.CHAT_TYPING_BROADCAST_SECONDS:
            return True
        try:
            await database_sync_to_async(check_session)(self.user, self.session_key)
        except SessionEnded as ended:
            await self._session_ended(ended)
            return False
        except (OperationalError, InterfaceError) as problem:
            log.warning("Dropped a typing signal on socket %s: %s", self.socket_id, type(problem).__name__)
            return False
        self.typing_session_checked_at = now
        return True

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
            if not self._already_shown(event):
                await self.send(event["html"])
            # Shown while open: read (written when the socket closes, see _leave).
            self.read_up_to = max(self.read_up_to, event.get("message_id", 0))
        else:
            self.handlers_running += 1
            self.handling = asyncio.create_task(self._handle(event))

    def _already_shown(self, event: dict) -> bool:
        """Is this the broadcast of a message the history just sent already has? A message
        committed before the history was read can reach the hub after it was sent; appended
        again, it would show twice. Only broadcasts this close after the history can be such.
        """
        if event.get("from") == self.socket_id:
            return True  # a level chosen on this page: it shows the answer to its own post
        if "message_id" not in event:
            return False
        if self.history_until is not None and event["message_id"] <= self.history_until:
            return True  # a permalink page: its history, or its "Load newer", has this one
        if self.history_sent is None:
            return False
        history, sent_at = self.history_sent
        if time.monotonic() - sent_at > HISTORY_OVERLAP_SECONDS:
            self.history_sent = None  # and the socket stops holding on to that render
            return False
        return event["message_id"] in _message_ids_in(history)

    async def dispatch(self, message: dict) -> None:
        self.handlers_running += 1
        await self._handle(message)

    async def _handle(self, message: dict) -> None:
        """Run the handler (its count is already taken), then pass on what the hub held meanwhile.

        Not through Channels' dispatch, which first makes a round trip to the database thread to
        close old connections (aclose_old_connections), about 0.45 ms before every frame, and where
        a frame would wait behind the posts being stored (chat.posting): here every database access
        goes through database_sync_to_async, which closes them before and after, in that thread.
        """
        try:
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        finally:
            self.handlers_running -= 1
            while self.held and not self.handlers_running:
                event, *self.held = self.held
                await self.deliver(event)
            if self.restarting and not self.handlers_running:
                self._stop_now()

    async def room_recovered(self, event: dict) -> None:
        """The broker is back (chat.hub): what was posted meanwhile, and the notice taken down."""
        await self.send(await self.hub.reconnect_html(self.room, self.standing.role))
        await self.send(fragments.notice_html(""))

    def restart(self) -> None:
        """SIGTERM (chat.hub.drain): answer the frame in hand, then close with 1011; no frame after
        it is read, so each post is either stored and acknowledged or not stored at all."""
        self.restarting = True
        if not self.handlers_running:
            self._stop_now()

    def _stop_now(self) -> None:
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()

    async def _refuse_frame(self, sentence: str, problem: Exception) -> None:
        log.warning("Refused a frame on socket %s: %s", self.socket_id, type(problem).__name__)
        await self.send(fragments.notice_html(sentence, error=True))

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
        await self.send(await database_sync_to_async(self._form_and_picker)(viewer))
        self._give_form_back_when_mute_ends()

    def _form_and_picker(self, viewer: Standing) -> str:
        """The form and the file picker as this viewer may use them now (a block closes both)."""
        return fragments.form_html(self.room, viewer) + fragments.upload_picker_html(self.room, viewer)

    async def room_access(self, event: dict) -> None:
        """The room became private: sockets of people who may no longer read it close."""
        if self.standing.is_moderator:
            return  # moderators keep access; only members need a membership check
        viewer = await database_sync_to_async(self._refresh)()
        if not viewer.can_read:
            await self._close_for_good(viewer)

    async def account_live_mode(self, event: dict) -> None:
        """Live updates paused or turned back on in Settings (any tab, any process): the page
        switches at once. The history comes first, as "Show new messages" brings it: pausing keeps
        what has already shown in sight (no longer "new"), resuming brings in what was held."""
        history = await self._history_on_connect(self.room, self.standing)
        await self.send(history + event["mode"])
        self.history_sent = (history, time.monotonic())  # a broadcast it already has is not shown twice

    async def account_ended(self, event: dict) -> None:
        """Signed out (this session, i.e. every tab of that browser), disabled, or the password
        changed: close with the reason, rendered once for every socket."""
        if "session" in event and event["session"] != self.session_hash:
            return  # another session of the same user signed out
        await self._end_session(event["farewell"])

    # Helpers ------------------------------------------------------------------------------

    @property
    def user_id(self) -> int | None:
        return self.user.pk

    @property
    def user(self) -> User:
        # AuthMiddlewareStack puts a lazy stand-in for the User or AnonymousUser in the scope.
        return cast(User, self.scope["user"])

    def _refresh(self) -> Standing:
        """The room and this user's standing in it as stored now."""
        room, viewer = queries.reload(self.room, self.user)
        self.room = self.hub.shared_room(room)
        return viewer

    async def _refuse_socket(self, why: str) -> None:
        """Say why on the page, then close with a code htmx does not retry: no database, no presence."""
        await self.accept()
        await self.send(_refusal_html(why))
        await self.close(code=TOO_MANY_SOCKETS)

    def _fell_behind(self) -> None:
        """Twisted's send buffer passed the bound: end the consumer with TryAgainLater (1011).

        The 1011 waits behind the unread bytes; autobahn drops the connection (and its buffer)
        when the client has not answered the close within its closeHandshakeTimeout (1 s).
        """
        if self.fell_behind or self.main_task is None:
            return
        self.fell_behind = True
        self.main_task.cancel()

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

    async def _session_ended(self, ended: SessionEnded) -> None:
        await self._end_session(await database_sync_to_async(fragments.session_ended_html)(str(ended)))

    async def _end_session(self, farewell: str) -> None:
        await self.send(farewell)
        await self.close(code=SESSION_ENDED)

    async def _leave(self) -> None:
        if self.mute_ends:
            self.mute_ends.cancel()
        was_in_room, self.in_room = self.in_room, False
        if self.holder is not None:
            holder, self.holder = self.holder, None
            open_sockets.give_back(holder)
        if was_in_room and self.user.is_authenticated and self.read_up_to > self.read_written:
            await self._record_reading()
        try:
            if was_in_room:
                self.hub.departed(self.socket_id, self.room)
            if self.groups_joined:
                await self._leave_groups()
        except Exception:
            log.exception("Could not announce a departure from %s", self.room)

    async def _record_reading(self) -> None:
        """What this socket showed while open counts as read (one write per socket, at its close)."""
        self.read_written = self.read_up_to
        try:
            await database_sync_to_async(reading.read_up_to)(self.room, self.user, self.read_up_to)
        except Exception as problem:
            log.warning(
                "Could not record how far socket %s read (%s)", self.socket_id, type(problem).__name__
            )

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


MESSAGE_ID = re.compile(r'id="message-(\d+)"')


@functools.lru_cache(maxsize=8)
def _message_ids_in(history: str) -> frozenset[int]:
    """The messages a history shows, read once per history: the hub's history is one string for
    every socket of the room and role (and a string keeps its hash), where searching it for each
    broadcast to each socket that joined in the last HISTORY_OVERLAP_SECONDS cost ~10 µs a time."""
    return frozenset(map(int, MESSAGE_ID.findall(history)))


@functools.cache
def _refusal_html(why: str) -> str:
    """Rendered once per sentence and process: refusing a socket costs no rendering."""
    return fragments.socket_refused_html(why)
