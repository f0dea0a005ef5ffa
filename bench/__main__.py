"""`make bench`: every server started here, the same client for all, one markdown table.

    python -m bench [--quick] [--servers ceil,dceil,tut,p1,p2,p4,p8]

Columns: a raw `websockets` relay (the ceiling), the same relay as a bare ASGI app on daphne (the
daphne ceiling: what Parley could reach while it keeps daphne), the Channels tutorial's consumer on
daphne, Parley in one daphne process (in-memory layer), Parley in two daphne processes sharing
Redis. Each figure also shows its ratio to the tutorial and to both ceilings measured in the same run.
"""

import argparse
import asyncio
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.scenarios import QUICK, SCENARIO_ROOMS, SCENARIOS, Figure, Plan, guarded, wait_idle
from bench.servers import CLIENT_CORE, Fleet, Server, can_pin, client_cores

BASELINES = ("tut", "ceil", "dceil")
WRK_SCENARIOS = ("pages", "bot_posting")  # need wrk, which `make test` does not install
ALL_SERVERS = ["ceil", "dceil", "tut", "p1", "p2", "p4", "p8"]


SCENARIO_NAMES = [scenario.__name__ for _rows, scenario, _applies in SCENARIOS]


def row_titles(plan: Plan) -> dict[str, str]:
    titles = {
        "joins": f"{plan.joins} sockets join one room (Parley: until each has its history)",
        "memory": (
            f"idle memory per open socket: RSS growth from {plan.idle_sockets // 5:,}"
            f" to {plan.idle_sockets:,} open in one room"
        ),
    }
    for size in plan.fan_sizes:
        titles |= {f"fan{size}_{p}": f"send → last of {size} members, {p}" for p in ("p50", "p99")}
    titles |= {
        "cpu_fixed": (
            f"server CPU per delivery at {plan.fixed_rate:.0f} msg/s into 100 members"
            " (the same load for every column; every server process, from /proc)"
        ),
        "sustained": "most deliveries/s at 100 members, zero loss, p99 < 1 s",
        "cpu_delivery": "server CPU per delivery at that rate (every server process, from /proc)",
        "posting": f"posting: {plan.senders} signed-in senders, acknowledged posts/s",
        "storm": f"reconnect storm: {plan.joins} sockets drop and come back",
        "page": f"HTTP room page, {plan.page_messages} messages, 16 clients (Parley only)",
        "list": "HTTP room list, 16 clients (Parley only)",
        "older": "HTTP older messages (?before=), 16 clients (Parley only)",
        "bot_posting": "bot API posting: 16 HTTP clients, one bot key, 201s/s (Parley only)",
    }
    order = [
        "joins",
        "memory",
        *(key for key in titles if key.startswith("fan")),
        "cpu_fixed",
        "sustained",
        "cpu_delivery",
        "posting",
    ]
    return {key: titles[key] for key in [*order, "storm", "page", "list", "older", "bot_posting"]}


def amount(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "µs":
        return f"{value:.1f} µs" if value < 10 else f"{value:.0f} µs"
    return f"{value:.1f} {unit}"


def cell(figure: Figure | None, baselines: dict[str, Figure | None], key: str) -> str:
    if figure is None:
        return "—"
    if figure.failed:
        return f"failed: {figure.failed}"
    assert figure.value is not None  # only a failed figure lacks a value
    ratios = [
        f"{figure.value / base.value:.2g}× {name}"  # noqa: RUF001
        for name, base in baselines.items()
        if name != key and base and base.value and not base.failed
    ]
    text = amount(figure.value, figure.unit) + (f" ({', '.join(ratios)})" if ratios else "")
    return text + (f"; {figure.note}" if figure.note else "")


def table(servers: list[Server], results: dict[str, dict[str, Figure]], plan: Plan) -> str:
    lines = [
        "| | " + " | ".join(server.title for server in servers) + " |",
        "|---" * (len(servers) + 1) + "|",
    ]
    for row, title in row_titles(plan).items():
        cells = [
            cell(results[server.key].get(row), baselines_of(server, row, results), server.key)
            for server in servers
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baselines_of(server: Server, row: str, results: dict[str, dict[str, Figure]]) -> dict[str, Figure | None]:
    """The tutorial and the ceiling; for Parley on several processes, Parley on one as well."""
    names = [*BASELINES, *(["p1"] if server.kind == "parley" and server.key != "p1" else [])]
    return {name: results.get(name, {}).get(row) for name in names}


async def measure_server(server: Server, plan: Plan, only: set[str]) -> dict[str, Figure]:
    if can_pin():
        os.sched_setaffinity(0, client_cores(server))
    results: dict[str, Figure] = {}
    for rows, scenario, applies in SCENARIOS:
        if only and scenario.__name__ not in only:
            continue
        if server.broken:
            results |= {row: Figure.fail(server.broken) for row in rows}
        elif applies(server) and (plan.wrk_seconds or scenario.__name__ not in WRK_SCENARIOS):
            await wait_idle(server)
            started = time.perf_counter()
            results |= await guarded(server, rows, scenario(server, plan))
            took = time.perf_counter() - started
            print(f"  {server.key} {scenario.__name__}: {took:.1f} s", file=sys.stderr, flush=True)
            if server.kind == "parley" and scenario.__name__ in ("joins", "fan_out"):
                # Hundreds of leaves would follow, each re-sending the member list: not the next row's work.
                server.restart()
    return results


async def run(
    plan: Plan, which: list[str], folder: Path, only: set[str]
) -> tuple[list[Server], dict[str, dict[str, Figure]]]:
    rooms = [f"{key}-{name}" for key in which if key.startswith("p") for name in SCENARIO_ROOMS]
    fleet = Fleet(
        folder, which, {"senders": plan.senders, "rooms": rooms, "seeded": seeded_pages(which, plan)}
    )
    try:
        fleet.start()
        results = {server.key: await measure_server(server, plan, only) for server in fleet.servers}
        return fleet.servers, results
    finally:
        fleet.stop()


def seeded_pages(which: list[str], plan: Plan) -> dict[str, int]:
    """The room page's room has a page of messages; "Load older"'s two, so that one is left to load."""
    parleys = [key for key in which if key.startswith("p")]
    return {f"{key}-page": plan.page_messages for key in parleys} | {
        f"{key}-older": 2 * plan.page_messages for key in parleys
    }


def prepare_client() -> None:
    """Many sockets need many file descriptors; the client keeps to its own core."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CORE})


def machine() -> str:
    pinning = "servers on core 0, client on core 1" if can_pin() else "not pinned"
    if can_pin() and os.cpu_count() == 2:
        pinning += "; columns of 2+ processes: spread over both cores, client and Redis on either"
    when = time.strftime("%Y-%m-%d %H:%M")
    return f"{os.cpu_count()} cores ({pinning}), Python {platform.python_version()}, {when}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller numbers, about 2 minutes")
    parser.add_argument(
        "--servers",
        default=",".join(ALL_SERVERS),
        help=(
            "which columns, e.g. ceil,p1 (p2core: two processes on channels-redis's core layer;"
            " p4, p8: four and eight processes on Redis)"
        ),
    )
    parser.add_argument(
        "--only",
        default="",
        help="some scenarios, e.g. posting,fan_out (of: " + ", ".join(SCENARIO_NAMES) + ")",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs and database")
    arguments = parser.parse_args()
    plan = QUICK if arguments.quick else Plan()
    only = {name for name in arguments.only.split(",") if name}
    if only - set(SCENARIO_NAMES):
        parser.error(f"no such scenario: {', '.join(sorted(only - set(SCENARIO_NAMES)))}")
    prepare_client()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parley-bench-", delete=not arguments.keep) as folder:
        print(f"servers' logs and database in {folder}", file=sys.stderr)
        servers, results = asyncio.run(run(plan, arguments.servers.split(","), Path(folder), only))
    print(table(servers, results, plan))
    kind = "quick" if arguments.quick else "full"
    print(f"\n{machine()}; {kind} run took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
