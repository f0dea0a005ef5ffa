"""The table's rows: each scenario runs against one server and returns a Figure per row.

A scenario that fails or times out yields "failed: reason" in its cells, never a hang: every
wait is bounded, and the server is restarted afterwards so its backlog does not spill over.
"""

import asyncio
import html
import math
import re
import statistics
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.clients import Member, Tracker, close_all, drop_all, open_all, post, quiet, wait_until
from bench.servers import CLIENT_CORE, Server, can_pin, run_parley_db

SCENARIO_ROOMS = ("joins", "idle", "fan", "post", "page", "older", "bot")
HISTORY_MARK = 'id="messages"'


@dataclass(frozen=True)
class Plan:
    joins: int = 1000
    join_timeout: float = 90.0
    idle_sockets: int = 10_000  # memory is measured over this many, held open at once
    fan_sizes: tuple[int, ...] = (10, 100, 500)
    fan_rate: float = 2.0
    fan_messages: int = 10
    rates: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640)
    step_seconds: float = 3.0
    rate_senders: int = 4
    refinements: int = 3  # steps between the best rate that passed and the first that failed
    fixed_rate: float = 80.0  # msg/s into 100 members, held by every column: CPU per delivery at one load
    posting_seconds: float = 5.0
    wrk_seconds: int = 5
    page_messages: int = 50
    senders: int = 16


QUICK = Plan(
    joins=200,
    join_timeout=60,
    idle_sockets=1000,
    fan_sizes=(10, 100),
    fan_rate=4.0,
    fan_messages=6,
    rates=(20, 40, 80, 160, 320, 640),
    step_seconds=0.5,
    refinements=1,
    fixed_rate=40.0,
    posting_seconds=2,
    wrk_seconds=2,
)


@dataclass
class Figure:
    value: float | None = None
    unit: str = ""
    note: str = ""
    failed: str = ""

    @classmethod
    def fail(cls, reason: str) -> "Figure":
        return cls(failed=reason)


Rows = dict[str, Figure]


def room_of(server: Server, scenario: str) -> str:
    """Parley's rooms are rows in the one shared database: one set per Parley column."""
    return f"{server.key}-{scenario}"


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


async def wait_idle(server: Server, timeout: float = 30.0) -> None:
    """Until the server uses under 5% of a core: the previous scenario's backlog is done."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = server.cpu_seconds()
        await asyncio.sleep(0.3)
        if server.cpu_seconds() - before < 0.02:
            return


async def settled(server: Server, room: str, members: list[Member], listed: int) -> None:
    """Joins done: every socket is listed, the member-list updates have been sent, the server rests.

    Parley sends the history before it writes the presence row, and a socket gets no live
    message until that write is done, which can wait on SQLite's lock with the CPU idle.
    """
    if server.kind == "parley":
        await member_list_note(server, room, listed, timeout=60)
    await quiet(members)
    await wait_idle(server)


async def guarded(server: Server, rows: list[str], scenario: Awaitable[Rows]) -> Rows:
    """A scenario's rows, or each of them failed with the reason; the server restarts after a failure."""
    try:
        return await scenario
    except Exception as problem:
        reason = f"{type(problem).__name__}: {problem}".strip().rstrip(":")[:120]
        print(f"  {server.key}: {reason}; restarting it", file=sys.stderr, flush=True)
        server.restart()
        return {row: Figure.fail(reason) for row in rows}


async def opened(members: list[Member], timeout: float) -> float:
    """Seconds until every socket is open (and, for Parley, has its history)."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(open_all(members), timeout)
    except TimeoutError:
        ready = sum(1 for member in members if member.first_frame.done())
        for member in members:
            member.drop()
        raise TimeoutError(f"{ready}/{len(members)} ready after {timeout:.0f} s") from None
    return time.perf_counter() - started


# Joins, memory and the reconnect storm ------------------------------------------------------


async def joins(server: Server, plan: Plan) -> Rows:
    room = room_of(server, "joins")
    members = [Member(server, room, index) for index in range(plan.joins)]
    seconds = await opened(members, plan.join_timeout)
    listed = await member_list_note(server, room, plan.joins)
    rows = {"joins": Figure(seconds, "s", listed)}
    return rows | await guarded(server, ["storm"], storm(server, room, members, plan))


async def idle_memory(server: Server, plan: Plan) -> Rows:
    """RSS growth per socket from a fifth of plan.idle_sockets open in one room to all of them.

    The first fifth opens before the first reading: it takes up whatever memory earlier scenarios
    freed but the process kept, and the one-off costs of a first socket, so neither counts as, or
    hides, the cost of one more socket. Every server is measured the same way.
    """
    await wait_idle(server)
    room = room_of(server, "idle")
    members = [Member(server, room, index) for index in range(plan.idle_sockets)]
    first = plan.idle_sockets // 5
    try:
        await opened(members[:first], plan.join_timeout * first / plan.joins)
        await wait_idle(server)
        before = server.rss_kib()
        rest = members[first:]
        await opened(rest, plan.join_timeout * len(rest) / plan.joins)
        await wait_idle(server)
        memory = (server.rss_kib() - before) / len(rest)
    finally:
        drop_all(members)
    await wait_idle(server)
    return {"memory": Figure(memory, "KiB", f"{plan.idle_sockets:,} held open")}


def fetch(
    url: str, session: str, gzip: bool = False, extra: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """Body as it came over the wire, and its Content-Encoding."""
    headers = {"Cookie": f"sessionid={session}"} | ({"Accept-Encoding": "gzip"} if gzip else {})
    headers |= extra or {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return response.read(), response.headers.get("Content-Encoding", "")


def online_count(server: Server, room: str) -> int:
    """The count in the room page's member list, seen by a sender who is not in that room."""
    page, _ = fetch(f"http://127.0.0.1:{server.ports[0]}/rooms/{room}/", server.sessions[-1])
    found = re.search(r'class="count">(\d+)<', page.decode())
    return int(found.group(1)) if found else -1


async def member_list_note(server: Server, room: str, expected: int, timeout: float = 15) -> str:
    """Parley: does the member list count every socket (as a guest) once joins are done?"""
    if server.kind != "parley":
        return ""
    started = time.perf_counter()
    count = -1
    while time.perf_counter() - started < timeout:
        count = await asyncio.to_thread(online_count, server, room)
        if count == expected:
            lag = time.perf_counter() - started
            return "list ✓" + (f" after +{lag:.1f} s" if lag > 0.5 else "")
        await asyncio.sleep(0.5)
    return f"list shows {count}, not {expected}"


async def storm(server: Server, room: str, members: list[Member], plan: Plan) -> Rows:
    """Every socket drops at once and reconnects at once; Parley must resend a history with the message
    posted meanwhile, exactly once."""
    sender = await storm_sender(server, room, plan)
    for member in members:
        member.drop()
    marker = f"storm-{server.key}-0-0~"
    if sender and not await post(sender, marker, timeout=60):
        raise RuntimeError("the message posted during the storm was refused")
    back = [Member(server, room, index) for index in range(plan.joins)]
    live_copies = watch_for(back, marker)
    try:
        seconds = await opened(back, plan.join_timeout)
        note = await history_note(back, marker, live_copies) if sender else "no history to check"
    finally:
        drop_all([*back, *([sender] if sender else [])])
    return {"storm": Figure(seconds, "s", note)}


async def storm_sender(server: Server, room: str, plan: Plan) -> Member | None:
    if server.kind != "parley":
        return None
    sender = Member(server, room, plan.joins, server.sessions[0])
    await opened([sender], 30)
    return sender


def watch_for(members: list[Member], marker: str) -> list[int]:
    """How often each socket receives `marker`, in its history and live."""
    copies = [0] * len(members)
    for position, member in enumerate(members):
        member.watch = lambda frame, position=position: add_copies(copies, position, frame.count(marker))
    return copies


def add_copies(copies: list[int], position: int, count: int) -> None:
    copies[position] += count


async def history_note(members: list[Member], marker: str, copies: list[int]) -> str:
    await asyncio.sleep(0.5)  # a double would arrive live right after the history
    missing = sum(1 for member in members if marker not in member.first_frame.result())
    doubled = sum(1 for count in copies if count > 1)
    if missing or doubled:
        return f"history: {missing} without the message posted meanwhile, {doubled} got it twice"
    return "history ✓ once each"


# Fan-out latency and the sustained rate ---------------------------------------------------


async def fan_out(server: Server, plan: Plan) -> Rows:
    """One room grown step by step; at each size one sender posts at a modest rate."""
    room = room_of(server, "fan")
    senders = [Member(server, room, index, session) for index, session in enumerate(senders_of(server, plan))]
    await opened(senders, 30)
    members: list[Member] = []
    rows: Rows = {}
    try:
        for size in plan.fan_sizes:
            joining = [Member(server, room, index) for index in range(len(members), size)]
            members += joining
            await opened(joining, plan.join_timeout)
            await settled(server, room, members, listed=len(members) + len(senders))
            if size == plan.fan_sizes[0]:
                await warm_up(members, senders, plan)
            rows |= await latency_rows(size, members, senders[:1], plan)
            if size == 100:
                rows["cpu_fixed"] = await cpu_at_fixed_rate(server, members, senders, plan)
                rows["sustained"], rows["cpu_delivery"] = await sustained(server, members, senders, plan)
    finally:
        drop_all(members + senders)
    return rows


async def warm_up(members: list[Member], senders: list[Member], plan: Plan) -> None:
    """One message from each sender, not counted: a freshly started server's first post fills its
    caches (templates, the room's queries), and of ten messages the slowest is the p99."""
    await measure(Tracker("warm", len(members)), members, senders, plan.fan_rate, len(senders), drain=10)


def senders_of(server: Server, plan: Plan) -> list[str]:
    """Session keys for Parley's signed-in senders; the others need none."""
    return server.sessions[: plan.rate_senders] if server.kind == "parley" else [""] * plan.rate_senders


async def latency_rows(size: int, members: list[Member], senders: list[Member], plan: Plan) -> Rows:
    tracker = Tracker(f"f{size}", len(members))
    await measure(tracker, members, senders, plan.fan_rate, plan.fan_messages, drain=10)
    latencies = tracker.latencies()
    if not latencies:
        failed = Figure.fail(f"no message reached all {size}; {loss_note(tracker)}")
        return {f"fan{size}_p50": failed, f"fan{size}_p99": failed}
    note = loss_note(tracker)
    return {
        f"fan{size}_p50": Figure(statistics.median(latencies) * 1000, "ms", note),
        f"fan{size}_p99": Figure(percentile(latencies, 0.99) * 1000, "ms", note),
    }


def loss_note(tracker: Tracker) -> str:
    problems = {"lost": tracker.lost(), "doubled": tracker.doubles, "out of order": tracker.reordered}
    return ", ".join(f"{count} {what}" for what, count in problems.items() if count)


async def measure(
    tracker: Tracker, receivers: list[Member], senders: list[Member], rate: float, count: int, drain: float
) -> float:
    """Send `count` messages round-robin at `rate` per second, wait for them all; the rate achieved."""
    for member in receivers:
        member.tracker = tracker
    started = time.perf_counter()
    try:
        for number in range(count):
            await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
            sender, seq = number % len(senders), number // len(senders)
            tracker.sending(sender, seq)
            await senders[sender].send(tracker.text(sender, seq))
        sending = time.perf_counter() - started
        await wait_until(tracker.complete, drain)
    finally:
        for member in receivers:
            member.tracker = None
    return count / max(sending, 1 / rate) if count > 1 else rate


async def sustained(
    server: Server, members: list[Member], senders: list[Member], plan: Plan
) -> tuple[Figure, Figure]:
    """Double the rate until a step loses, doubles or reorders a message, or its p99 reaches 1 s;
    then halve the gap between the best rate that passed and the first that failed (geometrically)
    plan.refinements times, so that a figure is within about 10% of the true one, not a factor of 2.
    Also the server's CPU time per delivery in that best step."""
    best: tuple[float, float, float, float] | None = None  # (rate tried, achieved, p99, CPU s per delivery)
    failed: tuple[float, str] | None = None  # (rate, what went wrong)
    for rate in plan.rates:
        outcome = await sustained_step(server, members, senders, plan, rate)
        if isinstance(outcome, str):
            failed = (rate, outcome)
            break
        best = (rate, *outcome)
    for _ in range(plan.refinements if best and failed else 0):
        assert best and failed  # the loop runs only when both are known
        rate = round(math.sqrt(best[0] * failed[0]))
        if rate in (best[0], failed[0]) or any(member.reader.done() for member in members):
            break  # the rates met, or a socket was closed: the steps after would not be like the first
        outcome = await sustained_step(server, members, senders, plan, rate)
        if isinstance(outcome, str):
            failed = (rate, outcome)
        else:
            best = (rate, *outcome)
    await wait_idle(server)
    stopped = f"at {failed[0]:.0f} msg/s: {failed[1]}" if failed else "every rate tried passed"
    if best is None:
        return Figure.fail(stopped), Figure.fail(stopped)
    _rate, achieved, p99, cpu = best
    note = f"{achieved:.0f} msg/s, p99 {p99 * 1000:.0f} ms; {stopped}"
    return Figure(achieved * len(members), "/s", note), Figure(cpu * 1e6, "µs")


async def cpu_at_fixed_rate(
    server: Server, members: list[Member], senders: list[Member], plan: Plan
) -> Figure:
    """Server CPU per delivery at one rate for every column: how the cost of a delivery grows with
    the number of processes, which a 2-core machine cannot show as throughput."""
    outcome = await sustained_step(server, members, senders, plan, plan.fixed_rate)
    if isinstance(outcome, str):
        return Figure.fail(f"at {plan.fixed_rate:.0f} msg/s: {outcome}")
    achieved, p99, cpu = outcome
    return Figure(cpu * 1e6, "µs", f"{achieved:.0f} msg/s, p99 {p99 * 1000:.0f} ms")


async def sustained_step(
    server: Server, members: list[Member], senders: list[Member], plan: Plan, rate: float
) -> tuple[float, float, float] | str:
    """One rate for plan.step_seconds: (rate achieved, p99, server CPU seconds per delivery), or
    what went wrong."""
    tracker = Tracker(f"r{rate:.0f}", len(members))
    cpu_before = server.cpu_seconds()
    count = int(rate * plan.step_seconds)
    achieved = await measure(tracker, members, senders, rate, count, drain=1.5)
    cpu = (server.cpu_seconds() - cpu_before) / max(1, count * len(members))
    latencies = tracker.latencies()
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    problems = loss_note(tracker) or (f"p99 {p99:.2f} s" if p99 >= 1 else "")
    await quiet(members, timeout=5)
    if problems:
        await wait_idle(server)  # the backlog of a failed step must not weigh on the next
        return problems
    return achieved, p99, cpu


# Posting ---------------------------------------------------------------------------------


async def posting(server: Server, plan: Plan) -> Rows:
    """16 signed-in senders, each waiting for its acknowledgement before the next post."""
    room = room_of(server, "post")
    sessions = server.sessions[: plan.senders] if server.kind == "parley" else [""] * plan.senders
    senders = [Member(server, room, index, session) for index, session in enumerate(sessions)]
    await opened(senders, 30)
    acked: list[str] = []
    refused: list[str] = []
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                post_until(sender, index, started + plan.posting_seconds, acked, refused)
                for index, sender in enumerate(senders)
            )
        )
    finally:
        await close_all(senders)
    rate = len(acked) / (time.perf_counter() - started)
    # Server CPU per acknowledged post (every server process, /proc): unlike the rate, it holds
    # when other work shares the core.
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / max(1, len(acked))
    note = await stored_note(server, room, acked) + (f", {len(refused)} refused" if refused else "")
    note += f", {cpu_ms:.2f} ms CPU per post"
    return {"posting": Figure(rate, "/s", note)}


async def post_until(
    sender: Member, index: int, deadline: float, acked: list[str], refused: list[str]
) -> None:
    seq = 0
    while time.perf_counter() < deadline:
        text = f"post-{index}-{seq}~"
        (acked if await post(sender, text, timeout=30) else refused).append(text)
        seq += 1


async def stored_note(server: Server, room: str, acked: list[str]) -> str:
    """Parley: is every acknowledged post stored exactly once?"""
    if server.kind != "parley":
        return f"{len(acked)} echoed"
    stored = (await asyncio.to_thread(run_parley_db, server.env, "count", {"room": room, "prefix": "post-"}))[
        "stored"
    ]
    missing = sum(1 for text in acked if stored.get(text, 0) == 0)
    doubled = sum(1 for text in acked if stored.get(text, 0) > 1)
    if missing or doubled:
        return f"{len(acked)} acked: {missing} not stored, {doubled} stored twice"
    return f"all {len(acked)} stored once"


# Pages -----------------------------------------------------------------------------------


async def pages(server: Server, plan: Plan) -> Rows:
    """wrk at 16 connections with one signed-in session, gzip accepted as browsers do."""
    base = f"http://127.0.0.1:{server.ports[0]}"
    return {
        "page": await wrk_figure(server, f"{base}/rooms/{room_of(server, 'page')}/", plan),
        "list": await wrk_figure(server, f"{base}/", plan),
        "older": await wrk_figure(server, await load_older_url(server), plan, HTMX),
    }


HTMX = {"HX-Request": "true"}
LOAD_OLDER = re.compile(r'class="load-older" hx-get="([^"]+)"')


async def load_older_url(server: Server) -> str:
    """What "Load older messages" fetches from the room page of a room with more than a page."""
    base = f"http://127.0.0.1:{server.ports[0]}"
    page, _ = await asyncio.to_thread(fetch, f"{base}/rooms/{room_of(server, 'older')}/", server.sessions[-1])
    found = LOAD_OLDER.search(page.decode())
    if found is None:
        raise RuntimeError("the older room's page has no Load older link")
    return base + html.unescape(found.group(1))


async def wrk_figure(server: Server, url: str, plan: Plan, extra: dict[str, str] | None = None) -> Figure:
    session = server.sessions[-1]
    body, encoding = await asyncio.to_thread(fetch, url, session, True, extra)
    headers = ["Cookie: sessionid=" + session, *(f"{name}: {value}" for name, value in (extra or {}).items())]
    requests, p99, _total = await run_wrk(url, plan.wrk_seconds, headers)
    size = f"{len(body) / 1000:.0f} KB {'gzipped' if encoding == 'gzip' else 'uncompressed'}"
    return Figure(requests, "/s", f"p99 {p99:.0f} ms, {size}")


# wrk's way to POST a body of its own each time (one wrk thread, so the counter is unique).
BOT_POST_SCRIPT = """
wrk.method = "POST"
local sent = 0
request = function()
  sent = sent + 1
  return wrk.format(nil, nil, nil, "bot-post~" .. sent .. " build passed")
end
"""
CONNECTIONS = 16


async def bot_posting(server: Server, plan: Plan) -> Rows:
    """wrk at CONNECTIONS (16) POSTing as one bot through the JSON API, each answer a 201; then every
    post checked stored once (wrk counts the answers it read: up to 16 more may be stored)."""
    room = room_of(server, "bot")
    url = f"http://127.0.0.1:{server.ports[0]}/api/rooms/{room}/messages"
    script = server.log.with_name("bot_post.lua")
    script.write_text(BOT_POST_SCRIPT)
    headers = [f"Authorization: Bearer {server.bot_key}", "Content-Type: text/plain"]
    rate, p99, answered = await run_wrk(url, plan.wrk_seconds, headers, script=str(script))
    result = await asyncio.to_thread(
        run_parley_db, server.env, "count", {"room": room, "prefix": "bot-post~"}
    )
    stored, doubled = len(result["stored"]), sum(1 for n in result["stored"].values() if n > 1)
    if answered <= stored <= answered + CONNECTIONS and not doubled:
        note = f"{answered} answered, each stored once"
    else:
        note = f"{answered} answered, {stored} stored, {doubled} twice"
    return {"bot_posting": Figure(rate, "/s", f"p99 {p99:.0f} ms; {note}")}


async def run_wrk(url: str, seconds: int, headers: list[str], script: str = "") -> tuple[float, float, int]:
    """Requests per second, p99 latency in ms, and requests completed; every answer a 2xx or 3xx."""
    pin = ["taskset", "-c", str(CLIENT_CORE)] if can_pin() else []
    command = [
        *pin,
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        *(["-s", script] if script else []),
    ]
    for header in [*headers, "Accept-Encoding: gzip"]:
        command += ["-H", header]
    process = await asyncio.create_subprocess_exec(*command, url, stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), seconds + 30)
    text = output.decode()
    requests = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    total = re.search(r"(\d+) requests in", text)
    if not requests or not p99 or not total:
        raise RuntimeError(f"unreadable wrk output: {text[-200:]}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} error responses")
    return float(requests.group(1)), float(p99.group(1)) * scale, int(total.group(1))


def full_column(server: Server) -> bool:
    """Every row, but for the four- and eight-process columns: on two cores they can show how
    the CPU per delivery grows with processes (fan_out), not what more cores would serve."""
    return len(server.commands) <= 2


Scenario = Callable[[Server, Plan], Awaitable[Rows]]
# (rows it fills, the scenario, which servers it makes sense for)
SCENARIOS: list[tuple[list[str], Scenario, Callable[[Server], bool]]] = [
    (["joins", "storm"], joins, full_column),
    (["memory"], idle_memory, full_column),
    (
        [
            *("fan10_p50", "fan10_p99", "fan100_p50", "fan100_p99", "cpu_fixed", "sustained", "cpu_delivery"),
            *("fan500_p50", "fan500_p99"),
        ],
        fan_out,
        lambda server: True,
    ),
    (["posting"], posting, full_column),
    # Pages are Parley's alone; the second process would serve them exactly like the first.
    (["page", "list", "older"], pages, lambda server: server.key == "p1"),
    (["bot_posting"], bot_posting, lambda server: server.key == "p1"),
]
