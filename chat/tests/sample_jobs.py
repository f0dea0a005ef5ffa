"""Jobs for chat/tests/test_worker.py: each writes what happened to it to a file the test reads, so a
real worker process can show the test each attempt and the giving up."""

import time
from pathlib import Path

from chat import jobs


def note_giving_up(reason: str, record: str) -> None:
    with Path(record).open("a") as file:
        file.write(f"gave up: {reason}\n")


@jobs.job(attempts=3, on_give_up=note_giving_up)
def always_later(record: str) -> None:
    with Path(record).open("a") as file:
        file.write(f"attempt {jobs.attempt()}\n")
    raise jobs.RetryLater("the receiver answered 503")


@jobs.job(attempts=3)
def slow(record: str, seconds: float) -> None:
    """Long enough for a test to kill its worker in the middle."""
    with Path(record).open("a") as file:
        file.write(f"started attempt {jobs.attempt()}\n")
    time.sleep(seconds)
    with Path(record).open("a") as file:
        file.write(f"finished attempt {jobs.attempt()}\n")
