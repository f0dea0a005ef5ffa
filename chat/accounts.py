"""Signing in and signing up: how many tries an address and an account get (and how many links
confirming an email address an account and an address get).

Counted in Django's cache (Redis with REDIS_URL, so every process shares the counts; local memory
otherwise), in fixed windows that start with the first attempt counted.

Failed logins are limited per (account, address) pair and per address, never per account alone:
a guesser locks the account only from their own address, and the real user still signs in from
theirs. An address that guesses at many accounts meets the per-address limit. Each attempt is
counted before the password is checked, so parallel guesses cannot all slip in under the limit;
a successful login takes its count back.

If the cache can't be reached, logins and signups are refused (fail closed): without counts,
guesses would be unlimited.
"""

import contextlib
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

log = logging.getLogger(__name__)


class Refused(Exception):
    """Not now: `sentence` says why, `status` is the HTTP status, `retry_after` is in seconds."""

    def __init__(self, sentence: str, status: int, retry_after: int) -> None:
        super().__init__(sentence)
        self.sentence, self.status, self.retry_after = sentence, status, retry_after


STORE_DOWN = (
    "Signing in and signing up are paused for a moment because we can't count attempts right now. "
    "Please try again in a minute."
)


@dataclass(frozen=True)
class Window:
    """A counter of `limit` per `seconds`, under `key` in the cache."""

    key: str
    limit: int
    seconds: float

    def take(self) -> float:
        """Count one attempt; the seconds until the window ends if this one is over the limit, else 0."""
        now = time.time()
        timeout = int(self.seconds) + 1
        cache.add(self.key, 0, timeout=timeout)
        cache.add(f"{self.key}:start", now, timeout=timeout)
        try:
            count = cache.incr(self.key)
        except ValueError:  # the window ran out between the two calls: this attempt starts the next
            cache.set(self.key, 1, timeout=timeout)
            cache.set(f"{self.key}:start", now, timeout=timeout)
            count = 1
        if count <= self.limit:
            return 0
        start = cache.get(f"{self.key}:start", now)
        return max(1.0, start + self.seconds - now)

    def give_back(self) -> None:
        with contextlib.suppress(ValueError):  # the window has ended meanwhile: nothing to give back
            cache.decr(self.key)

    def reset(self) -> None:
        cache.delete_many([self.key, f"{self.key}:start"])


def client_address(request: HttpRequest) -> str:
    """Who is asking, as far as limits go: REMOTE_ADDR, or the trusted proxy's header if one is set.

    An IPv6 address counts as its /64, which one machine usually has whole.
    """
    forwarded = request.headers.get(settings.CLIENT_IP_HEADER, "") if settings.CLIENT_IP_HEADER else ""
    return _address(request.META.get("REMOTE_ADDR", ""), forwarded)


def scope_address(scope: Mapping[str, Any]) -> str:
    """client_address for an ASGI scope (a websocket's), read from the same places."""
    client = scope.get("client") or ("",)
    forwarded = ""
    if settings.CLIENT_IP_HEADER:
        wanted = settings.CLIENT_IP_HEADER.lower().encode("latin-1")
        forwarded = next((value.decode("latin-1") for name, value in scope["headers"] if name == wanted), "")
    return _address(str(client[0]), forwarded)


def _address(raw: str, forwarded: str) -> str:
    if forwarded:
        raw = forwarded.split(",")[-1].strip()  # the entry our own proxy added
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw or "unknown"
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _too_many(wait: float) -> Refused:
    minutes = math.ceil(wait / 60)
    return Refused(
        f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        status=429,
        retry_after=math.ceil(wait),
    )


@dataclass(frozen=True)
class LoginAttempt:
    """One login try, already counted: call `succeeded()` when the password was right."""

    pair: Window
    address: Window

    def succeeded(self) -> None:
        """The real user is in: forget their failures here, and don't count this try for the address."""
        try:
            self.pair.reset()
            self.address.give_back()
        except Exception:  # the login stands; the counts only err on the strict side
            log.exception("could not take back a successful login's count")


def start_login(request: HttpRequest, username: str) -> LoginAttempt:
    """Count a login try before its password is checked; Refused if over a limit or uncountable."""
    address = client_address(request)
    window = settings.CHAT_LOGIN_WINDOW_SECONDS
    attempt = LoginAttempt(
        pair=Window(
            f"limits:login:pair:{_key(address, username.strip().casefold())}",
            settings.CHAT_LOGIN_FAILURES_PER_ACCOUNT,
            window,
        ),
        address=Window(
            f"limits:login:address:{_key(address)}", settings.CHAT_LOGIN_FAILURES_PER_ADDRESS, window
        ),
    )
    wait = max(_take(attempt.address), _take(attempt.pair))
    if wait:
        raise _too_many(wait)
    return attempt


_LOGGED_IN = "_parley_logged_in"


@receiver(user_logged_in)
def _note_login(sender: type, request: HttpRequest | None, **kwargs: object) -> None:
    if request is not None:
        setattr(request, _LOGGED_IN, True)


@receiver(user_logged_in, dispatch_uid="no-bot-sessions")
def _refuse_bot_sessions(sender: type, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    """A bot's account never signs in, whatever its password: whatever signs it in (the login
    form, the admin's, a password reset's login, code calling login(), a test's force_login),
    its session is emptied before it is ever saved, and the request is refused (403). So no
    session, page or socket ever acts as a bot. A login costs one more query; requests nothing."""
    if hasattr(user, "bot"):
        if request is not None and hasattr(request, "session"):
            request.session.flush()
        raise PermissionDenied("bots do not sign in")


def logged_in_by(request: HttpRequest) -> bool:
    """Whether this request signed someone in (whichever login view it went through)."""
    return getattr(request, _LOGGED_IN, False)


def start_signup(request: HttpRequest) -> None:
    """Count an account about to be created from this address; Refused if over the limit."""
    address = client_address(request)
    wait = _take(
        Window(
            f"limits:signup:{_key(address)}",
            settings.CHAT_SIGNUPS_PER_ADDRESS,
            settings.CHAT_SIGNUP_WINDOW_SECONDS,
        )
    )
    if wait:
        raise _too_many(wait)


def _take(window: Window) -> float:
    try:
        return window.take()
    except Exception:  # whatever the cache backend raises when its server is away
        log.exception("the attempt counter is unreachable; refusing logins and signups")
        raise Refused(STORE_DOWN, status=503, retry_after=60) from None


CONFIRMATION_STORE_DOWN = "We can't send a link right now. Please try again in a minute."


def start_confirmation_email(user_id: int, address: str) -> None:
    """Count a confirmation email about to go to `address`; Refused if this account asked too
    recently, or if the address has had its day's links from all accounts together (so accounts
    made for the purpose can't flood a stranger's mailbox either)."""
    account = Window(f"limits:confirm:account:{user_id}", 1, settings.CHAT_CONFIRMATION_RESEND_SECONDS)
    mailbox = Window(
        f"limits:confirm:address:{_key(address.strip().casefold())}",
        settings.CHAT_CONFIRMATION_EMAILS_PER_ADDRESS,
        86400,
    )
    try:
        too_soon = account.take()
        over_the_day = 0.0 if too_soon else mailbox.take()
    except Exception:  # whatever the cache backend raises when its server is away: no count, no email
        log.warning("Confirmation email not sent: the cache can't be reached to count it")
        raise Refused(CONFIRMATION_STORE_DOWN, status=503, retry_after=60) from None
    if too_soon:
        raise Refused(
            "We sent a link moments ago: check your inbox and spam folder, "
            f"or ask again in {math.ceil(too_soon)} seconds.",
            status=429,
            retry_after=math.ceil(too_soon),
        )
    if over_the_day:
        raise Refused(
            "This address has had all the links it gets in a day. Please try again tomorrow.",
            status=429,
            retry_after=math.ceil(over_the_day),
        )
