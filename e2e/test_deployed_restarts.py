"""Restarts in the shape an operator deploys: HAProxy over TLS, supervisor, two daphne processes,
PostgreSQL and Redis (deploy/shape.py).

Twenty signed-in users (the soak's clients, bench/soak.py, over wss through the proxy) post and read
while every process is restarted in turn, or while one is killed with -9. They reconnect as htmx's
ws extension does (only after 1006/1011/1012/1013, with its full-jitter backoff) and count a message
as delivered when it is shown live or in the history a reconnect brings. A Chromium page sits in one
of the rooms through the rolling restart.

The asyncio parts run in a worker thread: Playwright's sync API holds an event loop in the main one.
"""

import asyncio
import os
import random
import signal
import ssl
import statistics
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from bench.clients import HANDSHAKES_IN_FLIGHT, Member, close_all, open_all, post, wait_until
from bench.servers import Server, run_parley_db
from bench.soak import TEXT, Connection, Ledger, User, all_connected, post_once, stored, stored_counts
from deploy.shape import Shape
from testsupport.servers import free_port

USERS = 20
ROLLING_ROOMS = ("rolling-a", "rolling-b")
KILL_ROOM = "killed"
BROWSER_SESSION = USERS  # the one more signed-in user whose session the browser holds
POST_GAP = (1.0, 2.0)  # seconds between one user's posts: ~13 posts/s in all, one frame in ~0.15 s per room
# Flood control would refuse some of these posts; it is tested elsewhere.
LOAD_ENV = {"CHAT_FLOOD_MESSAGES": "1000000"}
# How long a user may see no live update while the processes restart in turn (htmx waits up to 1 s
# before its first retry, the proxy sends the retry to a process that is up).
GAP_BOUND = 5.0
# After kill -9, how soon its users must be back on the other process: well under the killed
# process's own restart (supervisor, daphne's start, HAProxy's health checks).
KILLED_BACK_BOUND = 4.0


# The shape and the users ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    folder = tmp_path_factory.mktemp("shape")
    production = Shape(folder, https_port=free_port(), http_port=free_port(), processes=2, env=LOAD_ENV)
    try:
        production.up()
        yield production
    finally:
        production.down()


@pytest.fixture(scope="module")
def site(shape: Shape) -> Server:
    """The shape as the soak's clients see it: one wss address, and signed-in users' sessions."""
    env = {**os.environ, **shape.env}
    rooms = [*ROLLING_ROOMS, KILL_ROOM]
    sessions = run_parley_db(env, "setup", {"senders": USERS + 1, "rooms": rooms, "seeded": {}})["sessions"]
    return Server(
        key="shape",
        title="Parley behind HAProxy",
        kind="parley",
        commands=[],  # supervisor runs the processes
        env=env,
        log=Path(os.devnull),
        sessions=sessions,
        proxy_url=shape.url,
        ssl_context=self_signed(),
    )


def self_signed() -> ssl.SSLContext:
    """The local shape's certificate is self-signed: as a browser told to go ahead anyway."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def in_a_thread[T](work: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


class TimedUser(User):
    """A soak user that notes each outage: from the last frame its socket showed to the history
    the next socket brings, the time it saw no live update."""

    def __init__(self, number: int, server: Server, room: str, session: str, ledger: Ledger) -> None:
        super().__init__(number, server, room, session, ledger)
        self.last_seen: float | None = None  # while it has no socket: the last frame the old one showed
        self.outages: list[tuple[float, float]] = []  # (last frame on the old socket, history on the new)

    async def _hold(self, connection: Connection, handshakes: asyncio.Semaphore) -> bool:
        connection.first_frame.add_done_callback(lambda _: self._back())
        opened = await super()._hold(connection, handshakes)
        if opened:
            self.last_seen = connection.last_frame_at
        return opened

    def _back(self) -> None:
        if self.last_seen is not None:
            self.outages.append((self.last_seen, time.perf_counter()))
            self.last_seen = None

    def longest_gap(self) -> float:
        return max((back - gone for gone, back in self.outages), default=0.0)

    def back_after(self, moment: float) -> float:
        """When the history came on the first socket opened after `moment`."""
        return min(back for _gone, back in self.outages if back > moment)


@dataclass
class Crowd:
    """Users in some rooms, each on its own socket that reconnects by itself, posting now and then."""

    server: Server
    rooms: tuple[str, ...]
    seed: int
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.users = [
            TimedUser(n, self.server, self.rooms[n % len(self.rooms)], self.server.sessions[n], self.ledger)
            for n in range(USERS)
        ]
        self.stopping, self.posting_done = asyncio.Event(), asyncio.Event()
        self.lives: list[asyncio.Task] = []
        self.posters: list[asyncio.Task] = []

    async def join(self) -> None:
        handshakes = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
        self.lives = [
            asyncio.create_task(user.live(handshakes, self.rng, self.stopping)) for user in self.users
        ]
        if not await all_connected(self.users, 30):
            raise RuntimeError(f"{sum(not u.connected.is_set() for u in self.users)} users could not join")

    def start_posting(self) -> None:
        self.posters = [asyncio.create_task(self._post_now_and_then(user)) for user in self.users]

    async def _post_now_and_then(self, user: User) -> None:
        """As a person at the page: a post every second or two, only while the page has its socket."""
        seq = 0
        while not self.posting_done.is_set():
            await asyncio.sleep(self.rng.uniform(*POST_GAP))
            if user.connected.is_set() and not self.posting_done.is_set():
                await post_once(user, f"soak-{user.number}-{seq}~")
                seq += 1

    async def finish(self) -> "Outcome":
        """Stop posting; once everyone is back and has everything (or the waits give up), leave."""
        self.posting_done.set()
        await asyncio.gather(*self.posters)
        back = await all_connected(self.users, 30)
        if back:
            await wait_until(lambda: self.ledger.lost() == 0, 20, 0.2)
        not_back = sum(not user.connected.is_set() for user in self.users)
        self.stopping.set()
        await close_all([user.connection for user in self.users if user.connection])
        for life in self.lives:
            life.cancel()  # some wait out a backoff
        await asyncio.gather(*self.lives, return_exceptions=True)
        stored_twice, not_stored = await stored(self.server, self.ledger, list(self.rooms))
        counts = await stored_counts(self.server, list(self.rooms))
        cut_off_stored = sum(
            1 for text in self.ledger.sent_at if text not in self.ledger.acked and text in counts
        )
        return Outcome(self.ledger, self.users, not_back, stored_twice, not_stored, cut_off_stored)


@dataclass
class Outcome:
    ledger: Ledger
    users: list[TimedUser]
    not_back: int
    stored_twice: int
    not_stored: int
    cut_off_stored: int  # posts whose answer never came (the socket closed first) that were stored anyway

    @property
    def lost(self) -> int:
        """Deliveries of acknowledged posts missing (live or in a history), and posts not stored."""
        return self.ledger.lost() + self.not_stored

    @property
    def doubles(self) -> int:
        return self.stored_twice + self.ledger.shown_twice

    @property
    def refused_reopens(self) -> int:
        """Reconnects that opened no socket with a history: the proxy sent them to a process going away."""
        return sum(user.failed_opens for user in self.users)

    def assert_nothing_lost_or_doubled(self) -> None:
        assert self.ledger.acked, "no post was acknowledged"
        assert (self.ledger.lost(), self.not_stored) == (0, 0), "acknowledged posts lost (unshown, unstored)"
        assert self.stored_twice == 0, "posts stored twice"
        assert not self.ledger.twice, f"messages shown twice on one socket: {dict(self.ledger.twice)}"
        gave_up = {user.number: user.gave_up for user in self.users if user.gave_up is not None}
        assert not gave_up, f"closed with a code htmx does not retry: {gave_up}"
        assert self.not_back == 0, "users without a socket at the end"


# 1. A rolling restart under load, with a browser watching ----------------------------------------


@dataclass
class Rolling:
    outcome: Outcome
    steps: list[tuple[float, str]]
    took: float  # seconds the rolling restart took

    @property
    def gaps(self) -> list[float]:
        """Each user's longest time without a live update."""
        return sorted(user.longest_gap() for user in self.outcome.users)

    def each_process(self) -> list[float]:
        """Seconds from each process's first step (its drain) to its last (back in rotation)."""
        by_process: dict[str, list[float]] = {}
        for at, step in self.steps:
            by_process.setdefault(step.split(": ")[0], []).append(at)
        return [max(times) - min(times) for times in by_process.values()]


async def rolling_restart_under_load(shape: Shape, site: Server) -> Rolling:
    crowd = Crowd(site, ROLLING_ROOMS, seed=17)
    await crowd.join()
    crowd.start_posting()
    await asyncio.sleep(2)  # traffic before
    steps: list[tuple[float, str]] = []
    started = time.perf_counter()
    await asyncio.to_thread(shape.rolling_restart, lambda step: steps.append((time.perf_counter(), step)))
    took = time.perf_counter() - started
    await asyncio.sleep(2)  # and after
    return Rolling(await crowd.finish(), steps, took)


def test_a_rolling_restart_under_load_loses_nothing_and_every_page_reconnects_by_itself(
    shape: Shape, site: Server, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    pids_before = {name: shape.pid(name) for name in shape.processes()}
    supervisor_log = SupervisorLog(shape)
    with signed_in_context(browser, shape, site.sessions[BROWSER_SESSION]) as context:
        page = context.new_page()
        sockets = room_sockets_opened(page, ROLLING_ROOMS[0])
        page.goto(f"{shape.url}/rooms/{ROLLING_ROOMS[0]}/")
        expect(page.locator("#message-form input[name=message]")).to_be_visible()
        page.evaluate("() => { window.notReloaded = true }")

        rolling = wait_in_browser(page, rolling_restart_under_load(shape, site))

        report_rolling(rolling, capsys)
        rolling.outcome.assert_nothing_lost_or_doubled()
        # A post the restart cut off before its answer is not stored either: the sender's page still
        # holds it in the box (no answer replaced the form), so sending it again makes no double.
        cut_off_stored = rolling.outcome.cut_off_stored
        assert cut_off_stored == 0, f"{cut_off_stored} posts were stored but never answered"
        assert {name: shape.pid(name) for name in shape.processes()}.items().isdisjoint(pids_before.items())
        killed = supervisor_log.new_lines_with("terminated by SIGKILL")
        assert not killed, f"supervisor had to SIGKILL what SIGTERM did not stop: {killed}"
        not_closed = [user.number for user in rolling.outcome.users if not user.outages]
        assert not not_closed, f"users whose socket no restart closed: {not_closed}"
        # HAProxy drained each process before its SIGTERM: no page tried to reconnect to it.
        refused = rolling.outcome.refused_reopens
        assert refused == 0, f"{refused} reconnects were sent to a process going away"
        longest = rolling.gaps[-1]
        assert longest < GAP_BOUND, f"a user saw no live update for {longest:.1f} s"

        # The page got a new socket by itself, without a reload, and it is live.
        after = f"soak-{USERS}-0~ posted after the restart"
        in_a_thread(post_as(site, ROLLING_ROOMS[0], site.sessions[0], after))
        expect(page.locator("#messages .message", has_text=after)).to_have_count(1, timeout=15_000)
        assert page.evaluate("() => window.notReloaded") is True
        assert len(sockets) >= 2, "the page's socket was never replaced"
        shown = Counter(TEXT.findall(page.locator("#messages").inner_text()))
        assert not [text for text, count in shown.items() if count > 1], "the page shows a message twice"


class SupervisorLog:
    """supervisord's own log in the shape's folder: what it did to the processes from now on."""

    def __init__(self, shape: Shape) -> None:
        self.path = shape.folder / "logs" / "supervisord.log"
        self.start = self.path.stat().st_size

    def new_lines_with(self, text: str) -> list[str]:
        with self.path.open() as log:
            log.seek(self.start)
            return [line.strip() for line in log if text in line]


def signed_in_context(browser: Browser, shape: Shape, session: str) -> BrowserContext:
    """A browser that takes the self-signed certificate and holds a signed-in session cookie."""
    context = browser.new_context(ignore_https_errors=True)
    cookie = {"name": "sessionid", "value": session, "url": shape.url, "secure": True, "httpOnly": True}
    context.add_cookies([cookie])  # type: ignore[list-item]
    return context


def room_sockets_opened(page: Page, room: str) -> list[str]:
    """The room sockets the page opens from now on (one, and another after each close)."""
    opened: list[str] = []
    page.on(
        "websocket", lambda socket: opened.append(socket.url) if f"/ws/rooms/{room}/" in socket.url else None
    )
    return opened


def wait_in_browser[T](page: Page, work: Coroutine[Any, Any, T]) -> T:
    """Run the load in a worker thread while Playwright keeps handling the page's events."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(asyncio.run, work)
        while not running.done():
            page.wait_for_timeout(250)
        return running.result()


async def post_as(site: Server, room: str, session: str, text: str) -> None:
    member = Member(site, room, 0, session)
    await open_all([member])
    try:
        assert await post(member, text, 15), f"{text!r} was refused"
    finally:
        await close_all([member])


def report_rolling(rolling: Rolling, capsys: pytest.CaptureFixture[str]) -> None:
    outcome, gaps = rolling.outcome, rolling.gaps
    closes: Counter[int] = sum((user.closes for user in outcome.users), Counter())
    lines = [
        f"rolling restart: {len(outcome.ledger.acked)} posts, {outcome.lost} lost, {outcome.doubles} doubles,"
        f" gap median {statistics.median(gaps):.1f} s, max {gaps[-1]:.1f} s",
        f"  the restart took {rolling.took:.1f} s"
        f" ({', '.join(f'{seconds:.1f} s' for seconds in rolling.each_process())} per process);"
        f" {outcome.ledger.unacked} posts cut off unanswered ({outcome.cut_off_stored} of them stored);"
        f" sockets closed {dict(sorted(closes.items()))};"
        f" {outcome.refused_reopens} reopens refused; {outcome.ledger.from_history} deliveries from a"
        " reconnect's history",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# 2. kill -9 ------------------------------------------------------------------------------------


@dataclass
class Killing:
    outcome: Outcome
    victims: int  # users whose socket the kill closed
    back: float  # seconds from the kill until every one of them had its history from the other process
    up_again: float  # seconds from the kill until HAProxy had the restarted process UP
    new_pid: int
    on_restarted: int  # sockets opened afterwards that the proxy sent to the restarted process


async def kill_one_under_load(shape: Shape, site: Server) -> Killing:
    crowd = Crowd(site, (KILL_ROOM,), seed=9)
    await crowd.join()
    spread = await asyncio.to_thread(shape.connections)
    assert len(spread) == 2 and min(spread.values()) > 0, f"users not on both processes: {spread}"
    victim = max(spread, key=lambda name: spread[name])
    old_pid = shape.pid(victim)
    crowd.start_posting()
    await asyncio.sleep(2)

    killed_at = time.perf_counter()
    os.kill(old_pid, signal.SIGKILL)
    up_again = asyncio.create_task(asyncio.to_thread(wait_up_again, shape, victim, old_pid))
    await wait_until(lambda: len(hit_since(crowd.users, killed_at)) >= spread[victim], 5)
    all_back = await all_connected(crowd.users, 15)
    hit = hit_since(crowd.users, killed_at)
    back = max(user.back_after(killed_at) for user in hit) - killed_at if all_back and hit else float("inf")

    up_at = await up_again
    await asyncio.sleep(1)
    on_restarted = await later_sockets_on(shape, site, victim)
    outcome = await crowd.finish()
    return Killing(outcome, len(hit), back, up_at - killed_at, shape.pid(victim), on_restarted)


def hit_since(users: list[TimedUser], moment: float) -> list[TimedUser]:
    """Users who lost their socket after `moment`: gone now, or back after an outage since then."""
    return [
        user
        for user in users
        if not user.connected.is_set() or any(back > moment for _gone, back in user.outages)
    ]


def wait_up_again(shape: Shape, name: str, old_pid: int, timeout: float = 60) -> float:
    """When supervisor has started `name` again and HAProxy's health checks have it UP."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        restarted = "RUNNING" in shape.supervisorctl("status", name) and shape.pid(name) != old_pid
        if restarted and shape.server_status()[name] == "UP":
            return time.perf_counter()
        time.sleep(0.1)
    raise TimeoutError(f"{name} was not UP again within {timeout} s")


async def later_sockets_on(shape: Shape, site: Server, name: str, count: int = 4) -> int:
    """Open a few more sockets: the least loaded process, the restarted one, should take them."""
    members = [Member(site, KILL_ROOM, n, site.sessions[n]) for n in range(count)]
    await open_all(members)
    try:
        return (await asyncio.to_thread(shape.connections))[name]
    finally:
        await close_all(members)


def test_after_kill_9_its_users_reconnect_to_the_other_process_at_once_and_supervisor_restarts_it(
    shape: Shape, site: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    killing = in_a_thread(kill_one_under_load(shape, site))

    with capsys.disabled():
        print(
            f"\nkill -9: {killing.victims} users back on the other process in {killing.back:.1f} s;"
            f" the killed process UP again after {killing.up_again:.1f} s;"
            f" {len(killing.outcome.ledger.acked)} posts, {killing.outcome.lost} lost,"
            f" {killing.outcome.doubles} doubles, {killing.outcome.refused_reopens} reopens refused;"
            f" {killing.outcome.ledger.unacked} posts cut off unanswered"
            f" ({killing.outcome.cut_off_stored} of them stored)"
        )
    back, up_again, refused = killing.back, killing.up_again, killing.outcome.refused_reopens
    assert killing.victims > 0, "the kill closed nobody's socket"
    assert back < KILLED_BACK_BOUND, f"its users took {back:.1f} s to be back"
    assert back < up_again, f"its users ({back:.1f} s) waited for the killed process ({up_again:.1f} s)"
    # HAProxy retried each refused connection on the other process at once: no page had to retry.
    assert refused == 0, f"{refused} reconnects were sent to the dead process"
    assert killing.on_restarted > 0, "the restarted process takes no sockets"
    killing.outcome.assert_nothing_lost_or_doubled()
