"""The four servers under test, each started here as its own process(es) on free loopback ports.

Servers run pinned to core 0 and the client to core 1 when the machine has two cores or more,
so that the client's work does not eat into the server's measured time. A server of several
processes gets one core per process (as it would in production); on a machine without a core to
spare, the client and Redis then run on whichever core is free, taking their share from the
servers, so the two-process column understates what more cores would give.
"""

import functools
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testsupport.servers import REPO, RedisServer, free_port, manage, production_like_env, stop, wait_for_port

SERVER_CORE, CLIENT_CORE = 0, 1
# Parley's flood control (5 per 5 s) would refuse a benchmark's posts, and its cap of 50 sockets
# per visitor address its thousands of guests from 127.0.0.1: both are tested elsewhere.
PARLEY_ENV = {
    "CHAT_FLOOD_MESSAGES": "1000000000",
    "CHAT_SOCKETS_PER_ADDRESS": "1000000",
    "CHAT_SOCKETS_PER_USER": "1000000",
    "LOG_LEVEL": "WARNING",
}


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command] if can_pin() else command


def server_core(process: int) -> int:
    """One core per process of a server, starting with the server core."""
    return (SERVER_CORE + process) % (os.cpu_count() or 1)


def client_cores(server: "Server") -> set[int]:
    """The client's core, unless the server's processes take every core: then any core."""
    cores = os.cpu_count() or 1
    if len(server.commands) >= cores:
        return set(range(cores))
    return {CLIENT_CORE}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One column of the table: one or more processes serving the same rooms."""

    key: str
    title: str
    kind: str  # "relay", "tutorial" or "parley": what the client sends and expects
    commands: list[list[str]]
    env: dict[str, str]
    log: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)  # signed-in senders' session keys (Parley)
    bot_key: str = ""  # a bot's API key (Parley), for the bot-posting row
    # Behind a proxy (deploy/shape.py): every socket goes to this "https://host:port" instead of a
    # process's port, with this TLS context (for a self-signed certificate).
    proxy_url: str = ""
    ssl_context: ssl.SSLContext | None = None

    broken: str = ""  # why the server could not be restarted; its remaining rows fail with this

    def start(self, timeout: float = 20.0) -> "Server":
        if not self.ports:
            self.ports = [free_port() for _ in self.commands]
        with open(self.log, "a") as log:
            for number, (command, port) in enumerate(zip(self.commands, self.ports, strict=True)):
                argv = pinned([arg.replace("{port}", str(port)) for arg in command], server_core(number))
                self.processes.append(
                    subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
                )
        for process, port in zip(self.processes, self.ports, strict=True):
            wait_for_port(port, process, timeout)
        return self

    def stop(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes = []

    def restart(self) -> None:
        """Drop whatever backlog the server still works through (a failure, hundreds of leaves)."""
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes = []
        self.ports = []  # fresh ports: the old ones may linger in TIME_WAIT or with dying connections
        try:
            self.start(timeout=60)
        except (RuntimeError, TimeoutError) as problem:
            self.broken = f"did not restart: {problem}"

    def rss_kib(self) -> int:
        return sum(rss_kib(process.pid) for process in self.processes)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def port_for(self, index: int) -> int:
        """Sockets are split evenly across the processes."""
        return self.ports[index % len(self.ports)]

    def origin_for(self, index: int) -> str:
        """Where socket `index`'s page came from: its process, or the proxy in front of them all."""
        return self.proxy_url or f"http://127.0.0.1:{self.port_for(index)}"


def daphne(app: str) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", app]


def relay(folder: Path) -> Server:
    command = [sys.executable, "-m", "bench.relay", "{port}"]
    return Server(
        "ceil", "ceiling: `websockets` relay", "relay", [command], dict(os.environ), folder / "relay.log"
    )


def daphne_relay(folder: Path) -> Server:
    command = daphne("bench.daphne_relay:application")
    env = dict(os.environ)
    return Server("dceil", "daphne ceiling: bare ASGI relay", "relay", [command], env, folder / "dceil.log")


def tutorial(folder: Path) -> Server:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.tutorial.settings"}
    return Server(
        "tut",
        "Channels tutorial",
        "tutorial",
        [daphne("bench.tutorial.asgi:application")],
        env,
        folder / "tutorial.log",
    )


def parley(folder: Path, processes: int, redis_url: str = "", redis_layer: str = "pubsub") -> Server:
    extra = PARLEY_ENV | ({"REDIS_URL": redis_url, "REDIS_CHANNEL_LAYER": redis_layer} if redis_url else {})
    env = production_like_env(folder, **extra)
    key = f"p{processes}" + ("core" if redis_layer == "core" else "")
    title = "Parley, 1 process, memory layer"
    if processes > 1:
        title = f"Parley, {processes} processes, Redis " + (
            "pub/sub layer" if redis_layer == "pubsub" else "core layer"
        )
    command = daphne("site_config.asgi:application")
    return Server(key, title, "parley", [command] * processes, env, folder / f"{key}.log")


def prepare_parley_db(server: Server, setup: dict) -> dict:
    """Migrate the shared SQLite file, collect static files, add senders, rooms and a bot: the
    senders' sessions and the bot's key."""
    manage(server.env, "migrate", "--noinput")
    manage(server.env, "collectstatic", "--noinput")
    return run_parley_db(server.env, "setup", setup)


def run_parley_db(env: dict[str, str], command: str, arguments: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.parley_db", command, json.dumps(arguments)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.parley_db {command} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class Fleet:
    """Every server of one run, sharing one temporary folder (and Parley's one SQLite file)."""

    def __init__(self, folder: Path, which: list[str], parley_setup: dict) -> None:
        self.folder = folder
        self.redis: RedisServer | None = None
        self.servers: list[Server] = []
        makers: dict[str, Callable[[], Server]] = {
            "ceil": lambda: relay(folder),
            "dceil": lambda: daphne_relay(folder),
            "tut": lambda: tutorial(folder),
            "p1": lambda: parley(folder, 1),
        }
        for processes in (2, 4, 8):  # 4 and 8 only when asked for: CPU per delivery as processes grow
            makers[f"p{processes}"] = functools.partial(self._parley_on_redis, processes)
        makers["p2core"] = lambda: parley(folder, 2, self._redis_url(), redis_layer="core")
        self.servers = [makers[key]() for key in which]
        self._prepare_parley(parley_setup)

    def _parley_on_redis(self, processes: int) -> Server:
        return parley(self.folder, processes, self._redis_url())

    def _redis_url(self) -> str:
        if self.redis is None:
            self.redis = RedisServer(self.folder)  # not pinned: see client_cores
        return self.redis.url

    def _prepare_parley(self, setup: dict) -> None:
        parleys = [server for server in self.servers if server.kind == "parley"]
        if parleys:
            made = prepare_parley_db(parleys[0], setup)
            for server in parleys:
                server.sessions, server.bot_key = made["sessions"], made["bot_key"]

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.redis:
            self.redis.stop()
