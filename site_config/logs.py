"""Log records one line each: what a log shipper reads as one event.

Imported by the LOGGING setting, before Django is set up: nothing here may import Django models.
"""

import logging


class OneLine(logging.Formatter):
    """Any traceback stays, but on the same line as its message (newlines escaped as \\n)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


class ExpectedExceptions(logging.Filter):
    """An exception with `log_traceback = False` is a planned way out (e.g. chat.consumers.TryAgainLater,
    raised so that daphne closes the socket with 1011): log its message as a warning, no traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exception = record.exc_info[1] if record.exc_info else None
        if exception is not None and getattr(exception, "log_traceback", True) is False:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
