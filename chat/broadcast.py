"""Live effects: fragments rendered once per event and sent through the channel layer.

Every service that changes what a room shows calls one of these, so an action taken in
the admin shows in open browsers exactly like one taken from the room page. Sends wait
for the database commit: nobody sees what was not stored.
"""

import asyncio
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import cast

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest
from redis import Redis as SyncRedis
from redis.asyncio import Redis as AsyncRedis

from chat import fragments, queries
from chat.models import Ban, Membership, Message, Mute, Role, Room, account_group_name
from chat.queries import ShownMessage
from chat.standing import (
    ACCOUNT_DISABLED,
    AUTHORITY_FIELDS,
    SIGNED_OUT,
    Account,
    Authority,
    authority_lost,
    session_tag,
    stored_authorities,
)
from chat.unread import reader_group, unread_group

log = logging.getLogger(__name__)

# Versions of what pages show, for the page cache (chat/pagecache.py): a rendered page is served
# again only while the versions it was rendered under are unchanged. Bumped after the commit,
# so a page rendered from the old data is always stored under an old version.
ALL_PAGES = "pages:all"  # everything: users renamed, deactivated, promoted to staff
ROOM_LIST = "pages:list"  # the room list: any room's name, access or online count


def room_version_key(room_id: int) -> str:
    return f"pages:room:{room_id}"


def user_version_key(user_id: int) -> str:
    """What one user's room list shows of them alone: their unread mentions."""
    return f"pages:user:{user_id}"


def versions(*keys: str) -> tuple:
    """The current versions of these keys. One that is missing (evicted, or never set) starts at
    a fresh one, never at a number an old page may have been stored under."""
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            cache.add(key, _fresh_version(), timeout=None)
            found[key] = cache.get(key)
    return tuple(found[key] for key in keys)


def _fresh_version() -> int:
    """A version no page has been stored under: 63 random bits. A page is served only if its
    versions are the current ones, so a version only needs to differ from every earlier one."""
    return secrets.randbits(63)


def _bump_now(*keys: str) -> None:
    # One write for all the keys (with Redis, one round trip: incr would take two per key,
    # EXISTS then INCR, on the database thread of every post), and with Redis a plain MSET:
    # Django's set_many wraps it in MULTI/EXEC, twice the CPU (185 against 88 µs a call here).
    server = _cache_server()
    if server is None:
        cache.set_many({key: _fresh_version() for key in keys}, timeout=None)
    else:
        _sync_redis(server).mset(_as_cache_stores(keys))


def _cache_server() -> str | None:
    """The Redis server Django's cache writes to (the first of its servers, as RedisCache picks),
    None if the cache is not Redis."""
    if not isinstance(caches["default"], RedisCache):
        return None
    return re.split("[;,]", settings.CACHES["default"]["LOCATION"])[0]


def _as_cache_stores(keys: Iterable[str]) -> dict[str, int]:
    """Fresh versions for the keys as Django's RedisCache stores them: under its full key (prefix
    and version), an int as it is (its serializer pickles anything else)."""
    return {cache.make_and_validate_key(key): _fresh_version() for key in keys}


# One client per Redis server for the bumps made on the database thread (thread-safe: a pool).
_sync_clients: dict[str, SyncRedis] = {}


def _sync_redis(url: str) -> SyncRedis:
    if url not in _sync_clients:
        _sync_clients[url] = SyncRedis.from_url(url)
    return _sync_clients[url]


def bump(room: Room | int) -> None:
    """The room's page and the room list changed: after the commit, no cached copy is served again."""
    room_id = room if isinstance(room, int) else room.pk
    _bump(room_version_key(room_id), ROOM_LIST)


def bump_user(user_id: int) -> None:
    """The user's unread mentions changed: their room list only, nobody else's."""
    _bump(user_version_key(user_id))


def bump_all() -> None:
    _bump(ALL_PAGES, ROOM_LIST)


def _bump(*keys: str) -> None:
    # Now, for readers inside this transaction, and again after the commit: a page rendered
    # between the two from data read before the commit is stored under the older version.
    batched = getattr(_bumped_in_batch, "keys", None)
    if batched is not None:  # once per batch instead (see bumped_once)
        first_time = [key for key in keys if key not in batched]
        if first_time:
            _bump_now(*first_time)
            batched.update(first_time)
        return
    _bump_now(*keys)
    transaction.on_commit(lambda: _stored_anyway(_bump_now, *keys), robust=False)


# The keys bumped inside `bumped_once()` in this thread.
_bumped_in_batch = threading.local()


@contextmanager
def bumped_once() -> Iterator[set[str]]:
    """Around a transaction holding many changes (chat/posting.py): each page version is bumped
    the first time a change names it, not once per change, and the caller bumps all it names
    again once its transaction has committed (`bump_committed`). A change that was rolled back
    leaves its keys named: bumping a version needlessly costs a page render, never a stale page."""
    keys: set[str] = set()
    _bumped_in_batch.keys = keys
    try:
        yield keys
    finally:
        _bumped_in_batch.keys = None


async def bump_committed(keys: set[str]) -> None:
    """The after-commit bump of what a `bumped_once()` block named, from the event loop: the one
    database thread goes on to its next work instead of waiting for Redis's reply. The caller
    awaits it before broadcasting, so no page is served stale after the broadcast a browser sees.
    Until it is done, a page rendered between the in-transaction bump and the commit (from the
    data before it) may still be served, as it could before between the commit and this bump
    made on the database thread: nobody has been told of the change yet."""
    if not keys:
        return
    try:
        server = _cache_server()
        if server is None:
            # An in-process cache (locmem): a dict under a lock, no I/O, so no need of a thread.
            cache.set_many({key: _fresh_version() for key in keys}, timeout=None)
        else:
            await redis_client(server).mset(_as_cache_stores(keys))
    except Exception as problem:
        _not_shown_live(problem)


# One asyncio Redis client per event loop, server and timeout, kept: a new client makes a new
# connection, and redis-py reads its own version from the installed packages' metadata for each
# (a search of sys.path, about 10 ms of CPU: a hub checking the broker every second paid it each time).
_async_clients: dict[tuple[asyncio.AbstractEventLoop, str, float | None], AsyncRedis] = {}


def redis_client(url: str, timeout: float | None = None) -> AsyncRedis:
    """This event loop's client of `url` (tests run several loops one after another)."""
    loop = asyncio.get_running_loop()
    key = (loop, url, timeout)
    if key not in _async_clients:
        for old in [old for old in _async_clients if old[0].is_closed()]:
            del _async_clients[old]
        _async_clients[key] = AsyncRedis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return _async_clients[key]


def _room_saved(sender: type, instance: Room | Message | Membership | Ban | Mute, **kwargs: object) -> None:
    bump(instance if isinstance(instance, Room) else instance.room_id)


def _user_saved(
    sender: type, instance: object, update_fields: frozenset | None = None, **kwargs: object
) -> None:
    # Signing in saves last_login, which no page shows: every login would empty the cache.
    if update_fields != {"last_login"}:
        bump_all()


# A safety net under the live effects below: a change made anywhere (the admin, a shell, a
# service without a broadcast) to what a page shows invalidates the pages that show it.
# Presence is not here: who is online is bumped by `members`, never per heartbeat.
for _model in (Room, Message, Membership, Ban, Mute):
    post_save.connect(_room_saved, sender=_model, dispatch_uid=f"pages-{_model.__name__}-saved")
    post_delete.connect(_room_saved, sender=_model, dispatch_uid=f"pages-{_model.__name__}-deleted")
post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="pages-user-saved")
post_delete.connect(_user_saved, sender=get_user_model(), dispatch_uid="pages-user-deleted")


# One event carrying several events for one room's groups, in order (see `_bundled`).
BUNDLE = "room.bundle"


def room_of_group(group: str) -> int | None:
    """The room a group is about: room.<pk>, its role and user groups, and its room lists'
    unread.<pk>; None for an account's or a user's groups."""
    kind, key, *_ = group.split(".")
    return int(key) if kind in ("room", "unread") and key.isdigit() else None


def bundle_group(room_id: int) -> str:
    """Every hub with a socket in any of the room's groups listens here too (chat/hub.py)."""
    return f"bundle.{room_id}"


def _bundled(events: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Each run of events in a row for one room's groups as one event: a post's five (its three
    looks, its author's typing stopped, the room lists' count), or a batch's posts in one room, go
    out as one message, so with Redis one PUBLISH, and every other process reads it and wakes its
    hub once, not five times. Order is kept: a run is cut at any event for another room or none,
    and each hub hands the parts on in order, to the groups it has sockets in."""
    sent: list[tuple[str, dict]] = []
    run: list[list] = []
    run_room: int | None = None

    def flush() -> None:
        if len(run) == 1:
            sent.append((run[0][0], run[0][1]))
        elif run:
            sent.append((bundle_group(cast(int, run_room)), {"type": BUNDLE, "parts": list(run)}))
        run.clear()

    for group, event in events:
        room_id = room_of_group(group)
        if room_id is None or room_id != run_room:
            flush()
        if room_id is None:
            sent.append((group, event))
        else:
            run.append([group, event])
        run_room = room_id
    flush()
    return sent


async def _send(events: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS always has a default layer"
    for group, event in _bundled(events):
        # Each process's hub subscribes once to many groups: the event says which one it is for.
        await layer.group_send(group, event | {"group": group})


def _after_commit(group: str, event: dict) -> None:
    _all_after_commit([(group, event)])


def _all_after_commit(events: list[tuple[str, dict]]) -> None:
    """Several events in one hop to the event loop: each hop from this thread costs a round trip."""
    transaction.on_commit(lambda: _deliver(events), robust=False)


# Events committed inside `collected()` in this thread, waiting for its caller to send them.
_outbox = threading.local()


@contextmanager
def collected() -> Iterator[list[tuple[str, dict]]]:
    """Keep the events committed inside for the caller to send from the event loop with
    `send_collected`: a consumer's handler then makes no hop to the loop and back per post
    (which would also hold up the one database thread meanwhile)."""
    events: list[tuple[str, dict]] = []
    _outbox.events = events
    try:
        yield events
    except BaseException:
        if events:  # stored, so shown, though what came after the commit failed
            _stored_anyway(async_to_sync(_send), events)
        raise
    finally:
        _outbox.events = None


async def send_collected(events: list[tuple[str, dict]]) -> None:
    try:
        await _send(events)
    except Exception as problem:
        _not_shown_live(problem)


def _deliver(events: list[tuple[str, dict]]) -> None:
    outbox = getattr(_outbox, "events", None)
    if outbox is not None:
        outbox.extend(events)
    else:
        _stored_anyway(async_to_sync(_send), events)


def _not_shown_live(problem: Exception) -> None:
    log.warning("Stored, but not shown live (%s): others catch up on reconnect", type(problem).__name__)


def _stored_anyway(effect: Callable, *args: object) -> None:
    """Run an after-commit effect; if the broker or cache is gone, what was stored stays stored and
    acknowledged: others get it with the history when their page (or the hub) catches up."""
    try:
        effect(*args)
    except Exception as problem:
        _not_shown_live(problem)


def html_to_room(room: Room, html: str) -> None:
    bump(room)
    _after_commit(room.group_name, {"type": "room.html", "html": html})


def new_message(message: Message) -> None:
    """Rendered once per look however many readers: signed-in readers' copy carries the menu.

    No page-cache bump here: saving the message did it (`_room_saved`), once per post."""
    pk = message.pk
    _all_after_commit(
        [
            # The id lets a socket that is just connecting skip a message its history has.
            (message.room.role_group_name(role), {"type": "room.html", "html": html, "message_id": pk})
            for role, html in fragments.new_message_html(message).items()
        ]
        # The author stops showing as typing, in the same hop to the event loop.
        + [(message.room.group_name, {"type": "room.typing", "stopped": message.author_id})]
        # Room lists count it: numbers only, no HTML (each list socket adds one to its count).
        + [(unread_group(message.room_id), unread_event(message))]
    )


def unread_event(message: Message) -> dict:
    return {
        "type": "unread.message",
        "room_id": message.room_id,
        "author_id": message.author_id,
        "mentions": message.mentioned_ids,
    }


def room_read(room_id: int, user_id: int) -> None:
    """The user read the room: their room list's count for it goes to zero, cached and live."""
    bump_user(user_id)
    _after_commit(reader_group(user_id), {"type": "unread.read", "room_id": room_id})


def level_changed(user_id: int, room_id: int, level: str, control_html: str, from_tab: str = "") -> None:
    """The user chose a notification level for the room (chat/involvement.py): their cached room
    list is stale; every room list of theirs applies it to the counts it keeps and shows the new
    control, and their open pages of that room show the control (rendered once, here). The tab it
    was chosen on (`from`, its socket's id) has the answer to its post and skips the control."""
    bump_user(user_id)
    changed = {"room_id": room_id, "level": level, "html": control_html, "from": from_tab}
    user_group = Room(pk=room_id).user_group_name(user_id)
    _all_after_commit(
        [
            (reader_group(user_id), {"type": "unread.level"} | changed),
            (user_group, {"type": "room.html", "html": control_html, "from": from_tab}),
        ]
    )


def snooze_changed(user_id: int, until: datetime | None, line_html: str) -> None:
    """The user snoozed or resumed (chat/involvement.py): their cached room list is stale, and
    every room list of theirs shows the line (rendered once, here) and, once `until` has passed,
    takes it down by itself (chat/room_list_consumer.py)."""
    bump_user(user_id)
    ends = until.timestamp() if until is not None else None  # seconds since the epoch: any layer carries it
    _after_commit(reader_group(user_id), {"type": "unread.snooze", "html": line_html, "ends": ends})


def live_mode_changed(user_id: int, paused: bool) -> None:
    """The user paused live updates or turned them back on (Settings): every room socket of theirs
    (the account's group: every room, every process) sends its page the history again and the new
    mode, rendered once here. Turned back on, the live region's slots are emptied first, while it
    is still hidden, so the lines of held messages are not read out as it shows again."""
    mode = fragments.live_mode_html(paused)
    if not paused:
        mode = fragments.announcements_emptied_html() + mode
    _after_commit(account_group_name(user_id), {"type": "account.live_mode", "mode": mode})


def message_edited(message: Message) -> None:
    """The new text replaces the old in place, rendered once per role as a new message is."""
    bump(message.room)
    rendered = fragments.edited_message_html(message, *Role)
    _all_after_commit(
        [
            (message.room.role_group_name(role), {"type": "room.html", "html": html})
            for role, html in rendered.items()
        ]
    )


def message_removed(message: Message) -> None:
    html_to_room(message.room, fragments.message_html(message))
    quotes_changed(message.room, message.pk)
    as_it_was = queries.Preceding(message.author_id, message.created_at, None, None)
    next_regrouped(message.room, message.pk, as_it_was)


def message_deleted(room: Room, message_id: int, as_it_was: queries.Preceding | None = None) -> None:
    html_to_room(room, fragments.deleted_message_html(message_id))
    quotes_changed(room, message_id)
    if as_it_was is not None:
        next_regrouped(room, message_id, as_it_was)


def next_regrouped(room: Room, message_id: int, as_it_was: queries.Preceding) -> None:
    """The message after one removed or deleted may have shown as its continuation (no avatar or
    name): redraw it as a page read now shows it, once per role, if that changed."""
    after = queries.message_after(message_id, room.pk)
    if after is None:
        return
    was_continued = fragments.continues(as_it_was, ShownMessage.of(after))
    rendered = fragments.regrouped_message_html(after, was_continued)
    _all_after_commit(
        [(room.role_group_name(role), {"type": "room.html", "html": html}) for role, html in rendered.items()]
    )


def quotes_changed(room: Room, message_id: int) -> None:
    """Replies quote their original as it is now: redraw those quotes on open pages, once for all."""
    replies = queries.replies_to(message_id)
    if replies:
        html_to_room(room, fragments.quotes_html(replies))


def reactions_changed(message: Message) -> None:
    """The counts under a message, rendered once for every reader (no role or viewer in them)."""
    html_to_room(message.room, fragments.reactions_html(message.pk))


def members_event(room: Room) -> list[tuple[str, dict]]:
    """The member list for the room's sockets and its "N online" for room lists, each rendered
    once; chat.hub sends them at most once per room per second."""
    bump(room)  # the room page shows the list, the room list the count
    members = queries.online_members(room)
    group, lists = room.group_name, unread_group(room.pk)
    # The names travel too: each hub shows a socket joining before the next list the last one, with it in.
    names = (members.usernames, members.guests, members.more)
    listed = {"html": fragments.members_list_html(members), "members": names}
    online = {"room_id": room.pk, "html": fragments.room_online_html(room.pk, members.total)}
    return [
        (group, {"type": "room.members", "group": group} | listed),
        (lists, {"type": "unread.online", "group": lists} | online),
    ]


def standing_changed(room: Room, user_id: int) -> None:
    """A user was muted, banned, promoted...: their own sockets re-check and redraw."""
    bump(room)
    _after_commit(room.user_group_name(user_id), {"type": "room.standing"})
    _after_commit(reader_group(user_id), {"type": "unread.refresh"})  # a ban: the room stops counting


def room_changed(room: Room, access_narrowed: bool = False) -> None:
    """Settings changed: redraw the header for all and the form for each role (once per role)."""
    html_to_room(room, fragments.room_header_html(room))
    _after_commit(
        room.group_name,
        {
            "type": "room.form",
            Role.MEMBER: fragments.form_html_for_role(room, Role.MEMBER),
            Role.MODERATOR: fragments.form_html_for_role(room, Role.MODERATOR),
        },
    )
    moderation_panel(room)
    if access_narrowed:
        # Made private: sockets of people who may no longer read it close themselves.
        _after_commit(room.group_name, {"type": "room.access"})
        _after_commit(unread_group(room.pk), {"type": "unread.refresh"})


def moderation_panel(room: Room) -> None:
    bump(room)
    _after_commit(
        room.role_group_name(Role.MODERATOR),
        {"type": "room.html", "html": fragments.moderation_panel_html(room)},
    )


# An account's authority over its open sockets ----------------------------------------------
# Sent to the account's own group (every socket of that user, in every room, on every process),
# from signals, so a sign-out, the admin, a password change form or a shell all take effect live.


def account_ended(user_id: int, notice: str, session_key: str | None = None) -> None:
    """Close the user's sockets with `notice`: those of one session (a sign-out), or all of them."""
    event = _account_ended_event(notice)
    if session_key is not None:
        event["session"] = session_tag(session_key)
    _after_commit(account_group_name(user_id), event)


def _account_ended_event(notice: str) -> dict:
    return {"type": "account.ended", "farewell": fragments.session_ended_html(notice)}


# Staff flag given or taken: every socket of the user re-reads its standing and redraws.
ACCOUNT_STANDING_CHANGED = {"type": "room.standing"}


def authority_event(before: Authority, after: Authority | None) -> dict | None:
    """What the open sockets of an account are sent when its authority went from `before` to
    `after` (None: the account was deleted): closed, redrawn, or nothing (None)."""
    notice = ACCOUNT_DISABLED if after is None else authority_lost(before, after)
    if notice is not None:
        return _account_ended_event(notice)
    if after is not None and before.is_staff != after.is_staff:
        return ACCOUNT_STANDING_CHANGED
    return None


def accounts_changed(known: dict[int, Authority | None]) -> dict[int, tuple[Authority | None, dict | None]]:
    """For chat.hub's heartbeat: the accounts behind a process's open sockets as stored now, each
    with what its sockets are sent, exactly as if the change had been saved with signals. This
    catches changes made without them: a queryset update(), SQL, another service on the database.

    `known` is each account's authority as its sockets last had it (None: not known, e.g. just
    redrawn by a signal). One query for all of them (up to standing.AUTHORITIES_PER_QUERY).
    """
    stored = stored_authorities(known)
    changed: dict[int, tuple[Authority | None, dict | None]] = {}
    for user_id, before in known.items():
        after = stored.get(user_id)
        changed[user_id] = (after, authority_event(before or _taken_as_stored(after), after))
    return changed


def _taken_as_stored(after: Authority | None) -> Authority:
    """An authority not known is taken as stored, but active: a disabled or deleted account still
    loses its sockets."""
    return replace(after, is_active=True) if after is not None else Authority(True, False, "")


def _signed_out(sender: type, request: HttpRequest, user: Account | None, **kwargs: object) -> None:
    # Sent before the session is flushed, so sockets are told which session, not asked to re-check.
    if user is not None and request.session.session_key:
        account_ended(user.pk, SIGNED_OUT, session_key=request.session.session_key)


def _user_saving(
    sender: type, instance: Account, raw: bool = False, update_fields: frozenset | None = None, **kw: object
) -> None:
    """Remember the authority as stored, to compare after the save (one query; not on sign-in)."""
    untouched = update_fields is not None and not set(update_fields) & set(AUTHORITY_FIELDS)
    if raw or instance.pk is None or untouched:
        return
    stored = Account.objects.filter(pk=instance.pk).values_list(*AUTHORITY_FIELDS).first()
    if stored is not None:
        instance._authority_before = Authority(*stored)  # type: ignore[attr-defined]


def _user_saved_authority(sender: type, instance: Account, **kwargs: object) -> None:
    before: Authority | None = instance.__dict__.pop("_authority_before", None)
    if before is None:
        return
    event = authority_event(before, Authority.of(instance))
    if event is not None:
        _after_commit(account_group_name(instance.pk), event)


user_logged_out.connect(_signed_out, dispatch_uid="sockets-signed-out")
pre_save.connect(_user_saving, sender=get_user_model(), dispatch_uid="sockets-user-saving")
post_save.connect(_user_saved_authority, sender=get_user_model(), dispatch_uid="sockets-user-saved")
