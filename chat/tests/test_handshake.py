"""autobahn's debug lines about a new connection read as before, though their text is made only
when written (chat/handshake.py): an operator who turns autobahn's debug log on loses nothing."""

import pprint

from autobahn.websocket import protocol
from twisted.logger import formatEvent

from chat.handshake import format_autobahn_debug_lines_lazily

OPTIONS = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("autoPingInterval", 0, "Server")]


def test_a_connections_options_read_the_same_in_autobahns_debug_line() -> None:
    format_autobahn_debug_lines_lazily()
    # The event autobahn's debug line makes (through txaio), formatted as Twisted's log observers do.
    line = formatEvent({"log_format": "\n{attrs}", "attrs": protocol.pformat(OPTIONS)})
    assert line == "\n" + pprint.pformat(OPTIONS)
    assert str(protocol.pformat(OPTIONS)) == pprint.pformat(OPTIONS)


def test_handshake_timings_still_print_as_text() -> None:
    format_autobahn_debug_lines_lazily()
    timings = protocol.Timings()
    timings.track("onOpen")
    assert str(timings).startswith("{'onOpen': ")
