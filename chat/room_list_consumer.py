"""The room list's socket (`/ws/rooms/`): the signed-in user's unread counts, live.

At connect one query reads the counts of every room the user may read and the user's notification
level in each (chat/involvement.py), and the socket sends the rooms with something unread as their
levels show them, and the title; the socket then joins
one group per such room (`unread.<pk>`, joined once per process by the hub however many list
sockets) plus the user's own (`unread.user.<id>`). A new message arrives as numbers, not HTML:
the socket adds one to its count and sends the badge and title for the new numbers, rendered
once per process per distinct numbers (chat.fragments caches them). No database, no render per
socket per message. Opening a room elsewhere (any tab, any process) sets its count to zero.

The socket keeps every count as it is (every message, every mention) and applies the level when it
shows it: a message in a room at "Nothing" sends nothing, and a change of level (news to the user's
own group, from any tab) shows the room's new counts and control at once, with no query.

Snooze: the connect also reads until when the user is snoozed (one small query); a snooze or a
resume from any tab arrives on the user's own group with its line rendered once. The socket takes
the line down by itself when the snooze ends (a timer while one is on), as nothing is sent then.
"""

import asyncio
import logging
import secrets
import time
from datetime import datetime
from typing import cast

from channels.db import database_sync_to_async

from chat import fragments, involvement, queries, unread
from chat.hub import Hub, HubConsumer, hub
from chat.models import account_group_name
from chat.sockets import open_sockets, take_socket
from chat.standing import Account, User, session_tag
from chat.unread import DEFAULT_LEVEL, Level, Unread

log = logging.getLogger(__name__)

SESSION_ENDED = 4401  # as chat.consumers: signed out, not retried
TOO_MANY_SOCKETS = 4429


class TryAgainLater(Exception):
    """Ends the socket with 1011 (daphne's answer to a raising app), which htmx retries."""

    log_traceback = False


class RoomListConsumer(HubConsumer):
    groups_joined: tuple[str, ...] = ()
    holder: str | None = None
    session_hash = session_tag(None)
    main_task: asyncio.Task | None = None
    restarting = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.socket_id = secrets.token_hex(16)
        self.hub: Hub = hub()
        self.counts: dict[int, Unread] = {}  # as they are: the level is applied when shown
        self.levels: dict[int, Level] = {}
        self.refreshing: asyncio.Task | None = None
        self.snooze_ending: asyncio.Task | None = None  # takes the snooze line down when it ends

    @property
    def user(self) -> User:
        return cast(User, self.scope["user"])

    @property
    def user_id(self) -> int | None:
        return self.user.pk

    async def __call__(self, scope, receive, send) -> None:
        self.main_task = asyncio.current_task()
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if not self.restarting:
                raise
            raise TryAgainLater("The server is restarting; the room list reconnects.") from None
        finally:
            await self._leave()

    async def connect(self) -> None:
        if not self.user.is_authenticated:
            await self.close()  # visitors have no counts: refused at the handshake
            return
        self.holder, refusal = take_socket(self.scope, self.user)
        if self.holder is None:
            await self.accept()
            await self.send(fragments.notice_html(refusal, error=True))
            await self.close(code=TOO_MANY_SOCKETS)
            return
        self.session_hash = session_tag(self.scope["session"].session_key)
        await self.accept()
        try:
            await self._count_afresh()
        except Exception as problem:
            log.warning("The room list could not subscribe (%s); the page will retry", type(problem).__name__)
            raise TryAgainLater("The channel layer did not answer; the page will retry.") from None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The list sends nothing; whatever arrives is ignored."""

    async def _count_afresh(self) -> None:
        """Read every readable room's counts (one query), follow exactly those rooms, show what is unread."""
        counts, levels, snoozed_until = await database_sync_to_async(self._stored_state)()
        uid = self.user.pk
        assert uid is not None, "visitors were refused at connect"
        groups = (
            *(unread.unread_group(room_id) for room_id in counts),
            unread.reader_group(uid),
            account_group_name(uid),
        )
        # Join the new groups before leaving the old ones: no news falls between.
        old, self.groups_joined = self.groups_joined, groups
        await self.hub.join(groups, self)
        await self.hub.leave(tuple(set(old) - set(groups)), self, for_good=False)
        self.counts, self.levels = counts, levels
        # What arrived since the page was rendered (a moment ago: the page is versioned by these
        # counts). Rooms with nothing unread are left as the page shows them: a list of 200 rooms
        # costs no 200 empty badges.
        shown = {pk: self._shown(pk) for pk in counts}
        badges = "".join(
            fragments.room_unread_html(pk, found) for pk, found in shown.items() if found != Unread()
        )
        await self.send(badges + self._title() + fragments.tab_id_html(self.socket_id))
        self._end_snooze_at(snoozed_until.timestamp() if snoozed_until else None)

    def _stored_state(self) -> tuple[dict[int, Unread], dict[int, Level], datetime | None]:
        """Every readable room's counts and levels (one query), and until when the user is snoozed."""
        counts, levels = unread.unread_and_levels(self.user, queries.live_processes_cutoff())
        return counts, levels, involvement.snoozed_until(cast(Account, self.user))

    # Hub events ----------------------------------------------------------------------------

    async def deliver(self, event: dict) -> None:
        kind = event["type"]
        if kind == "unread.message":
            await self._one_more(event)
        elif kind == "unread.online":
            await self.send(event["html"])  # "N online", rendered once per room change for every list
        elif kind == "unread.read":
            await self._show(event["room_id"], Unread())
        elif kind == "unread.level":
            await self._level_changed(event)
        elif kind == "unread.snooze":  # snoozed or resumed, on any tab
            await self.send(event["html"])
            self._end_snooze_at(event["ends"])
        elif kind in ("unread.refresh", "room.standing", "room.recovered"):
            # Access changed (a ban, a room made private, staff rights), or the broker is back after
            # an outage (news may have been lost): count afresh, in a task so the hub moves on.
            if self.refreshing is None or self.refreshing.done():
                self.refreshing = asyncio.create_task(self._refresh())
        elif kind == "account.ended" and event.get("session", self.session_hash) == self.session_hash:
            await self.close(code=SESSION_ENDED)  # signed out (this session, or every one)

    async def _one_more(self, event: dict) -> None:
        room_id, uid = event["room_id"], self.user.pk
        counts = self.counts.get(room_id)
        if counts is None or event["author_id"] == uid or self._reading_here(room_id):
            return
        mentioned = uid in event.get("mentions", ())
        await self._show(room_id, Unread(counts.messages + 1, counts.mentions + mentioned))

    def _reading_here(self, room_id: int) -> bool:
        """The user has the room open on this process: they read it as it arrives (its position is
        written when that socket closes, which zeroes this count on every process)."""
        return bool(self.hub.members.get(f"room.{room_id}.user.{self.user.pk}"))  # Room.user_group_name

    async def _show(self, room_id: int, counts: Unread) -> None:
        """Keep the room's new counts; send its badge and the title only if what shows changed."""
        if room_id not in self.counts or self.counts[room_id] == counts:
            return
        was = self._shown(room_id)
        self.counts[room_id] = counts
        if self._shown(room_id) != was:
            await self.send(fragments.room_unread_html(room_id, self._shown(room_id)) + self._title())

    async def _level_changed(self, event: dict) -> None:
        """The user chose a level for a room (on any tab): its control, its counts as that level
        shows them (a room at Hidden leaves the list by CSS unless it shows a mention), the title."""
        room_id = event["room_id"]
        if room_id not in self.counts:
            return
        self.levels[room_id] = event["level"]
        # The tab it was chosen on shows the answer to its post (with the focus in it).
        control = "" if event.get("from") == self.socket_id else event["html"]
        badge = fragments.room_unread_html(room_id, self._shown(room_id))
        await self.send(control + badge + self._title())

    def _end_snooze_at(self, ends: float | None) -> None:
        """Take the snooze line down when the snooze ends (`ends`: seconds since the epoch), as
        the page shows it; no snooze (None), no timer."""
        if self.snooze_ending is not None:
            self.snooze_ending.cancel()
            self.snooze_ending = None
        if ends is not None:
            self.snooze_ending = asyncio.create_task(self._snooze_ends(ends))

    async def _snooze_ends(self, ends: float) -> None:
        await asyncio.sleep(max(0.0, ends - time.time()))
        self.snooze_ending = None
        await self.send(fragments.snooze_line_html(None))  # rendered once per process

    def _shown(self, room_id: int) -> Unread:
        return self.counts[room_id].at_level(self.levels.get(room_id, DEFAULT_LEVEL))

    def _title(self) -> str:
        return fragments.list_title_html(sum(self._shown(pk).total for pk in self.counts))

    async def _refresh(self) -> None:
        try:
            await self._count_afresh()
        except Exception:
            log.exception("Could not count the unread messages of socket %s afresh", self.socket_id)

    # What the hub asks of every local socket -----------------------------------------------

    def presence(self) -> None:
        """A room list is in no room's member list."""
        return None

    def restart(self) -> None:
        self.restarting = True
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()

    async def _leave(self) -> None:
        if self.refreshing is not None:
            self.refreshing.cancel()
        self._end_snooze_at(None)
        if self.holder is not None:
            holder, self.holder = self.holder, None
            open_sockets.give_back(holder)
        groups, self.groups_joined = self.groups_joined, ()
        if groups:
            try:
                await self.hub.leave(groups, self)
            except Exception:
                log.exception("Room list socket %s could not leave its groups", self.socket_id)
