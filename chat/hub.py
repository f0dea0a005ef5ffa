"""The process-local hub: one channel-layer subscriber per server process, whatever the number of sockets.

Per process (and channel layer) there is one hub. It holds one layer channel and subscribes it
once to each group that has local sockets, so a broadcast costs one layer message per process,
not one per member. A finished HTML fragment is written straight to each local socket of the
group: no per-member copy, queue or consumer dispatch. Events that need the consumer (a user's
standing changed, the room turned private, the form per role) are handed to each one.

The hub also does what is per process rather than per socket:
- one heartbeat keeps every local socket's presence alive (ServerProcess.last_seen), reaps
  the presence of processes that stopped beating, and re-reads the accounts behind every local
  socket in one query: one disabled, deleted, given a new password or stripped of staff without
  a signal (a queryset update(), SQL, another service) is closed or redrawn as a signal would;
- the member list is announced at most once per room per CHAT_MEMBERS_BROADCAST_SECONDS, rendered
  once, however many sockets join or leave meanwhile;
- the history a (re)connecting socket gets is rendered once per room and role, and forgotten
  as soon as any event that may change it arrives;
- it watches the broker (Redis): while it is unreachable every local socket stays open with a
  notice and posts are refused (see consumers); when it answers again the layer's stale
  connections are dropped, the hub's groups subscribed afresh and every socket gets the history
  it missed. On SIGTERM it asks every socket to finish the frame in hand and close with a code
  htmx retries (1011), then hands over to the server's own shutdown.
- "alice is typing…": typing signals are kept in memory (never stored), sent to the other
  processes at most once per room per CHAT_TYPING_BROADCAST_SECONDS, and shown to local sockets
  only when the names change, rendered once per distinct text (typers don't see themselves).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections import defaultdict
from contextlib import suppress
from types import FrameType
from typing import Protocol, cast
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import BaseChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from chat import broadcast, fragments, queries, services
from chat.models import Role, Room, account_group_name
from chat.standing import Account, Authority, User

log = logging.getLogger(__name__)

HistoryKey = tuple[int, str]
TYPING = "room.typing"

# What every socket shows while the broker is unreachable, and what a post gets meanwhile.
# Failed PINGs in a row before the broker counts as gone (CHAT_BROKER_CHECK_SECONDS apart).
BROKER_FAILED_CHECKS = 3
BROKER_DOWN = "Live updates are interrupted; your messages can't be sent right now."
# What an account's group is told when its authority changed (chat.broadcast.authority_event); its
# other news (live updates paused) says nothing of it, so the heartbeat keeps checking.
AUTHORITY_NEWS = ("account.ended", "room.standing")


class LocalSocket(Protocol):
    """What the hub needs from a consumer."""

    socket_id: str

    @property
    def user_id(self) -> int | None:
        """Who the socket is signed in as (None for visitors): typers don't see their own name."""

    @property
    def user(self) -> User:
        """The account as loaded when the socket opened (the heartbeat compares it with the stored one)."""

    async def deliver(self, event: dict) -> None: ...

    def presence(self) -> services.SocketPresence | None: ...

    def restart(self) -> None:
        """Finish the frame in hand, then close with a code the page retries (graceful restart)."""


class HubConsumer(AsyncWebsocketConsumer):
    """A websocket consumer the hub writes to: it has no channel-layer channel of its own.

    It reads daphne's frames by awaiting its queue directly. Channels' own loop
    (await_many_dispatch) would wrap even this one receive in a task and an asyncio.wait, about
    2.7 KB more per idle socket, for nothing to wait on alongside it.
    """

    async def __call__(self, scope, receive, send) -> None:
        self.scope, self.base_send = scope, send
        self.channel_layer = None  # type: ignore[assignment]  # as Channels sets it for an alias without a layer
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass


def room_id_of(group: str) -> int | None:
    """Room groups start with room.<pk> (see Room.group_name); an account's group has no room."""
    kind, key, *_ = group.split(".")
    return int(key) if kind == "room" else None


def account_id_of(group: str) -> int | None:
    """The user of an account's group (see account_group_name), None for any other group."""
    kind, key, *_ = group.split(".")
    return int(key) if kind == "account" else None


class Hub:
    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.channel = ""
        self.process_id = 0
        self.local: set[LocalSocket] = set()
        self.members: dict[str, set[LocalSocket]] = defaultdict(set)
        self.group_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.subscribed: set[str] = set()
        # Per room, how many of its groups (broadcast.room_of_group) are subscribed: while any
        # is, the hub also listens to the room's bundle group (broadcast.bundle_group).
        self.bundle_users: dict[int, int] = {}
        self.tasks: list[asyncio.Task] = []
        self.start_lock = asyncio.Lock()
        self.history: dict[HistoryKey, str] = {}
        self.history_renders: dict[HistoryKey, asyncio.Future] = {}
        self.history_generation: dict[int, int] = defaultdict(int)
        self.arrivals: dict[str, services.SocketPresence] = {}
        self.departures: set[str] = set()
        self.rooms_touched: dict[int, Room] = {}
        self.rooms: dict[int, Room] = {}
        self.presence_writer: asyncio.Task | None = None
        self.members_due: dict[int, asyncio.Task] = {}
        self.members_sent_at: dict[int, float] = {}
        # The member list last announced per room, while this process has sockets in it.
        self.members_shown: dict[int, queries.Members] = {}
        self.broker_down = False
        self.broker_lock = asyncio.Lock()
        self.failed_checks = 0
        self.draining = False
        self.listener: asyncio.Task | None = None
        # Typing: signals from local sockets waiting to go out, per room (user id -> name) ...
        self.typing_out: dict[int, dict[int, str]] = {}
        self.typing_due: dict[int, asyncio.Task] = {}
        self.typing_sent_at: dict[int, float] = {}
        # ... and who is typing in each room, from every process, with when it stops showing.
        self.typers: dict[int, dict[int, tuple[str, float]]] = {}
        self.typing_shown: dict[int, tuple[str, ...]] = {}
        self.typing_expiry: dict[int, asyncio.Task] = {}
        # The authority of each local socket's account as its sockets have it (None: just redrawn
        # or closed by a signal; the next heartbeat takes what is stored).
        self.authorities: dict[int, Authority | None] = {}

    # Life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        async with self.start_lock:
            if self.tasks:
                return
            # Every layer Parley runs on (in-memory, channels-redis) takes a prefix; the base class doesn't.
            self.channel = await self.layer.new_channel("hub.")  # type: ignore[call-arg]
            self.process_id = await database_sync_to_async(services.register_process)()
            self.listener = asyncio.create_task(self._listen())
            self.tasks = [self.listener, asyncio.create_task(self._keep_alive())]
            if _redis_urls():
                self.tasks.append(asyncio.create_task(self._watch_broker()))
            _drain_on_sigterm(self)

    async def stop(self) -> None:
        """The last local socket left: stop listening and beating; this process holds no presence."""
        async with self.start_lock:
            if self.presence_writer:
                await asyncio.shield(self.presence_writer)
            if self.local:
                return  # a socket joined meanwhile
            tasks, self.tasks = self.tasks, []
            for task in tasks:
                task.cancel()
            if self.process_id:
                process_id, self.process_id = self.process_id, 0
                await database_sync_to_async(services.forget_process)(process_id)

    # Sockets and groups ---------------------------------------------------------------------

    async def join(self, groups: tuple[str, ...], socket: LocalSocket) -> None:
        self.local.add(socket)
        if socket.user_id is not None and socket.user_id not in self.authorities:
            self.authorities[socket.user_id] = Authority.of(cast(Account, socket.user))
        await self.start()
        if self.draining:
            raise ConnectionError("this process is shutting down")
        if self.broker_down and not await self.check_broker():
            # The page retries (1011): it gets its history once the broker is back.
            raise ConnectionError("the channel layer's broker is unreachable")
        for group in groups:
            async with self.group_locks[group]:
                self.members[group].add(socket)
                if group not in self.subscribed:
                    # The bundle first: from the moment the group counts as subscribed, its events
                    # reach this hub whether they travel alone or in a bundle.
                    await self._bundle_needed(group)
                    await self.layer.group_add(group, self.channel)
                    self.subscribed.add(group)

    async def leave(self, groups: tuple[str, ...], socket: LocalSocket, for_good: bool = True) -> None:
        """Unsubscribe the socket from these groups; `for_good` when it is closing, not switching role."""
        for group in groups:
            async with self.group_locks[group]:
                self.members[group].discard(socket)
                if not self.members[group] and group in self.subscribed:
                    del self.members[group]
                    self.subscribed.discard(group)
                    self._forget_history(group)
                    self._forget_typing(group)
                    self._forget_members(group)
                    try:
                        await self.layer.group_discard(group, self.channel)
                    finally:  # forgotten like the group itself, even if the broker is gone
                        await self._bundle_unneeded(group)
        if for_good:
            self.local.discard(socket)
            if not self.local:
                await self.stop()

    def sockets_in(self, group: str) -> list[LocalSocket]:
        return list(self.members.get(group, ()))

    async def _bundle_needed(self, group: str) -> None:
        room_id = broadcast.room_of_group(group)
        if room_id is None:
            return
        bundle = broadcast.bundle_group(room_id)
        async with self.group_locks[bundle]:
            if room_id not in self.bundle_users:
                await self.layer.group_add(bundle, self.channel)
            self.bundle_users[room_id] = self.bundle_users.get(room_id, 0) + 1

    async def _bundle_unneeded(self, group: str) -> None:
        room_id = broadcast.room_of_group(group)
        if room_id is None or room_id not in self.bundle_users:
            return
        bundle = broadcast.bundle_group(room_id)
        async with self.group_locks[bundle]:
            self.bundle_users[room_id] -= 1
            if self.bundle_users[room_id] <= 0:
                del self.bundle_users[room_id]
                await self.layer.group_discard(bundle, self.channel)

    def subscriptions(self) -> list[str]:
        """Every group this hub listens to: its sockets' groups and their rooms' bundle groups."""
        return [*map(broadcast.bundle_group, self.bundle_users), *self.subscribed]

    # Events from the layer ------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception as problem:  # the core layer raises while Redis is down
                log.warning("The hub could not receive (%s); retrying", type(problem).__name__)
                await asyncio.sleep(1)
                continue
            try:
                await self.deliver(event)
            except Exception:
                log.exception("The hub could not deliver %s", event.get("type"))

    async def deliver(self, event: dict) -> None:
        if event["type"] == broadcast.BUNDLE:
            await self._unbundle(event)
            return
        group = event["group"]
        if event["type"] == TYPING:
            await self._typing_arrived(group, event)
            return
        if event["type"] == "room.members":
            self._members_announced(group, event)
        else:
            self._forget_history(group)
        user_id = account_id_of(group)
        if user_id in self.authorities and event["type"] in AUTHORITY_NEWS:
            self.authorities[user_id] = None  # a signal's news: the heartbeat need not repeat it
        for socket in self.sockets_in(group):
            try:
                await socket.deliver(event)
            except Exception:
                log.exception("Socket %s failed on %s", socket.socket_id, event["type"])

    async def _unbundle(self, bundle: dict) -> None:
        """Each part in order, as if it had come alone: to the groups this hub is subscribed to,
        as the layer would have brought it only to those."""
        for group, event in bundle["parts"]:
            if group in self.subscribed:
                await self.deliver(event | {"group": group})

    # History cache --------------------------------------------------------------------------

    def shared_room(self, room: Room) -> Room:
        """One Room instance per room for every local socket (10,000 idle sockets, not 10,000 copies).

        A freshly read room with other values replaces the kept one; sockets read the room
        again before acting (actions.handle), so an older instance only names the room.
        """
        kept = self.rooms.get(room.pk)
        if kept is not None and _stored_values(kept) == _stored_values(room):
            return kept
        self.rooms[room.pk] = room
        return room

    async def reconnect_html(self, room: Room, role: Role) -> str:
        """The history and header for a (re)connecting socket, rendered once per room and role.

        Call it after joining the room's groups, so an event that changes the history either
        is already in the database or reaches this hub and drops the cached copy.
        """
        key = (room.pk, str(role))
        if key in self.history:
            return self.history[key]
        if key in self.history_renders:
            return await asyncio.shield(self.history_renders[key])
        generation = self.history_generation[room.pk]
        render = asyncio.ensure_future(database_sync_to_async(fragments.reconnect_html)(room, role))
        self.history_renders[key] = render
        try:
            html = await render
        finally:
            if self.history_renders.get(key) is render:
                del self.history_renders[key]
        # An event arrived while rendering: the copy may be stale; use it once, don't keep it.
        if generation == self.history_generation[room.pk] and room.group_name in self.subscribed:
            self.history[key] = html
        return html

    def _forget_history(self, group: str) -> None:
        room_id = room_id_of(group)
        if room_id is None:
            return  # an account's news changes no room's history
        self.history_generation[room_id] += 1
        for role in Role:
            self.history.pop((room_id, str(role)), None)
            # Sockets waiting on a render that started before this event render their own.
            self.history_renders.pop((room_id, str(role)), None)

    # Presence rows, written in batches ------------------------------------------------------

    def arrived(self, presence: services.SocketPresence) -> None:
        """A socket joined the room's member list (written with others in one batch)."""
        self.arrivals[presence.socket_id] = presence
        self._touched(presence.room)

    def departed(self, socket_id: str, room: Room) -> None:
        if self.arrivals.pop(socket_id, None) is None:
            self.departures.add(socket_id)
        self._touched(room)

    def _touched(self, room: Room) -> None:
        self.rooms_touched[room.pk] = room
        if self.presence_writer is None:
            self.presence_writer = asyncio.create_task(self._write_presence())

    async def _write_presence(self) -> None:
        """One database write for every join and leave of the last moment, then announce the rooms.

        Loops until nothing is pending, so what arrives during a write goes in the next one.
        """
        while self.arrivals or self.departures:
            await asyncio.sleep(settings.CHAT_PRESENCE_BATCH_SECONDS)
            arrivals, departures, rooms = list(self.arrivals.values()), self.departures, self.rooms_touched
            self.arrivals, self.departures, self.rooms_touched = {}, set(), {}
            try:
                await database_sync_to_async(services.record_presence)(self.process_id, arrivals, departures)
            except Exception:
                log.exception(
                    "Could not record %d arrivals and %d departures", len(arrivals), len(departures)
                )
            for room in rooms.values():
                self.members_changed(room)
        self.presence_writer = None

    # Member list, coalesced -----------------------------------------------------------------

    def members_changed(self, room: Room) -> None:
        """Someone joined or left: announce the list once the room's quiet interval has passed."""
        if room.pk in self.members_due:
            return
        since_last = time.monotonic() - self.members_sent_at.get(room.pk, float("-inf"))
        delay = max(0.0, settings.CHAT_MEMBERS_BROADCAST_SECONDS - since_last)
        self.members_due[room.pk] = asyncio.create_task(self._announce_members(room, delay))

    async def _announce_members(self, room: Room, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            # Joins from now on schedule the next announcement, which sees them.
            self.members_due.pop(room.pk, None)
        self.members_sent_at[room.pk] = time.monotonic()
        if self.broker_down:
            return  # announced again when the broker is back
        try:
            for group, event in await database_sync_to_async(broadcast.members_event)(room):
                await self.layer.group_send(group, event)
        except Exception:
            log.exception("Could not announce the members of %s", room)

    def _members_announced(self, group: str, event: dict) -> None:
        room_id = room_id_of(group)
        if room_id is not None and "members" in event:
            usernames, guests, more = event["members"]
            self.members_shown[room_id] = queries.Members(list(usernames), guests, more)

    def _forget_members(self, group: str) -> None:
        """Nobody here reads the room any more: announcements stop arriving, so forget the last."""
        room_id = room_id_of(group)
        if room_id is not None and group == f"room.{room_id}":
            self.members_shown.pop(room_id, None)

    async def members_on_joining(self, room: Room, name: str | None) -> str:
        """The member list for a socket joining the room (`name` None: a guest), with it in: the
        last list announced here (read once if none was) and the people who joined here since.
        Everyone else hears of the join with the next announcement, at most a second later; the
        joiner sees itself at once, rendered once per distinct list (no query)."""
        known = self.members_shown.get(room.pk)
        if known is None:
            read = await database_sync_to_async(queries.online_members)(room)
            known = self.members_shown.setdefault(room.pk, read)
        shown = known.joined_by(name)
        # Only a name now listed is kept for later joiners: guests and names past the listed ones
        # only count, and are not added up, so a storm of them shares one rendering.
        if shown.usernames != known.usernames:
            self.members_shown[room.pk] = shown
        return fragments.members_list_html(shown)

    # Typing, coalesced ----------------------------------------------------------------------

    def typing(self, room: Room, user_id: int, name: str) -> None:
        """A local user is typing: every process hears of it at most once per room per interval."""
        self.typing_out.setdefault(room.pk, {})[user_id] = name
        if room.pk in self.typing_due:
            return
        since_last = time.monotonic() - self.typing_sent_at.get(room.pk, float("-inf"))
        delay = max(0.0, settings.CHAT_TYPING_BROADCAST_SECONDS - since_last)
        self.typing_due[room.pk] = asyncio.create_task(self._announce_typing(room, delay))

    async def _announce_typing(self, room: Room, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            self.typing_due.pop(room.pk, None)
        typers = self.typing_out.pop(room.pk, {})
        if not typers:
            return  # all of them posted meanwhile
        self.typing_sent_at[room.pk] = time.monotonic()
        event = {"type": TYPING, "group": room.group_name, "typing": [list(pair) for pair in typers.items()]}
        try:
            await self.layer.group_send(room.group_name, event)
        except Exception:
            log.exception("Could not announce who is typing in %s", room)

    async def _typing_arrived(self, group: str, event: dict) -> None:
        """Someone started or went on typing (`typing`), or posted (`stopped`): show it if it shows."""
        room_id = room_id_of(group)
        if room_id is None:
            return
        typers = self.typers.setdefault(room_id, {})
        until = time.monotonic() + settings.CHAT_TYPING_SHOWN_SECONDS
        for user_id, name in event.get("typing", ()):
            typers[user_id] = (name, until)  # an update keeps its place: the first typer is named first
        stopped = event.get("stopped")
        if stopped is not None:
            self.typing_out.get(room_id, {}).pop(stopped, None)
            typers.pop(stopped, None)
        await self._show_typing(group, room_id)
        if room_id not in self.typing_expiry and typers:
            self.typing_expiry[room_id] = asyncio.create_task(self._expire_typing(group, room_id))

    async def _expire_typing(self, group: str, room_id: int) -> None:
        """Take names off CHAT_TYPING_SHOWN_SECONDS after their last signal, until nobody is left."""
        try:
            while typers := self.typers.get(room_id):
                now = time.monotonic()
                soonest = min(until for _, until in typers.values())
                if soonest > now:
                    await asyncio.sleep(soonest - now)
                    continue
                for user_id in [user_id for user_id, (_, until) in typers.items() if until <= now]:
                    del typers[user_id]
                await self._show_typing(group, room_id)
        except Exception:
            log.exception("Could not expire who is typing in room %s", room_id)
        finally:
            self.typing_expiry.pop(room_id, None)

    async def _show_typing(self, group: str, room_id: int) -> None:
        """Write "… is typing" to the room's local sockets when the names changed, each text rendered once."""
        typers = self.typers.get(room_id, {})
        names = tuple(name for name, _ in typers.values())
        if self.typing_shown.get(room_id, ()) == names:
            return
        self.typing_shown[room_id] = names
        rendered: dict[int | None, str] = {}
        for socket in self.sockets_in(group):
            viewer = socket.user_id if socket.user_id in typers else None
            if viewer not in rendered:
                rendered[viewer] = fragments.typing_html(
                    [name for user_id, (name, _) in typers.items() if user_id != viewer]
                )
            try:
                await socket.deliver({"type": "room.html", "html": rendered[viewer]})
            except Exception:
                log.exception("Socket %s failed on %s", socket.socket_id, TYPING)

    def typing_now(self, room: Room, user_id: int | None) -> str | None:
        """Who is typing, for a socket that just joined (None when nobody else is)."""
        names = [name for typer, (name, _) in self.typers.get(room.pk, {}).items() if typer != user_id]
        return fragments.typing_html(names) if names else None

    def _forget_typing(self, group: str) -> None:
        """Nobody here reads the room any more: forget who types in it."""
        room_id = room_id_of(group)
        if room_id is not None and group == f"room.{room_id}":
            self.typers.pop(room_id, None)
            self.typing_shown.pop(room_id, None)

    # Heartbeat ------------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT_SECONDS)
            try:
                await self.beat()
            except Exception:
                log.exception("Presence heartbeat failed; retrying on the next beat")

    async def beat(self) -> None:
        """One write per process, whatever the number of sockets; reap processes that stopped."""
        alive = await database_sync_to_async(services.beat)(self.process_id)
        if not alive:
            await self._come_back()
        # A crashed process's sockets leave the lists of the rooms they were in.
        for room in await database_sync_to_async(services.reap_stale_processes)():
            self.members_changed(room)
        # Group memberships expire in the layer (group_expiry): renew ours (all afresh on recovery).
        for group in [] if self.broker_down else self.subscriptions():
            await self.layer.group_add(group, self.channel)
        await self.recheck_accounts()

    async def recheck_accounts(self) -> None:
        """Read the accounts behind every local socket (one query) and close or redraw the sockets
        of those changed without a signal, as the signal would have (chat.broadcast.authority_event).
        So a revoked socket reads a room at most one heartbeat longer than a signalled one."""
        signed_in = {socket.user_id for socket in self.local} - {None}
        for gone in self.authorities.keys() - signed_in:
            del self.authorities[gone]
        known = {user_id: self.authorities.get(user_id) for user_id in signed_in if user_id is not None}
        if not known:
            return
        changed = await database_sync_to_async(broadcast.accounts_changed)(known)
        for user_id, (stored, event) in changed.items():
            if event is not None:
                await self.deliver(event | {"group": account_group_name(user_id)})
            if user_id in self.authorities:  # unless its sockets went meanwhile
                self.authorities[user_id] = stored

    async def _come_back(self) -> None:
        """This process was taken for dead (e.g. stalled past the TTL): list its sockets again."""
        presences = [p for p in (socket.presence() for socket in self.local) if p is not None]
        self.process_id = await database_sync_to_async(services.register_process)(presences)
        for room in {p.room.pk: p.room for p in presences}.values():
            self.members_changed(room)

    # Broker outages -------------------------------------------------------------------------

    async def _watch_broker(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_BROKER_CHECK_SECONDS)
            try:
                await self.check_broker()
            except Exception:
                log.exception("Could not recover from a broker outage; trying again")

    async def check_broker(self) -> bool:
        """PING the broker; tell every socket when it goes away, recover when it is back.

        One check at a time: sockets joining during an outage all ask, and one recovery is enough.
        The broker counts as gone after BROKER_FAILED_CHECKS failed checks in a row, not one: a
        busy event loop (thousands of sockets joining) can be slow to read a PING answered at once.
        """
        async with self.broker_lock:
            answered = await _broker_answers()
            self.failed_checks = 0 if answered else self.failed_checks + 1
            up = answered or (not self.broker_down and self.failed_checks < BROKER_FAILED_CHECKS)
            await self._broker_changed(up)
            return up

    async def _broker_changed(self, up: bool) -> None:
        if not up and not self.broker_down:
            self.broker_down = True
            log.warning("The channel layer's broker is unreachable: posts are refused until it is back")
            notice = fragments.notice_html(BROKER_DOWN, error=True)
            await self._to_every_socket({"type": "room.html", "html": notice})
        elif up and self.broker_down:
            await self._resubscribe()
            self.broker_down = False
            log.warning("The broker layer's broker is back: %d groups subscribed again", len(self.subscribed))
            await self._to_every_socket({"type": "room.recovered"})
            for room in {s.room.pk: s.room for s in map(_presence_of, self.local) if s}.values():
                self.members_changed(room)

    async def _resubscribe(self) -> None:
        """Drop the layer's stale connections, then listen on a fresh channel in every group we had.

        The pub/sub layer keeps its broken connection and subscriptions after Redis restarts
        (the first subscribe afterwards fails); its flush() closes them and forgets its
        in-process state, which only this hub holds. The core layer's flush would delete every
        process's groups in Redis, so it only gets a new channel (the old one expires).
        """
        if self.listener is not None:
            self.listener.cancel()
            await asyncio.gather(self.listener, return_exceptions=True)
        if isinstance(self.layer, RedisPubSubChannelLayer):
            await self.layer.flush()
        self.channel = await self.layer.new_channel("hub.")  # type: ignore[call-arg]
        for group in self.subscriptions():
            async with self.group_locks[group]:
                await self.layer.group_add(group, self.channel)
        self.listener = asyncio.create_task(self._listen())
        self.tasks = [self.listener, *self.tasks[1:]]

    async def _to_every_socket(self, event: dict) -> None:
        for socket in list(self.local):
            try:
                await socket.deliver(event)
            except Exception:
                log.exception("Socket %s failed on %s", socket.socket_id, event["type"])

    # Graceful restart -----------------------------------------------------------------------

    async def drain(self) -> None:
        """Close every local socket with 1011 once its frame in hand is answered; refuse new ones."""
        self.draining = True
        log.warning("Shutting down: closing %d sockets so their pages reconnect elsewhere", len(self.local))
        for socket in list(self.local):
            socket.restart()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.CHAT_SHUTDOWN_GRACE_SECONDS
        while self.local and loop.time() < deadline:
            await asyncio.sleep(0.05)
        # daphne sends the 1011 of a finished application on its next check, once a second.
        await asyncio.sleep(1.5)


def _drain_on_sigterm(hub: Hub) -> None:
    """Put the hub's drain in front of the server's own SIGTERM handler (daphne's reactor), once.

    Only when a server installed one: a test process or a shell keeps its default.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or getattr(previous, "drains", False):
        return
    if settings.CHAT_SHUTDOWN_GRACE_SECONDS <= 0 or threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()

    async def drain_then_stop(signum: int, frame: FrameType | None) -> None:
        try:
            await hub.drain()
        finally:
            previous(signum, frame)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM stops at once
        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_stop(signum, frame)))

    on_sigterm.drains = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)


def _presence_of(socket: LocalSocket) -> services.SocketPresence | None:
    return socket.presence()


def _redis_urls() -> list[str]:
    """The Redis servers behind the default channel layer (none for the in-memory layer)."""
    layer: dict = settings.CHANNEL_LAYERS["default"]
    hosts = layer.get("CONFIG", {}).get("hosts") or []
    return [host if isinstance(host, str) else host["address"] for host in hosts]


async def _broker_answers() -> bool:
    timeout = settings.CHAT_BROKER_CHECK_SECONDS * BROKER_FAILED_CHECKS
    redis = None
    try:
        for url in _redis_urls():
            redis = broadcast.redis_client(url, timeout)  # kept between checks (see redis_client)
            await asyncio.wait_for(redis.ping(), timeout)
    except Exception as problem:  # redis.exceptions.ConnectionError, TimeoutError, OSError
        log.debug("Broker check failed: %s", type(problem).__name__)
        if redis is not None:  # the next check connects afresh, as each check used to
            with suppress(Exception):
                await redis.connection_pool.disconnect()
        return False
    return True


def hub() -> Hub:
    """This process's hub for the default channel layer (a new layer, e.g. in tests, gets a new hub)."""
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS always has a default layer"
    if layer not in _hubs:
        _hubs[layer] = Hub(layer)
    return _hubs[layer]


_hubs: WeakKeyDictionary[BaseChannelLayer, Hub] = WeakKeyDictionary()


def _stored_values(room: Room) -> list[object]:
    return [getattr(room, field.attname) for field in Room._meta.concrete_fields]
