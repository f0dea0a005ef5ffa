"""A websocket's opening in autobahn (inside daphne), without a dropped debug line's cost.

For every new connection, autobahn's WebSocketProtocol._connectionMade pretty-prints its 30-odd
options for a debug line: `self.log.debug("\\n{attrs}", attrs=pformat(options))`. The argument is
computed before the logger drops the line (autobahn logs at "info" unless told otherwise), so every
handshake paid for a pformat nobody reads: 15% of daphne's event loop while 1,000 sockets joined
(py-spy). It checks nothing; daphne and the tutorial's consumer pay it as well.

`format_autobahn_debug_lines_lazily()` hands that module a pformat whose text is made only if the
line is written: with autobahn's debug logging on, the line reads as before. The module's one other
use that must return a str, Timings.__str__, keeps the real one.
"""

import pprint
from typing import Any

from autobahn.websocket import protocol


class _PrettyWhenFormatted:
    """pprint.pformat(value), computed when a log line formats it ("{attrs}" or str())."""

    __slots__ = ("value",)

    def __init__(self, value: object, *_options: Any, **_keywords: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _timings_text(timings: protocol.Timings) -> str:
    return pprint.pformat(timings._timings)


def format_autobahn_debug_lines_lazily() -> None:
    """Once per process, before the server accepts connections (site_config/asgi.py)."""
    if protocol.pformat is not pprint.pformat:
        return  # done already
    protocol.Timings.__str__ = _timings_text  # type: ignore[method-assign]
    protocol.pformat = _PrettyWhenFormatted  # type: ignore[assignment]
