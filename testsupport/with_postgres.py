"""Run a command against a throwaway PostgreSQL server: `python -m testsupport.with_postgres CMD...`.

Starts a fresh cluster on a free loopback port in a temporary folder, sets DATABASE_URL
for the command, and removes the cluster afterwards. PostgreSQL refuses to run as root,
so as root the server runs as the `postgres` system user.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from testsupport.servers import free_port


def postgres_bin(program: str) -> str:
    found = shutil.which(program) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))), None
    )
    if not found:
        raise SystemExit(
            "PostgreSQL is missing: run `make test`, which installs it (apt-get install postgresql)"
        )
    return found


def as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A throwaway cluster on a free loopback port that a test may stop and start again."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        data = self.folder / "data"
        initdb = [postgres_bin("initdb"), "-D", str(data), "-U", "parley", "--auth=trust", "-E", "UTF8"]
        subprocess.run(as_server_user(initdb), check=True, stdout=subprocess.DEVNULL)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F"
        log = str(self.folder / "log")
        self.pg_ctl = [postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w"]
        self.url = f"postgres://parley@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        subprocess.run(as_server_user([*self.pg_ctl, "start"]), check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in an outage."""
        subprocess.run(
            as_server_user([*self.pg_ctl, "-m", "fast", "stop"]), check=False, stdout=subprocess.DEVNULL
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(command: list[str]) -> int:
    folder = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    data = folder / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    initdb = [postgres_bin("initdb"), "-D", str(data), "-U", "parley", "--auth=trust", "-E", "UTF8"]
    subprocess.run(as_server_user(initdb), check=True, stdout=subprocess.DEVNULL)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -F"
    pg_ctl = [postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w"]
    subprocess.run(as_server_user([*pg_ctl, "start"]), check=True, stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "DATABASE_URL": f"postgres://parley@127.0.0.1:{port}/postgres"}
        print(f"PostgreSQL on 127.0.0.1:{port}: running {' '.join(command)}", flush=True)
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        subprocess.run(
            as_server_user([*pg_ctl, "-m", "fast", "stop"]), check=False, stdout=subprocess.DEVNULL
        )
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m testsupport.with_postgres COMMAND [ARGS...]")
    sys.exit(main(sys.argv[1:]))
