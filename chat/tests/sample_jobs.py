"""Jobs for chat/tests/test_worker.py: each writes what happened to it to a file the test reads, so a
real worker process can show the test each attempt and the giving up."""

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
