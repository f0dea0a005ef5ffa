"""Whole rendered pages, kept per process and served again while nothing they show has changed.

A page is rendered once per (room, role, standing) [room list: per user, with their unread
mentions, under a version of their own; a page of history (`?before=`, `?after=`, the links
"Load older" and "Load newer" followed without script) also per where it starts; the fragments
htmx fetches for those links per (room, role, where)], with placeholders for
what differs per request: the CSRF token, the CSP nonce, the viewer's id and name. Each request
splices its own values in. An entry is served only while the versions it was rendered under
(chat/broadcast.py, bumped after every commit that changes what a page shows) are unchanged, and
for at most CHAT_PAGE_CACHE_SECONDS.

Authorisation is never cached: every request, hit or miss, reads the session, the user, the
room and the viewer's standing afresh. A hit is served by `FastPages` in front of Django's
middleware (which costs more than the rest of a hit); anything unusual (no valid session, a
room the viewer may not read, a query string other than one message id (`?before=N`,
`?after=N`; "Load newer"'s `?after=N&until=M`), a host not allowed, plain HTTP under
SECURE_SSL_REDIRECT, a notice waiting in the messages cookie, no cached entry) falls through to
Django, whose view renders and stores.
A HEAD is answered as its GET, headers only (uptime checkers use it).

A hit stands in for Django's middleware, so it is served only while MIDDLEWARE is the list it
was written against (MIRRORED_MIDDLEWARE): a middleware added later would not apply to hits, so
until this module learns it every page is left to Django (a warning, and `manage.py check` says so).
"""

import logging
import re
import secrets
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from types import SimpleNamespace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.cookie import CookieStorage
from django.core import checks
from django.core.handlers.asgi import ASGIRequest
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csp import ContentSecurityPolicyMiddleware, get_nonce
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.middleware.gzip import GZipMiddleware
from django.middleware.gzip import re_accepts_gzip as _ACCEPTS_GZIP
from django.middleware.security import SecurityMiddleware
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.crypto import constant_time_compare
from django.utils.html import escape
from redis.exceptions import RedisError

from chat import broadcast
from chat.models import Room
from chat.standing import DATABASE_SESSIONS, Account, Standing, User, room_and_standing, session_facts

log = logging.getLogger(__name__)

# Per process and unguessable, so no text a user types can be mistaken for one.
_MARK = secrets.token_hex(12)
CSRF = f"csrf{_MARK}"
NONCE = f"nonce{_MARK}"
USER_ID = f"uid{_MARK}"
USERNAME = f"uname{_MARK}"
_SLOTS = re.compile(f"({CSRF}|{NONCE}|{USER_ID}|{USERNAME})")

# A room page keeps ~40 KB (its text and its compressed parts), a room list ~3 KB.
MAX_ENTRIES = 1_000


@dataclass(frozen=True)
class Entry:
    versions: tuple
    expires: float
    # The slot names, in the order they occur between the literal parts.
    order: tuple[str, ...]
    slots: frozenset[str]
    # The literal parts encoded, and each compressed on its own (raw deflate, ending on a byte
    # boundary with a sync flush), so that a hit compresses only its few values.
    encoded: tuple[bytes, ...]
    deflated: tuple[bytes, ...]

    @classmethod
    def of(cls, versions: tuple, expires: float, html: str) -> "Entry":
        parts = _SLOTS.split(html)  # literal text at even indexes, slot names at odd ones
        encoded = tuple(part.encode() for part in parts[0::2])
        order = tuple(parts[1::2])
        return cls(versions, expires, order, frozenset(order), encoded, tuple(map(_deflate, encoded)))

    def plain(self, values: dict[str, str]) -> bytes:
        filled = [values[slot].encode() for slot in self.order]
        joined: list[bytes] = [self.encoded[0]]
        for value, literal in zip(filled, self.encoded[1:], strict=True):
            joined += (value, literal)
        return b"".join(joined)


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


_DEFLATE_END = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)


def gzipped(entry: Entry, values: dict[str, str]) -> tuple[bytes, bytes]:
    """The page spliced, plain and as gzip (RFC 1952) made of the entry's precompressed parts.

    The header carries a random-length file name, as Django's GZipMiddleware does against BREACH;
    the CSRF token in the page is masked afresh for every response as well.
    """
    plain = entry.plain(values)
    deflated: list[bytes] = [entry.deflated[0]]
    for slot, literal_deflated in zip(entry.order, entry.deflated[1:], strict=True):
        deflated += (_deflate(values[slot].encode()), literal_deflated)
    name = b"a" * secrets.randbelow(GZipMiddleware.max_random_bytes) + b"\x00"
    header = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff" + name
    trailer = struct.pack("<II", zlib.crc32(plain), len(plain) & 0xFFFFFFFF)
    return plain, header + b"".join(deflated) + _DEFLATE_END + trailer


_entries: "OrderedDict[tuple, Entry]" = OrderedDict()


def clear() -> None:
    _entries.clear()


# Keys and versions --------------------------------------------------------------------------


def room_key(room: Room, viewer: Standing, user: User | None = None) -> tuple:
    """The room page depends on the room and the viewer's role and mute (the form), nothing else;
    a direct message's also on who views it (it names the other person), one of its two people."""
    key = ("room", room.pk, viewer.role, viewer.muted_until if viewer.is_muted else None)
    return (*key, user and user.pk, viewer.closed_because) if room.is_direct else key


def room_versions(room: Room) -> tuple:
    return broadcast.versions(broadcast.room_version_key(room.pk), broadcast.ALL_PAGES)


def history_page_key(
    room: Room, viewer: Standing, user: User | None, before: int | None, after: int | None
) -> tuple:
    """A page of history of its own (the room page's ?before= or ?after=): the room page's key,
    plus where it starts."""
    return (*room_key(room, viewer, user), "history", before, after)


def older_key(room: Room, viewer: Standing, before: int) -> tuple:
    """The messages "Load older" fetches depend on the room's messages and the viewer's role only
    (chat.fragments.older_messages_html), never on who views them."""
    return ("older", room.pk, viewer.role, before)


def newer_key(room: Room, viewer: Standing, after: int, until: int) -> tuple:
    """The same for "Load newer" (chat.fragments.newer_messages_html)."""
    return ("newer", room.pk, viewer.role, after, until)


def list_key(user: User) -> tuple:
    """The room list shows the rooms this user may open and their own proposals."""
    return ("list", user.pk, user.is_staff) if user.is_authenticated else ("list", None, False)


def list_versions(user: User) -> tuple:
    """The list, plus the user's own version: their unread mention counts are in it."""
    if not user.is_authenticated:
        return broadcast.versions(broadcast.ROOM_LIST, broadcast.ALL_PAGES)
    return broadcast.versions(broadcast.ROOM_LIST, broadcast.ALL_PAGES, broadcast.user_version_key(user.pk))


# Entries ------------------------------------------------------------------------------------


def lookup(key: tuple, versions: tuple) -> Entry | None:
    entry = _entries.get(key)
    if entry is None or entry.versions != versions or entry.expires <= time.monotonic():
        return None
    _entries.move_to_end(key)
    return entry


def store(key: tuple, versions: tuple, html: str, valid_until: datetime | None = None) -> Entry:
    """Keep a page rendered with `placeholders()` under the versions read before rendering it."""
    max_age = settings.CHAT_PAGE_CACHE_SECONDS
    if valid_until is not None:
        max_age = min(max_age, (valid_until - timezone.now()).total_seconds())
    entry = Entry.of(versions, time.monotonic() + max_age, html)
    if max_age > 0:
        _entries[key] = entry
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return entry


def placeholders(user: User) -> dict:
    """Context that makes a template render the per-request values as placeholders."""
    context: dict[str, Any] = {"csrf_token": CSRF, "csp_nonce": NONCE}
    if user.is_authenticated:
        context["user"] = SimpleNamespace(is_authenticated=True, pk=USER_ID, id=USER_ID, username=USERNAME)
    return context


def splice(entry: Entry, values: dict[str, Callable[[], str]]) -> bytes:
    """The page with this request's values; each is computed only if the page has its slot."""
    return entry.plain({slot: values[slot]() for slot in entry.slots})


def request_values(request: HttpRequest, user: User) -> dict[str, Callable[[], str]]:
    """What `{% csrf_token %}`, the CSP nonce and `user` would have rendered for this request."""
    return {
        CSRF: lambda: get_token(request),
        NONCE: lambda: str(get_nonce(request)),
        USER_ID: lambda: str(user.pk),
        USERNAME: lambda: escape(user.get_username()),
    }


def respond(entry: Entry, request: HttpRequest, user: User) -> HttpResponse:
    return HttpResponse(splice(entry, request_values(request, user)))


# Serving hits before Django's middleware ----------------------------------------------------


_ROOM_PATH = re.compile(r"^/rooms/(?P<slug>[-a-zA-Z0-9_]+)/$")
_NOT_ROOMS = {"propose"}
_OLDER_PATH = re.compile(r"^/rooms/(?P<slug>[-a-zA-Z0-9_]+)/messages/$")
_NEWER_PATH = re.compile(r"^/rooms/(?P<slug>[-a-zA-Z0-9_]+)/messages/newer/$")
# The query strings the links of a page send, exactly; any other form of them goes to Django.
_ID = rb"(?P<%s>[1-9][0-9]{0,17})"
_PAGE_QUERY = re.compile(rb"^(?P<name>before|after)=" + _ID % b"id" + rb"$")
_OLDER_QUERY = re.compile(rb"^before=" + _ID % b"before" + rb"$")
_NEWER_QUERY = re.compile(rb"^after=" + _ID % b"after" + rb"&until=" + _ID % b"until" + rb"$")


@dataclass(frozen=True)
class Asked:
    """A page FastPages may serve: the room list (no slug), a room page, a page of its history
    (`before` or `after`), or the messages htmx fetches for "Load older" (`fragment`, `before`)
    or "Load newer" (`fragment`, `after` and `until`)."""

    slug: str | None = None
    before: int | None = None
    after: int | None = None
    until: int | None = None
    fragment: bool = False

    def key(self, room: Room, viewer: Standing, user: User) -> tuple:
        if self.fragment and self.until is not None and self.after is not None:
            return newer_key(room, viewer, self.after, self.until)
        if self.fragment and self.before is not None:
            return older_key(room, viewer, self.before)
        if self.before is None and self.after is None:
            return room_key(room, viewer, user)
        return history_page_key(room, viewer, user, self.before, self.after)


def asked(path: str, query: bytes) -> Asked | None:
    """The page a GET asks for, if it is one FastPages serves."""
    if path == "/":
        return None if query else Asked()
    if match := _ROOM_PATH.match(path):
        if match["slug"] in _NOT_ROOMS:
            return None
        if not query:
            return Asked(match["slug"])
        page = _PAGE_QUERY.match(query)
        if page is None:
            return None
        where = int(page["id"])
        return (
            Asked(match["slug"], before=where)
            if page["name"] == b"before"
            else Asked(match["slug"], after=where)
        )
    if (match := _OLDER_PATH.match(path)) and (older := _OLDER_QUERY.match(query)):
        return Asked(match["slug"], before=int(older["before"]), fragment=True)
    if (match := _NEWER_PATH.match(path)) and (newer := _NEWER_QUERY.match(query)):
        return Asked(match["slug"], after=int(newer["after"]), until=int(newer["until"]), fragment=True)
    return None


_USER_SQL = "SELECT id, password, username, is_active, is_staff, is_superuser FROM {table} WHERE id = %s"
_SESSION_SQL = "SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s"
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


# The MIDDLEWARE setting a hit stands in for. Each entry is either applied to a hit by
# FastPages.finishers or has nothing to add to it: SecurityMiddleware, GZip, CSP, CSRF and
# X-Frame-Options are applied; the session and auth middleware are done by _session_user (plus
# Vary: Cookie); ServiceUnavailable answers 503 for errors FastPages hands to Django; WhiteNoise,
# strict_upload_names, Common and Messages change nothing on these pages. Change both together.
MIRRORED_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "chat.unavailable.ServiceUnavailable",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "chat.uploads.strict_upload_names",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
MIDDLEWARE_DIFFERS = (
    "MIDDLEWARE differs from what the page cache's hits stand in for (chat.pagecache.MIRRORED_MIDDLEWARE): "
    "every page is rendered by Django until that list and FastPages.finishers are brought up to date"
)


def mirrors_middleware(middleware: list[str] | tuple[str, ...]) -> bool:
    return tuple(middleware) == MIRRORED_MIDDLEWARE


def check_middleware(**kwargs: object) -> list[checks.CheckMessage]:
    """`manage.py check` (and every server start) says when hits would be left to Django."""
    if mirrors_middleware(settings.MIDDLEWARE):
        return []
    return [checks.Warning(MIDDLEWARE_DIFFERS, id="chat.W001")]


def _passes(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middleware's process_request/process_response are used")


def _middleware(cls: type) -> Any:
    return cls(_passes)


def _drop_broken_connections() -> None:
    """What Django does as each request starts and ends (broken or too old connections go), but
    never inside a transaction: a request is never in one, a test always is (its whole body)."""
    if not connection.in_atomic_block:
        close_old_connections()


class FastPages:
    """ASGI middleware: serves the room page and the room list from the cache when it can.

    It does for a hit what Django's middleware would (host check, session, user with its
    session hash, CSRF cookie, CSP nonce, security headers, gzip), using Django's own
    middleware for the response headers, and hands everything else to Django unchanged.
    """

    def __init__(self, app: Callable) -> None:
        self.app = app
        # The MIDDLEWARE list last compared with MIRRORED_MIDDLEWARE (settings may be overridden
        # at run time, e.g. in tests), and whether it matched.
        self.middleware_seen: object = None
        self.middleware_mirrored = False
        self.enabled = (
            settings.SESSION_ENGINE == DATABASE_SESSIONS
            and not settings.SESSION_SAVE_EVERY_REQUEST
            and not settings.CSRF_USE_SESSIONS
            and _MODEL_BACKEND in settings.AUTHENTICATION_BACKENDS
        )
        self.csrf = CsrfViewMiddleware(_passes)
        self.csp = ContentSecurityPolicyMiddleware(_passes)
        # process_response of the middleware a page passes through, innermost first.
        self.finishers = [
            _middleware(XFrameOptionsMiddleware).process_response,
            _middleware(CsrfViewMiddleware).process_response,
            _middleware(ContentSecurityPolicyMiddleware).process_response,
            _patch_vary_cookie,
            _vary_encoding,  # GZipMiddleware leaves a response it finds compressed as it is
            _middleware(GZipMiddleware).process_response,
            _middleware(SecurityMiddleware).process_response,
        ]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if (
            self.enabled
            and scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and asked(scope["path"], scope.get("query_string", b"")) is not None
        ):
            response = await sync_to_async(self.serve, thread_sensitive=True)(scope)
            if response is not None:
                await _send(response, send, with_body=scope["method"] != "HEAD")
                return
        await self.app(scope, receive, send)

    def _mirrors_middleware(self) -> bool:
        """Is MIDDLEWARE what a hit stands in for? Compared once per list, warned once per list."""
        middleware = settings.MIDDLEWARE
        if middleware is not self.middleware_seen:
            self.middleware_seen = middleware
            self.middleware_mirrored = mirrors_middleware(middleware)
            if not self.middleware_mirrored:
                log.warning(MIDDLEWARE_DIFFERS)
        return self.middleware_mirrored

    def serve(self, scope: dict) -> HttpResponse | None:
        if not self._mirrors_middleware():
            return None
        _drop_broken_connections()
        try:
            return self._serve(scope)
        except (OperationalError, InterfaceError, RedisError):
            return None  # Django answers, with a 503 (chat.unavailable)
        finally:
            _drop_broken_connections()

    def _serve(self, scope: dict) -> HttpResponse | None:
        request = ASGIRequest(scope, BytesIO())
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return None
        if CookieStorage.cookie_name in request.COOKIES:
            return None  # a notice to show once, left by a form posted without script (chat.views.room_act)
        try:
            request.get_host()
        except Exception:  # DisallowedHost and friends: Django answers those
            return None
        page = asked(request.path, scope.get("query_string", b""))
        user = _session_user(request)
        if page is None or user is None:
            return None
        if page.slug is not None:
            found = room_and_standing(page.slug, user)
            if found is None or not found[1].can_read:
                return None  # 404 or 403: Django says why
            entry = lookup(page.key(*found, user), room_versions(found[0]))
        else:
            entry = lookup(list_key(user), list_versions(user))
        if entry is None:
            return None
        request.user = user
        self.csrf.process_request(request)  # reads the CSRF cookie into META
        self.csp.process_request(request)
        values = request_values(request, user)
        plain, compressed = gzipped(entry, {slot: values[slot]() for slot in entry.slots})
        if _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
            response = HttpResponse(compressed)
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = HttpResponse(plain)
        for finish in self.finishers:
            response = finish(request, response)
        if not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response


def _vary_encoding(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if len(response.content) >= 200:
        patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _patch_vary_cookie(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """What SessionMiddleware adds for a page that read the session."""
    patch_vary_headers(response, ("Cookie",))
    return response


def _session_user(request: HttpRequest) -> User | None:
    """The signed-in user as Django's session and auth middleware would find them, or a visitor
    if there is no session cookie; None for anything else (Django handles it)."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key is None:
        return AnonymousUser()
    with connection.cursor() as cursor:
        cursor.execute(
            _SESSION_SQL.format(table=connection.ops.quote_name("django_session")),
            [session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        stored = session_facts(row[0])
        if stored.backend != _MODEL_BACKEND or stored.user_id is None:
            return None
        cursor.execute(_USER_SQL.format(table=Account._meta.db_table), [stored.user_id])
        found = cursor.fetchone()
    if found is None:
        return None
    user = Account(
        id=found[0],
        password=found[1],
        username=found[2],
        is_active=bool(found[3]),
        is_staff=bool(found[4]),
        is_superuser=bool(found[5]),
    )
    verified = constant_time_compare(stored.auth_hash, user.get_session_auth_hash())
    if not user.is_active or not verified:
        return None
    return user


async def _send(response: HttpResponse, send: Callable, with_body: bool = True) -> None:
    """Send a hit; a HEAD gets the same headers (Content-Length included) and no body."""
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    cookies = response.cookies.values()
    headers += [(b"Set-Cookie", cookie.OutputString().encode("ascii")) for cookie in cookies]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content if with_body else b""})
