"""Page benchmark: the room page, the older-messages page and the room list under wrk.

Starts daphne as in production (DEBUG off, WhiteNoise, SQLite in WAL mode) pinned to core 0,
seeds a room with 120 messages of typical chat length (4 to 16 words), and runs `wrk -t1 -c16`
pinned to core 1 with a signed-in member's (or moderator's) session cookie and a browser's
Accept-Encoding ("older messages" is the request htmx makes for "Load older": HX-Request set).
Besides wrk's figures it reports the server's CPU time per request (user + system, from /proc),
which other work on this 2-core machine disturbs less than the rate.
With --baseline DIR, a second daphne serves the same database from another checkout of
Parley (e.g. `git archive <commit> | tar -x -C DIR`), and the two alternate round by round,
so every ratio compares figures taken in the same run.

    python -m bench.pages [--duration 8] [--rounds 3] [--baseline DIR] [--only "older messages"]
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.servers import cpu_seconds
from testsupport.servers import REPO, free_port, production_like_env, stop, wait_for_port

CLIENTS = 16
BROWSER_ENCODING = "gzip, deflate, br"
PIN_SERVER = ["taskset", "-c", "0"]
PIN_CLIENT = ["taskset", "-c", "1"]
APP = "site_config.asgi:application"

SEED = """
import random
from django.contrib.auth.models import User
from django.test import Client
from chat.models import Membership, Message, Role, Room
room, _ = Room.objects.get_or_create(slug="lobby", defaults={"name": "Lobby", "description": "Say hi"})
Room.objects.get_or_create(slug="garden", defaults={"name": "Garden", "description": "Plants"})
authors = [User.objects.get_or_create(username=f"writer{n}")[0] for n in range(6)]
member = User.objects.get_or_create(username="member")[0]
moderator = User.objects.get_or_create(username="moderator")[0]
Membership.objects.get_or_create(room=room, user=moderator, defaults={"role": Role.MODERATOR})
words = ("sure lunch meeting moved tomorrow afternoon anyone seen the latest build logs deploy went fine "
         "thanks looks good to me will check after coffee weekend plans rain again train delayed again "
         "pushed a fix for the login page review please ping me when you are back").split()
rng = random.Random(7)
if not room.messages.exists():
    Message.objects.bulk_create(
        Message(room=room, author=authors[n % 6], body=" ".join(rng.choices(words, k=rng.randint(4, 16))))
        for n in range(120)
    )
def cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value
newest = list(room.messages.order_by("-pk").values_list("pk", flat=True)[:50])[-1]
print(cookie(member), cookie(moderator), newest)
"""


@dataclass
class Target:
    name: str
    path: str
    session: str
    headers: tuple[str, ...] = ()


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float = float("nan")


def manage(env: dict[str, str], tree: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=tree, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


class PinnedDaphne:
    """daphne on core 0, serving the shared database from one checkout."""

    def __init__(self, tree: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        with open(log, "a") as output:
            self.process = subprocess.Popen(
                [*PIN_SERVER, sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), APP],
                cwd=tree,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def fetch(url: str, session: str, encoding: str | None, extra: tuple[str, ...] = ()) -> tuple[int, bytes]:
    headers = {"Cookie": f"sessionid={session}"} | dict(header.split(": ", 1) for header in extra)
    if encoding:
        headers["Accept-Encoding"] = encoding
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.status, response.read()


def page_bytes(url: str, session: str, extra: tuple[str, ...] = ()) -> tuple[int, int]:
    """Bytes on the wire without and with gzip accepted."""
    _, plain = fetch(url, session, None, extra)
    _, gzipped = fetch(url, session, "gzip", extra)
    return len(plain), len(gzipped)


def percentile_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, session: str, seconds: float, extra: tuple[str, ...] = (), pid: int = 0) -> Figures:
    headers = ["-H", f"Cookie: sessionid={session}", "-H", f"Accept-Encoding: {BROWSER_ENCODING}"]
    for header in extra:
        headers += ["-H", header]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    output = subprocess.run(
        [*PIN_CLIENT, "wrk", "-t1", f"-c{CLIENTS}", f"-d{round(seconds)}s", "--latency", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_used = cpu_seconds(pid) - cpu_before if pid else float("nan")
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk got error responses from {url}:\n{output}")
    requests = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None:
        raise RuntimeError(f"unreadable wrk output from {url}:\n{output}")
    rate = float(requests.group(1))
    total = re.search(r"(\d+) requests in", output)
    cpu_ms = 1000 * cpu_used / int(total.group(1)) if total and int(total.group(1)) else float("nan")
    return Figures(rate, percentile_ms(output, "50"), percentile_ms(output, "99"), cpu_ms)


def prepare(trees: dict[str, Path], folder: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """One database for every tree, static files collected per tree; returns envs and the seed."""
    envs = {}
    for label, tree in trees.items():
        env = production_like_env(folder, LOG_LEVEL="WARNING", STATIC_ROOT=str(folder / f"static-{label}"))
        env["PYTHONPATH"] = str(tree)
        manage(env, tree, "migrate", "--noinput")
        manage(env, tree, "collectstatic", "--noinput")
        envs[label] = env
    seeded = manage(envs["parley"], trees["parley"], "shell", "-c", SEED).split()[-3:]
    return envs, seeded


def median_figures(samples: list[Figures]) -> Figures:
    return Figures(
        statistics.median(s.requests_per_second for s in samples),
        statistics.median(s.p50_ms for s in samples),
        statistics.median(s.p99_ms for s in samples),
        statistics.median(s.cpu_ms_per_request for s in samples),
    )


def main(duration: float, rounds: int, baseline: Path | None, only: list[str]) -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    trees = {"parley": REPO} | ({"baseline": baseline} if baseline else {})
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    envs, (member, moderator, newest) = prepare(trees, folder)
    targets = [
        Target("room page, member", "/rooms/lobby/", member),
        Target("room page, moderator", "/rooms/lobby/", moderator),
        # What "Load older messages" fetches from the room page (its link's ?before=).
        Target("older messages", f"/rooms/lobby/messages/?before={newest}", member, ("HX-Request: true",)),
        # The same link followed without script: a whole page.
        Target("older, no script", f"/rooms/lobby/?before={newest}", member),
        Target("room list", "/", member),
    ]
    targets = [target for target in targets if not only or target.name in only]
    servers = {
        label: PinnedDaphne(tree, envs[label], folder / f"{label}.log") for label, tree in trees.items()
    }
    samples: dict[tuple[str, str], list[Figures]] = {}
    try:
        for target in targets:
            for server in servers.values():
                run_wrk(server.url(target.path), target.session, 1, target.headers)  # warm caches and imports
        for _ in range(rounds):
            for target in targets:
                for label, server in servers.items():
                    pid = server.process.pid
                    figures = run_wrk(server.url(target.path), target.session, duration, target.headers, pid)
                    samples.setdefault((target.name, label), []).append(figures)
        report(targets, servers, samples, rounds)
    finally:
        for server in servers.values():
            stop(server.process)
        shutil.rmtree(folder, ignore_errors=True)


def report(
    targets: list[Target],
    servers: dict[str, PinnedDaphne],
    samples: dict[tuple[str, str], list[Figures]],
    rounds: int,
) -> None:
    print(f"wrk -t1 -c{CLIENTS}, daphne on core 0, wrk on core 1, median of {rounds} rounds")
    columns = f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} {'bytes':>7} {'gzip':>7}"
    print(f"{'page':<22} {'server':<9} {columns}")
    for target in targets:
        for label, server in servers.items():
            figures = median_figures(samples[(target.name, label)])
            plain, gzipped = page_bytes(server.url(target.path), target.session, target.headers)
            print(
                f"{target.name:<22} {label:<9} {figures.requests_per_second:>7.0f} {figures.p50_ms:>7.1f}"
                f" {figures.p99_ms:>7.1f} {figures.cpu_ms_per_request:>10.2f} {plain:>7} {gzipped:>7}"
            )
        if "baseline" in servers:
            ours = median_figures(samples[(target.name, "parley")])
            theirs = median_figures(samples[(target.name, "baseline")])
            rate_ratio = ours.requests_per_second / theirs.requests_per_second
            cpu_ratio = theirs.cpu_ms_per_request / ours.cpu_ms_per_request
            print(f"{'':<22} {'ratio':<9} {rate_ratio:>6.2f}x {'':>15} {cpu_ratio:>9.2f}x less CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout of Parley to compare against")
    parser.add_argument("--only", action="append", default=[], help="a page to measure (repeatable)")
    arguments = parser.parse_args()
    main(arguments.duration, arguments.rounds, arguments.baseline, arguments.only)
