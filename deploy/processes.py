"""Parley's daphne processes as supervisor runs them and HAProxy balances them, in production and in
the local shape alike: `python -m deploy.processes status|restart`.

It reads the same variables as deploy/supervisord.conf and deploy/haproxy.cfg (PARLEY_STATE,
PARLEY_FIRST_PORT, PARLEY_PROCESSES, PARLEY_HAPROXY_SOCKET) from the environment. In production,
as root (HAProxy's admin socket is root's only; root may use supervisor's socket too):

    sudo sh -c 'set -a; . /etc/parley/parley.env; . /etc/default/haproxy; \\
        /srv/parley/app/.venv/bin/python -m deploy.processes restart'
"""

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

SUPERVISORD_CONF = Path(__file__).resolve().parent / "supervisord.conf"
BACKEND = "daphne"  # HAProxy's backend and supervisor's group (deploy/supervisor/parley.conf)
WORKER = "worker"  # supervisor's program for the background worker (the same file)


class Processes:
    """The daphne processes of one deployment, driven through supervisorctl and HAProxy's runtime API."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)  # supervisorctl expands deploy/supervisord.conf with it
        self.first_port = int(env["PARLEY_FIRST_PORT"])
        self.count = int(env["PARLEY_PROCESSES"])
        self.haproxy_socket = Path(env["PARLEY_HAPROXY_SOCKET"])

    def names(self) -> list[str]:
        """Supervisor's names of the daphne processes, e.g. "daphne:daphne_8001"."""
        return [f"{BACKEND}:daphne_{port}" for port in range(self.first_port, self.first_port + self.count)]

    def port(self, name: str) -> int:
        return int(name.rsplit("_", 1)[1])

    def pid(self, name: str) -> int:
        pid = int(self.supervisorctl("pid", name).strip() or 0)
        if pid <= 0:
            raise RuntimeError(f"{name} is not running")
        return pid

    def supervisorctl(self, *args: str) -> str:
        """One supervisorctl command against this deployment's supervisord; its output."""
        command = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(SUPERVISORD_CONF), *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    def haproxy(self, command: str) -> str:
        """One command on HAProxy's runtime API (admin level), e.g. "show stat"; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(str(self.haproxy_socket))
            connection.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def connections(self) -> dict[str, int]:
        """Current sessions (websockets and requests) per daphne process, as HAProxy counts them."""
        return {name: int(row["scur"]) for name, row in self._servers().items()}

    def server_status(self) -> dict[str, str]:
        """HAProxy's view of each daphne process: "UP", "DOWN", "DRAIN", "MAINT", ..."""
        return {name: row["status"] for name, row in self._servers().items()}

    def rolling_restart(self, on_step: Callable[[str], None] | None = None) -> None:
        """One process at a time: out of rotation in HAProxy (no new connections), SIGTERM (its
        sockets get 1011 and reconnect to the others), started again, /healthz ok on it, back in
        rotation and UP in HAProxy; only then the next. Then the background worker."""
        say = on_step or _quiet
        for name in self.names():
            # Never the last one serving: the others must be in rotation to take its users.
            self.wait_in_rotation([other for other in self.names() if other != name], 30)
            server = f"{BACKEND}/{name.split(':')[1]}"
            say(f"{name}: draining")
            self.haproxy(f"set server {server} state drain")
            say(f"{name}: stopping (SIGTERM)")
            _expect(self.supervisorctl("stop", name), ("stopped", "not running"), name)
            _expect(self.supervisorctl("start", name), ("started",), name)
            wait(partial(healthy, f"http://127.0.0.1:{self.port(name)}/healthz"), 30, f"{name} /healthz")
            self.haproxy(f"set server {server} state ready")
            self.wait_in_rotation([name], 30)
            say(f"{name}: back, pid {self.pid(name)}")
        self._restart_worker(say)

    def _restart_worker(self, say: Callable[[str], None]) -> None:
        """Last, the background worker, so it runs the new code too: SIGTERM lets it finish the task
        in hand; queued tasks wait in the database meanwhile, so nobody notices."""
        say(f"{WORKER}: restarting")
        answer = self.supervisorctl("restart", WORKER)
        if "no such process" in answer:
            say(f"{WORKER}: not in supervisor's configuration yet (parley-ctl reread, then update)")
            return
        _expect(answer, ("started",), WORKER)
        say(f"{WORKER}: back, pid {self.pid(WORKER)}")

    def wait_in_rotation(self, names: list[str], timeout: float) -> None:
        """Until HAProxy sees each of `names` UP (its checks passed, in rotation)."""

        def all_up() -> bool:
            try:
                status = self.server_status()
            except OSError:  # HAProxy not listening yet
                return False
            return all(status.get(name) == "UP" for name in names)

        wait(all_up, timeout, f"HAProxy to see {', '.join(names)} UP")

    def print_status(self) -> None:
        print(self.supervisorctl("status"), end="")
        for name, status in self.server_status().items():
            print(f"HAProxy: {name} {status}")

    def _servers(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the daphne backend's servers, by supervisor's process name."""
        lines = self.haproxy("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            f"{BACKEND}:{row['svname']}": row
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }


def healthy(url: str) -> bool:
    """GET url answers 200 "ok" (over HTTPS too, trusting a self-signed certificate)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as answer:
            return answer.status == 200 and answer.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a child of ours not reaped yet) is gone for every purpose here.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def gone(pid: int) -> bool:
    return not alive(pid)


def wait(ready: Callable[[], bool], timeout: float, what: str, kill: int | None = None) -> None:
    """Until ready() (polled every 0.1 s); after `timeout`, SIGKILL to `kill` or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    if kill is not None:
        os.kill(kill, signal.SIGKILL)
        return
    raise TimeoutError(f"waited {timeout:g} s for {what}")


def _expect(answer: str, words: tuple[str, ...], name: str) -> None:
    if not any(word in answer for word in words):
        raise RuntimeError(f"supervisorctl on {name}: {answer.strip()}")


def _quiet(step: str) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.processes", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["status", "restart"])
    args = parser.parse_args(argv)
    processes = Processes(os.environ)
    if args.command == "status":
        processes.print_status()
    else:
        processes.rolling_restart(on_step=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
