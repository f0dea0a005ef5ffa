"""Background work that survives a restart: Django's tasks (`django.tasks`) kept in django-tasks-db's
table and run by `manage.py db_worker` (Parley's, chat/management/commands/db_worker.py).

What django-tasks-db 0.13.0 does by itself (read in its source): a worker takes the ready task of the
highest priority, oldest first, in one transaction (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL,
an exclusive transaction on SQLite), marks it RUNNING, adds its own id to `worker_ids` and commits;
then it runs the task. Any exception marks the task FAILED. There are no retries, and a task whose
worker dies while running it (kill -9, a crash, the machine gone) stays RUNNING for ever.

What Parley adds, for tasks made with `job()`:

- `RetryLater`, raised by a job's body: the task goes back in the queue and runs again after a
  backoff (CHAT_TASK_BACKOFF_SECONDS, doubled at each attempt, at most CHAT_TASK_BACKOFF_MAX_SECONDS)
  until its attempts are spent; then it is marked FAILED and the job's `on_give_up` is called. Any
  other exception is a bug: FAILED at once, `on_give_up` called, the traceback logged.
- Recovery of lost tasks: a task still RUNNING CHAT_TASK_STALE_SECONDS after a worker took it lost
  its worker. Every worker looks for such tasks every CHAT_TASK_SWEEP_SECONDS and queues them again,
  or marks them FAILED once their attempts are spent. A timeout rather than a heartbeat: no table of
  workers to keep, and it works across machines; the price is that every job must finish well within
  it (mail and webhooks time out after seconds) and that a lost task waits that long to run again.
- `attempt()`: which attempt this is. Every claim counts (`len(worker_ids)`), a killed one too.

Enqueue with `enqueue_after_commit`: a rolled-back transaction enqueues nothing.

Exactly once: a job sends at most once per attempt and is run again only when an attempt failed
(RetryLater) or its worker died. A worker killed after the receiver took the email or the request but
before the task's row says so would send it again on the next attempt: the receiver can tell by an id
that stays the same across attempts (webhooks' X-Parley-Delivery).
"""

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.tasks import Task, TaskResultStatus, task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, retry

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5


class RetryLater(Exception):
    """Raised by a job's body when this attempt failed for a reason that may pass (a timeout, a 5xx,
    a mail server away): the job runs again after the backoff, or after `after_seconds` if given,
    while it has attempts left. `reason` is what staff see in the task's row and the log."""

    def __init__(self, reason: str, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_seconds = after_seconds


class WorkerLost(Exception):
    """What a task's row records when the worker running it stopped before it finished."""


@dataclass(frozen=True)
class Policy:
    """How often a job is tried, and what is called when it is given up (with a sentence saying why,
    then the job's own arguments)."""

    attempts: int = 1
    on_give_up: Callable[..., None] | None = None


_policies: dict[str, Policy] = {}  # by the task's module path, as its row names it
_attempt: ContextVar[int] = ContextVar("job_attempt", default=1)
_in_worker: ContextVar[bool] = ContextVar("job_in_worker", default=False)


def job[**P, R](
    *, attempts: int = DEFAULT_ATTEMPTS, on_give_up: Callable[..., None] | None = None, **task_options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """`@job(attempts=5, on_give_up=...)`: a `django.tasks.task` (with `task_options`: priority,
    queue_name...) that may raise RetryLater. `on_give_up(reason, *args, **kwargs)` runs in the worker
    once the job failed for good, e.g. to mark a delivery failed where staff see it."""

    def decorate(function: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(function)
        def body(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if not _in_worker.get():  # the immediate backend: nothing will try it again
                    _give_up(_policies[made.module_path], _describe(error), args, kwargs)
                raise

        made: Task[P, R] = task(**task_options)(body)
        _policies[made.module_path] = Policy(attempts=attempts, on_give_up=on_give_up)
        return made

    return decorate


def enqueue_after_commit[**P, R](job_task: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> None:
    """Enqueue once the current transaction commits (at once outside one); a rollback enqueues nothing.
    If the enqueue itself fails (the database gone just then) it is logged, and the commit stands."""
    transaction.on_commit(functools.partial(job_task.enqueue, *args, **kwargs), robust=True)


def attempt() -> int:
    """Inside a job's body: 1 on the first attempt, 2 on the first retry, and so on."""
    return _attempt.get()


# The worker's side (chat/management/commands/db_worker.py) -------------------------------------


@contextmanager
def running(row: DBTaskResult) -> Iterator[None]:
    """While the worker runs `row`: what attempt() answers, and that failures come back to the worker."""
    attempt_token = _attempt.set(max(1, len(row.worker_ids)))
    worker_token = _in_worker.set(True)
    try:
        yield
    finally:
        _attempt.reset(attempt_token)
        _in_worker.reset(worker_token)


def after_failure(row: DBTaskResult, error: BaseException) -> None:
    """In the worker, in place of django-tasks-db's `set_failed`: queued again while the job has
    attempts left and the failure may pass; otherwise FAILED, and the job given up."""
    policy = policy_for(row)
    may_pass = isinstance(error, RetryLater | WorkerLost | SystemExit | KeyboardInterrupt)
    if may_pass and len(row.worker_ids) < policy.attempts:
        _queue_again(row, error)
        log.warning(
            "Task %s (%s) attempt %d of %d failed, tried again later: %s",
            row.id, row.task_path, len(row.worker_ids), policy.attempts, _describe(error),
        )  # fmt: skip
        return
    DBTaskResult.set_failed(row, error)  # the class's: the worker put this function on the instance
    _give_up(policy, _describe(error), row.args_kwargs["args"], row.args_kwargs["kwargs"])


def recover_lost_tasks(backend_name: str) -> int:
    """Tasks RUNNING for longer than CHAT_TASK_STALE_SECONDS lost their worker: queue them again, or
    fail them (their attempts spent). Returns how many were found."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_TASK_STALE_SECONDS)
    lost = DBTaskResult.objects.running().filter(backend_name=backend_name, started_at__lt=cutoff)
    if not lost.exists():  # the usual answer, without taking SQLite's write lock
        return 0
    given_up: list[tuple[Policy, str, list, dict]] = []
    with exclusive_transaction(lost.db):
        rows = list(lost.select_for_update(skip_locked=True)[:100])
        for row in rows:
            error = WorkerLost(
                f"the worker running attempt {len(row.worker_ids)} stopped before it finished "
                f"(still running after {settings.CHAT_TASK_STALE_SECONDS:g} s)"
            )
            policy = policy_for(row)
            if len(row.worker_ids) < policy.attempts:
                _queue_again(row, error)
            else:
                row.set_failed(error)
                given_up.append((policy, str(error), row.args_kwargs["args"], row.args_kwargs["kwargs"]))
    for row in rows:
        log.warning("Task %s (%s) lost its worker: %s", row.id, row.task_path, row.status)
    for policy, reason, args, kwargs in given_up:  # after the commit: a hook may write elsewhere
        _give_up(policy, reason, args, kwargs)
    return len(rows)


def policy_for(row: DBTaskResult) -> Policy:
    """The row's job's policy (importing its module registers it); one attempt for a plain task."""
    try:
        row.task  # noqa: B018 (imports the task's module)
    except (ImportError, SuspiciousOperation):
        return Policy()
    return _policies.get(row.task_path, Policy())


def backoff_seconds(attempts_spent: int, asked: float | None = None) -> float:
    """How long to wait before the next attempt: what RetryLater asked for, or the base doubled per
    attempt spent; never more than CHAT_TASK_BACKOFF_MAX_SECONDS."""
    doubled = settings.CHAT_TASK_BACKOFF_SECONDS * 2 ** max(0, attempts_spent - 1)
    return min(asked if asked is not None else doubled, settings.CHAT_TASK_BACKOFF_MAX_SECONDS)


@retry()  # as django-tasks-db's own set_failed: SQLite may be locked for a moment
def _queue_again(row: DBTaskResult, error: BaseException) -> None:
    asked = error.after_seconds if isinstance(error, RetryLater) else None
    row.status = TaskResultStatus.READY
    row.run_after = timezone.now() + timedelta(seconds=backoff_seconds(len(row.worker_ids), asked))
    # The last failure, for staff looking at the row in the admin; cleared when it succeeds.
    row.exception_class_path = f"{type(error).__module__}.{type(error).__qualname__}"
    row.traceback = _describe(error)
    row.save(update_fields=["status", "run_after", "exception_class_path", "traceback"])


def _give_up(policy: Policy, reason: str, args: Any, kwargs: Any) -> None:
    if policy.on_give_up is None:
        return
    try:
        policy.on_give_up(reason, *args, **kwargs)
    except Exception:
        log.exception("A job's on_give_up failed")


def _describe(error: BaseException) -> str:
    if isinstance(error, RetryLater):
        return error.reason
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
