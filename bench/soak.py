"""`make soak`: a day's chatter in minutes, on two daphne processes sharing Redis, one of them restarted.

    python -m bench.soak [--minutes 10] [--users 200] [--rooms 10] [--senders 40] [--restart-every 120]

Users are spread over the rooms and both processes; the signed-in senders post at a human rate, the
rest read. Every `restart_every` seconds (the first after half of it) the second process gets SIGTERM
and starts again on the same port; its sockets reconnect as htmx's ws extension does (only after the
close codes it retries, with its full-jitter backoff) and get the history again. The first process
stays up the whole run, so its memory at the start and the end says whether anything grows.

A message counts as delivered to a user if it was shown live or in a history the user got on a
reconnect; every acknowledged post must reach every user of its room, be stored exactly once, and
show once per socket. The exit status is 1 otherwise.
"""

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.__main__ import machine, prepare_client
from bench.clients import HANDSHAKES_IN_FLIGHT, OPEN_TIMEOUT, Member, close_all, post, wait_until
from bench.scenarios import HISTORY_MARK, percentile, wait_idle
from bench.servers import Fleet, Server, pinned, rss_kib, run_parley_db, server_core
from testsupport.servers import REPO, stop, wait_for_port

# htmx's ws extension (hx-ws-2.js) reconnects after these close codes only.
RETRIED = frozenset({1006, 1011, 1012, 1013})
RESTARTED = 1  # which process restarts; the other is the long-lived one whose memory we watch
TEXT = re.compile(r"soak-\d+-\d+~")  # the "~" ends the number: soak-1-2~ is not inside soak-1-23~
POST_TIMEOUT = 30.0
# Once the posting stops: how long everyone may take to be back, and then to have every message.
BACK_TIMEOUT = 90.0
DRAIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class SoakPlan:
    minutes: float = 10.0
    users: int = 200
    rooms: int = 10
    senders: int = 40  # signed in and posting; the others are guests who read
    gap: tuple[float, float] = (5.0, 20.0)  # seconds between one sender's posts
    restart_every: float = 120.0
    seed: int = 10

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def restarts_at(self) -> list[float]:
        """Mid-interval, so that even a run of one interval restarts once."""
        count = int(self.seconds / self.restart_every + 0.5)
        return [(number + 0.5) * self.restart_every for number in range(count)]

    def room(self, user: int) -> str:
        # Users alternate between the processes (Member's port is index % 2), then walk the rooms,
        # so every room has members and senders on both processes.
        return f"room{(user // 2) % self.rooms}"


@dataclass
class Ledger:
    """Every post and who was shown it: loss, doubles and live latency."""

    sent_at: dict[str, float] = field(default_factory=dict)
    room_of: dict[str, str] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    unacked: int = 0  # the socket closed (a restart) before the acknowledgement came
    refused: int = 0
    seen: dict[int, set[str]] = field(default_factory=dict)  # user -> texts shown live or in a history
    members: dict[str, list[int]] = field(default_factory=dict)  # room -> users
    latencies: list[float] = field(default_factory=list)
    from_history: int = 0  # deliveries first made by a reconnect's history
    # A text shown twice on one socket, by how: "history then live" is a reconnect racing a broadcast.
    twice: Counter[str] = field(default_factory=Counter)

    @property
    def shown_twice(self) -> int:
        return self.twice.total()

    def sending(self, text: str, room: str) -> None:
        self.sent_at[text] = time.perf_counter()
        self.room_of[text] = room

    def saw(self, user: int, shown: dict[str, str], frame: str, now: float) -> None:
        """`shown`: what this socket has shown so far, each text with how it came."""
        how = "history" if HISTORY_MARK in frame else "live"
        for text in set(TEXT.findall(frame)):
            if text in shown:
                self.twice[f"{shown[text]} then {how}"] += 1
                continue
            shown[text] = how
            if text in self.seen[user]:
                continue  # shown again by a later socket's history: expected
            self.seen[user].add(text)
            if how == "history":
                self.from_history += 1
            elif text in self.sent_at:
                self.latencies.append(now - self.sent_at[text])

    def lost(self) -> int:
        return sum(
            1
            for text in self.acked
            for user in self.members[self.room_of[text]]
            if text not in self.seen[user]
        )


class Connection(Member):
    """One socket of a user; tells the ledger what each frame shows."""

    def __init__(self, user: "User") -> None:
        super().__init__(user.server, user.room, user.number, user.session)
        self.user = user
        self.shown: dict[str, str] = {}

    def _saw(self, frame: str) -> None:
        super()._saw(frame)
        self.user.ledger.saw(self.user.number, self.shown, frame, self.last_frame_at)

    def close_code(self) -> int:
        return (
            self.server_close_code or 1006
        )  # never opened, or dropped without a close frame: 1006 in a browser


class User:
    """One browser tab on a room page: a socket that reconnects as htmx's ws extension does."""

    def __init__(self, number: int, server: Server, room: str, session: str, ledger: Ledger) -> None:
        self.number, self.server, self.room, self.session, self.ledger = number, server, room, session, ledger
        self.connection: Connection | None = None
        self.connected = asyncio.Event()  # open and holding its history
        self.closes: Counter[int] = Counter()
        self.failed_opens = 0
        self.gave_up: int | None = None  # a close code htmx does not retry
        ledger.seen[number] = set()
        ledger.members.setdefault(room, []).append(number)

    async def live(self, handshakes: asyncio.Semaphore, rng: random.Random, stopping: asyncio.Event) -> None:
        retries = 0
        while not stopping.is_set():
            connection = Connection(self)
            opened = await self._hold(connection, handshakes)
            if stopping.is_set():
                return
            code = connection.close_code()
            if opened:
                retries = 0  # htmx resets its count on open
                self.closes[code] += 1
            else:
                self.failed_opens += 1
            if code not in RETRIED:
                self.gave_up = code
                return
            # htmx's "full-jitter": up to 1 s, then 2, 4... 64 s.
            await asyncio.sleep(rng.random() * 2 ** min(retries, 6))
            retries += 1

    async def _hold(self, connection: Connection, handshakes: asyncio.Semaphore) -> bool:
        """Open one socket and keep it until it closes; False if it never got its history."""
        try:
            await connection.open(handshakes)
        except Exception:
            return False
        opening: list[asyncio.Future] = [connection.first_frame, connection.reader]
        await asyncio.wait(
            opening,
            timeout=OPEN_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not connection.first_frame.done():
            connection.drop()
            return False
        self.connection = connection
        self.connected.set()
        await asyncio.wait([connection.reader])
        self.connected.clear()
        return True


async def post_now_and_then(user: User, plan: SoakPlan, rng: random.Random, until: float) -> None:
    """A sender: one message every few seconds, only while its socket is open, as a page would."""
    seq = 0
    while True:
        gap = rng.uniform(*plan.gap)
        if time.perf_counter() + gap >= until:
            return
        await asyncio.sleep(gap)
        try:
            await asyncio.wait_for(user.connected.wait(), until - time.perf_counter())
        except TimeoutError:
            return
        await post_once(user, f"soak-{user.number}-{seq}~")
        seq += 1


async def post_once(user: User, text: str) -> None:
    connection = user.connection
    assert connection is not None  # connected
    user.ledger.sending(text, user.room)
    posting = asyncio.ensure_future(post(connection, text, POST_TIMEOUT))
    waits: list[asyncio.Future] = [posting, connection.reader]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.wait([posting], timeout=0.2)  # an ack read just before the close still counts
    if not posting.done():
        posting.cancel()
        user.ledger.unacked += 1
    elif posting.exception() is not None:
        user.ledger.unacked += 1
    elif posting.result():
        user.ledger.acked.add(text)
    else:
        user.ledger.refused += 1


@dataclass
class Restart:
    at: float  # seconds into the soak
    stopped: float  # seconds SIGTERM took to end the process
    exit_code: int | None
    listening: float  # seconds from the new start until its port answered
    back: float | None = None  # seconds from SIGTERM until every user had its history again


def restart_process(server: Server, index: int, at: float) -> Restart:
    """SIGTERM (SIGKILL after 10 s), then the same command again on the same port."""
    old, port = server.processes[index], server.ports[index]
    started = time.perf_counter()
    stop(old)
    stopped = time.perf_counter()
    argv = pinned([arg.replace("{port}", str(port)) for arg in server.commands[index]], server_core(index))
    with open(server.log, "a") as log:
        server.processes[index] = subprocess.Popen(
            argv, cwd=REPO, env=server.env, stdout=log, stderr=subprocess.STDOUT
        )
    wait_for_port(port, server.processes[index], timeout=60)
    return Restart(at, stopped - started, old.returncode, time.perf_counter() - stopped)


async def restart_now_and_then(
    server: Server, plan: SoakPlan, users: list["User"], started: float
) -> list[Restart]:
    restarts = []
    for at in plan.restarts_at():
        await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
        sigterm = time.perf_counter()
        restart = await asyncio.to_thread(restart_process, server, RESTARTED, at)
        if await all_connected(users, 60):
            restart.back = time.perf_counter() - sigterm
        restarts.append(restart)
        print(f"  restarted process {RESTARTED} at {at:.0f} s", file=sys.stderr, flush=True)
    return restarts


@dataclass
class SoakResult:
    plan: SoakPlan
    ledger: Ledger
    users: list[User]
    restarts: list[Restart]
    rss_start: list[int]
    rss_end: list[int]
    stored_twice: int
    not_stored: int
    not_back: int  # users without an open socket at the end
    took: float  # seconds of posting
    settling: float  # seconds after it until every user had every message (or the checks gave up)

    @property
    def loss(self) -> int:
        return self.ledger.lost() + self.not_stored

    @property
    def doubles(self) -> int:
        return self.stored_twice + self.ledger.shown_twice

    def failed(self) -> bool:
        return bool(self.loss or self.doubles or self.not_back)


async def run_soak(plan: SoakPlan, folder: Path) -> SoakResult:
    rooms = sorted({plan.room(number) for number in range(plan.users)})
    fleet = Fleet(folder, ["p2"], {"senders": plan.senders, "rooms": rooms, "seeded": {}})
    try:
        fleet.start()
        return await soak_on(fleet.servers[0], plan)
    finally:
        fleet.stop()


async def soak_on(server: Server, plan: SoakPlan) -> SoakResult:
    ledger, rng, stopping = Ledger(), random.Random(plan.seed), asyncio.Event()
    sessions = server.sessions + [""] * (plan.users - plan.senders)
    users = [User(n, server, plan.room(n), sessions[n], ledger) for n in range(plan.users)]
    handshakes = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    lives = [asyncio.create_task(user.live(handshakes, rng, stopping)) for user in users]
    if not await all_connected(users, 60):
        raise RuntimeError(f"{sum(not u.connected.is_set() for u in users)} users could not join")
    await wait_idle(server, timeout=15)
    rss_start = rss_of(server)
    started = time.perf_counter()
    restarts = await chatter(server, plan, users, rng, started)
    posting = time.perf_counter() - started
    if await all_connected(users, BACK_TIMEOUT):
        await wait_until(lambda: ledger.lost() == 0, DRAIN_TIMEOUT, 0.5)
    settling = time.perf_counter() - started - posting
    rss_end, not_back = rss_of(server), sum(not user.connected.is_set() for user in users)
    stopping.set()
    await close_all([user.connection for user in users if user.connection])
    for life in lives:
        life.cancel()  # some wait out a backoff
    await asyncio.gather(*lives, return_exceptions=True)
    stored_twice, not_stored = await stored(server, ledger, sorted(ledger.members))
    return SoakResult(
        plan=plan,
        ledger=ledger,
        users=users,
        restarts=restarts,
        rss_start=rss_start,
        rss_end=rss_end,
        stored_twice=stored_twice,
        not_stored=not_stored,
        not_back=not_back,
        took=posting,
        settling=settling,
    )


async def all_connected(users: Sequence[User], timeout: float) -> bool:
    """Every user has an open socket that got its history."""
    return await wait_until(lambda: all(user.connected.is_set() for user in users), timeout, 0.05)


def rss_of(server: Server) -> list[int]:
    return [rss_kib(process.pid) for process in server.processes]


async def chatter(
    server: Server, plan: SoakPlan, users: list[User], rng: random.Random, started: float
) -> list[Restart]:
    """The posting and the restarts, until the time is up and every post has its answer."""
    until = started + plan.seconds
    restarting = asyncio.create_task(restart_now_and_then(server, plan, users, started))
    senders = users[: plan.senders]
    await asyncio.gather(*(post_now_and_then(sender, plan, rng, until) for sender in senders))
    await asyncio.sleep(max(0.0, until - time.perf_counter()))
    return await restarting


async def stored(server: Server, ledger: Ledger, rooms: list[str]) -> tuple[int, int]:
    """Bodies stored more than once (any post), and acknowledged posts not stored at all."""
    counts = await stored_counts(server, rooms)
    twice = sum(n - 1 for n in counts.values() if n > 1)
    return twice, sum(1 for text in ledger.acked if counts.get(text, 0) == 0)


async def stored_counts(server: Server, rooms: list[str]) -> dict[str, int]:
    """How often each post's body is stored in the rooms."""
    counts: dict[str, int] = {}
    for room in rooms:
        found = await asyncio.to_thread(run_parley_db, server.env, "count", {"room": room, "prefix": "soak-"})
        counts |= found["stored"]
    return counts


# The report ------------------------------------------------------------------------------


def report(result: SoakResult) -> str:
    rows = [
        (
            "users",
            f"{result.plan.users} in {result.plan.rooms} rooms on 2 processes; {result.plan.senders}"
            f" signed-in senders, one post every {result.plan.gap[0]:.0f}-{result.plan.gap[1]:.0f} s each",
        ),
        ("duration", f"{result.took / 60:.1f} min of posting, then {result.settling:.1f} s until all was in"),
        *restart_rows(result),
        *delivery_rows(result),
        *memory_rows(result),
    ]
    return "\n".join(["| soak | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def restart_rows(result: SoakResult) -> list[tuple[str, str]]:
    restarts = result.restarts
    if not restarts:
        return [("restarts", "none (the run is shorter than half the interval)")]
    stops = ", ".join(f"{r.stopped:.1f} s (exit {r.exit_code})" for r in restarts)
    starts = ", ".join(f"{r.listening:.1f} s" for r in restarts)
    backs = ", ".join("not within 60 s" if r.back is None else f"{r.back:.1f} s" for r in restarts)
    closes: Counter[int] = sum((user.closes for user in result.users), Counter())
    codes = ", ".join(f"{code} ×{count}" for code, count in sorted(closes.items()))  # noqa: RUF001
    return [
        ("restarts", f"{len(restarts)} of process {RESTARTED} (SIGTERM, same port)"),
        ("SIGTERM to exit", stops),
        ("start to listening", starts),
        ("SIGTERM to every user back with its history", backs),
        ("sockets closed", codes or "none"),
        ("failed reopen attempts", str(sum(user.failed_opens for user in result.users))),
    ]


def delivery_rows(result: SoakResult) -> list[tuple[str, str]]:
    ledger = result.ledger
    latencies = sorted(ledger.latencies)
    gave_up = sum(1 for user in result.users if user.gave_up is not None)
    return [
        (
            "posts acknowledged",
            f"{len(ledger.acked)} ({len(ledger.acked) / max(result.took, 1):.1f}/s); "
            f"{ledger.unacked} cut off by a restart, {ledger.refused} refused",
        ),
        ("deliveries", f"{len(latencies)} live, {ledger.from_history} from a reconnect's history"),
        ("send → each receiver (live)", latency_text(latencies)),
        ("loss", f"{result.loss} ({result.not_stored} acknowledged but not stored)"),
        (
            "doubles",
            f"{result.doubles} ({result.stored_twice} stored twice, "
            f"{ledger.shown_twice} shown twice on one socket{twice_note(ledger)})",
        ),
        (
            "users not back at the end",
            f"{result.not_back} ({gave_up} closed with a code htmx does not retry)",
        ),
    ]


def twice_note(ledger: Ledger) -> str:
    return "".join(f", {count} {how}" for how, count in sorted(ledger.twice.items()))


def latency_text(latencies: list[float]) -> str:
    if not latencies:
        return "no live delivery"
    p50, p95, p99 = (
        ms(value)
        for value in (statistics.median(latencies), percentile(latencies, 0.95), percentile(latencies, 0.99))
    )
    return f"p50 {p50}, **p95 {p95}**, p99 {p99}, max {ms(latencies[-1])}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def memory_rows(result: SoakResult) -> list[tuple[str, str]]:
    rows = []
    for index, (start, end) in enumerate(zip(result.rss_start, result.rss_end, strict=True)):
        life = "restarted, its last life" if index == RESTARTED and result.restarts else "up all along"
        rows.append((f"RSS process {index} start → end", f"{mib(start)} → {mib(end)} ({life})"))
    return rows


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


# The command -----------------------------------------------------------------------------


def soak(plan: SoakPlan, keep: bool = False) -> SoakResult:
    """Run and print the report."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parley-soak-", delete=not keep) as folder:
        print(f"servers' logs and database in {folder}", file=sys.stderr, flush=True)
        result = asyncio.run(run_soak(plan, Path(folder)))
    print(report(result))
    print(f"\n{machine()}; the soak took {time.perf_counter() - started:.0f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = SoakPlan(minutes=float(os.environ.get("SOAK_MINUTES") or SoakPlan.minutes))
    parser.add_argument("--minutes", type=float, default=default.minutes, help="env SOAK_MINUTES too")
    parser.add_argument("--users", type=int, default=default.users)
    parser.add_argument("--rooms", type=int, default=default.rooms)
    parser.add_argument("--senders", type=int, default=default.senders)
    parser.add_argument("--restart-every", type=float, default=default.restart_every, help="seconds")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs and database")
    arguments = parser.parse_args()
    plan = SoakPlan(
        minutes=arguments.minutes,
        users=arguments.users,
        rooms=arguments.rooms,
        senders=min(arguments.senders, arguments.users),
        restart_every=arguments.restart_every,
    )
    prepare_client()
    if soak(plan, arguments.keep).failed():
        sys.exit("FAILED: messages were lost or doubled, or users did not come back")


if __name__ == "__main__":
    main()
