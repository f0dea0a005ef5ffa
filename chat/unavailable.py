"""503 with a plain sentence while the database (or the cache) is unreachable, instead of a 500.

Django middleware: any view that fails on a lost database connection answers 503 with
`Retry-After`. Nothing needs restarting afterwards: Django drops a connection that failed
(`close_old_connections` at the start of every request and socket frame) and opens a new one.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DATABASE_DOWN = "Parley can't reach its database right now. Try again in a moment.\n"
CACHE_DOWN = "Parley can't reach its cache right now. Try again in a moment.\n"


class ServiceUnavailable:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            sentence = DATABASE_DOWN
        elif isinstance(exception, RedisError):
            sentence = CACHE_DOWN
        else:
            return None
        log.warning("503 for %s: %s", request.path, type(exception).__name__)
        return unavailable(sentence)


def unavailable(sentence: str) -> HttpResponse:
    response = HttpResponse(sentence, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = "5"
    response["Cache-Control"] = "no-store"
    return response
