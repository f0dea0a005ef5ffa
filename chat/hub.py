"""The process-local hub: one channel-layer subscriber per server process, whatever the number of sockets.

Per process (and channel layer) there is one hub. It holds one layer channel and subscribes it
once to each group that has local sockets, so a broadcast costs one layer message per process,
not one per member. A finished HTML fragment is written straight to each local socket of the
group: no per-member copy, queue or consumer dispatch. Events that need the consumer (a user's
standing changed, the room turned private, the form per role) are handed to each one.

The hub also does what is per process rather than per socket:
- one heartbeat keeps every local socket's presence alive (ServerProcess.last_seen) and reaps
  the presence of processes that stopped beating;
- the member list is announced at most once per room per CHAT_MEMBERS_BROADCAST_SECONDS, rendered
  once, however many sockets join or leave meanwhile;
- the history a (re)connecting socket gets is rendered once per room and role, and forgotten
  as soon as any event that may change it arrives;
- "alice is typing…": typing signals are kept in memory (never stored), sent to the other
  processes at most once per room per CHAT_TYPING_BROADCAST_SECONDS, and shown to local sockets
  only when the names change, rendered once per distinct text (typers don't see themselves).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Protocol
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from chat import broadcast, fragments, services
from chat.models import Role, Room

log = logging.getLogger(__name__)

HistoryKey = tuple[int, str]
TYPING = "room.typing"


class LocalSocket(Protocol):
    """What the hub needs from a consumer."""

    socket_id: str

    @property
    def user_id(self) -> int | None:
        """Who the socket is signed in as (None for visitors): typers don't see their own name."""

    async def deliver(self, event: dict) -> None: ...

    def presence(self) -> services.SocketPresence | None: ...


def room_id_of(group: str) -> int | None:
    """Room groups start with room.<pk> (see Room.group_name); an account's group has no room."""
    kind, key, *_ = group.split(".")
    return int(key) if kind == "room" else None


class Hub:
    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.channel = ""
        self.process_id = 0
        self.local: set[LocalSocket] = set()
        self.members: dict[str, set[LocalSocket]] = defaultdict(set)
        self.group_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.subscribed: set[str] = set()
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
        # Typing: signals from local sockets waiting to go out, per room (user id -> name) ...
        self.typing_out: dict[int, dict[int, str]] = {}
        self.typing_due: dict[int, asyncio.Task] = {}
        self.typing_sent_at: dict[int, float] = {}
        # ... and who is typing in each room, from every process, with when it stops showing.
        self.typers: dict[int, dict[int, tuple[str, float]]] = {}
        self.typing_shown: dict[int, tuple[str, ...]] = {}
        self.typing_expiry: dict[int, asyncio.Task] = {}

    # Life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        async with self.start_lock:
            if self.tasks:
                return
            # Every layer Parley runs on (in-memory, channels-redis) takes a prefix; the base class doesn't.
            self.channel = await self.layer.new_channel("hub.")  # type: ignore[call-arg]
            self.process_id = await database_sync_to_async(services.register_process)()
            self.tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._keep_alive())]

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
        await self.start()
        for group in groups:
            async with self.group_locks[group]:
                self.members[group].add(socket)
                if group not in self.subscribed:
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
                    await self.layer.group_discard(group, self.channel)
        if for_good:
            self.local.discard(socket)
            if not self.local:
                await self.stop()

    def sockets_in(self, group: str) -> list[LocalSocket]:
        return list(self.members.get(group, ()))

    # Events from the layer ------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            event = await self.layer.receive(self.channel)
            try:
                await self.deliver(event)
            except Exception:
                log.exception("The hub could not deliver %s", event.get("type"))

    async def deliver(self, event: dict) -> None:
        group = event["group"]
        if event["type"] == TYPING:
            await self._typing_arrived(group, event)
            return
        if event["type"] != "room.members":
            self._forget_history(group)
        for socket in self.sockets_in(group):
            try:
                await socket.deliver(event)
            except Exception:
                log.exception("Socket %s failed on %s", socket.socket_id, event["type"])

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
        try:
            group, event = await database_sync_to_async(broadcast.members_event)(room)
            await self.layer.group_send(group, event)
        except Exception:
            log.exception("Could not announce the members of %s", room)

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
        # Group memberships expire in the layer (group_expiry): renew ours.
        for group in list(self.subscribed):
            await self.layer.group_add(group, self.channel)

    async def _come_back(self) -> None:
        """This process was taken for dead (e.g. stalled past the TTL): list its sockets again."""
        presences = [p for p in (socket.presence() for socket in self.local) if p is not None]
        self.process_id = await database_sync_to_async(services.register_process)(presences)
        for room in {p.room.pk: p.room for p in presences}.values():
            self.members_changed(room)


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
