"""Log records one line each: what a log shipper reads as one event.

Imported by the LOGGING setting, before Django is set up: nothing here may import Django models.
"""

import logging


class OneLine(logging.Formatter):
    """Any traceback stays, but on the same line as its message (newlines escaped as \\n)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


class ExpectedExceptions(logging.Filter):
    """Planned ways out are one line, no traceback:

    - an exception with `log_traceback = False` (e.g. chat.consumers.TryAgainLater, raised so that
      daphne closes the socket with 1011): its message, as a warning;
    - a refusal Django answered with a 4xx (PermissionDenied's 403, BadRequest's 400, a
      SuspiciousOperation): Django's own line ("Forbidden (Permission denied): /path"), at its
      level, with the exception's class and message at the end instead of its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exception = record.exc_info[1] if record.exc_info else None
        if exception is None:
            return True
        if getattr(exception, "log_traceback", True) is False:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif _answered_as_refusal(record):
            record.exc_info, record.exc_text = None, None
            message = record.getMessage()
            record.msg, record.args = f"{message} ({_named(exception, message)})", None
        return True


def _answered_as_refusal(record: logging.LogRecord) -> bool:
    """Django logs the response of a request it answered with the status (django.utils.log.log_response)."""
    status = getattr(record, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500


def _named(exception: BaseException, message: str) -> str:
    """The exception's class, and its text unless the message already says it."""
    text = str(exception).replace("\n", " ")
    return f"{type(exception).__name__}: {text}" if text and text not in message else type(exception).__name__
