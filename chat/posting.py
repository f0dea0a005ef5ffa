"""Posts that arrive together are stored together: one hop to the database thread, one commit.

Every socket's post waits for Channels' one database thread (`database_sync_to_async` is
thread-sensitive), which is the bottleneck of posting: while it works on one post, others queue.
Here they queue in this process's batch instead, and the next hop answers them all in one
transaction, each post in a savepoint of its own: it keeps every check it had (the session, the
standing, mute, ban, lock, slow mode and the flood limit, counted in the same transaction after
the posts before it), and one refused or failing post rolls back alone. The commit is what makes
them stored; only then is anything broadcast or acknowledged, so a post is either stored and
acknowledged or neither, as before.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.db import OperationalError, transaction

from chat import broadcast

# A batch is the posts that arrived while the one before it ran; this many at most, so that a
# burst is answered in steps and the first in it waits for no more than this many.
MOST_PER_BATCH = 32

Reply = str


@dataclass
class _Waiting:
    work: Callable[[], Reply]
    order: int  # the poster's id: a batch runs in this order (see _ordered)
    outcome: "asyncio.Future[Reply]"


@dataclass
class Batcher:
    """The posts waiting for this process's database thread, and whether a batch is running."""

    waiting: list[_Waiting] = field(default_factory=list)
    running: asyncio.Task | None = None

    async def answer(self, work: Callable[[], Reply], order: int = 0) -> Reply:
        """Run `work` (a post's whole answer, in the database thread) in the next batch and return
        its reply once the batch is committed and its broadcasts sent; raise what it raised, or
        the database's error when the commit failed."""
        outcome: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(work, order, outcome))
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(self._run())
        return await outcome

    async def _run(self) -> None:
        while self.waiting:
            batch, self.waiting = _ordered(self.waiting[:MOST_PER_BATCH]), self.waiting[MOST_PER_BATCH:]
            try:
                replies, events, bumped = await database_sync_to_async(_in_one_transaction)(batch)
            except Exception as problem:  # the commit failed: nothing of the batch is stored
                for waiting in batch:
                    _settle(waiting, problem)
                continue
            await broadcast.bump_committed(bumped)  # before the broadcasts: no page served stale after them
            await broadcast.send_collected(events)  # persisted, then broadcast, then acknowledged
            for waiting, reply in zip(batch, replies, strict=True):
                _settle(waiting, reply)


def _ordered(batch: list[_Waiting]) -> list[_Waiting]:
    """By poster (a stable sort: one poster's posts keep their order): with PostgreSQL each post
    locks its poster's row until the commit, and two processes' batches locking the same users in
    different orders could deadlock."""
    return sorted(batch, key=lambda waiting: waiting.order)


def _in_one_transaction(batch: list[_Waiting]) -> tuple[list[Reply | Exception], list, set[str]]:
    """Each post's reply (or what it raised), the events the commit let out, to send, and the page
    versions to bump again now that it has committed (from the event loop: `_run`)."""
    replies: list[Reply | Exception] = []
    with broadcast.collected() as events, broadcast.bumped_once() as bumped, transaction.atomic():
        for waiting in batch:
            try:
                with transaction.atomic():  # a savepoint: a failing post takes only itself back
                    replies.append(waiting.work())
            except Exception as problem:
                replies.append(problem)
        if transaction.get_rollback():
            # A savepoint could not be rolled back (the connection broke): the transaction would
            # end in a silent rollback, and no post of it may be acknowledged.
            raise OperationalError("The batch's transaction could not go on; nothing of it was stored.")
    return replies, events, bumped


def _settle(waiting: _Waiting, result: Reply | Exception) -> None:
    if waiting.outcome.done():  # its socket went away meanwhile
        return
    if isinstance(result, Exception):
        waiting.outcome.set_exception(result)
    else:
        waiting.outcome.set_result(result)


_batchers: dict[asyncio.AbstractEventLoop, Batcher] = {}


def batcher() -> Batcher:
    """This process's batcher (one per event loop: tests run several loops one after another)."""
    loop = asyncio.get_running_loop()
    if loop not in _batchers:
        for old in [old for old in _batchers if old.is_closed()]:
            del _batchers[old]
        _batchers[loop] = Batcher()
    return _batchers[loop]
