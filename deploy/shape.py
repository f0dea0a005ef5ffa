"""Parley's production shape on one machine: `python -m deploy.shape up|down|status|restart`.

HAProxy terminates TLS (a self-signed certificate) in front of N daphne processes, all under one
supervisord with PostgreSQL and Redis, run from the very files an operator copies (deploy/haproxy.cfg,
deploy/supervisord.conf, deploy/supervisor/*.conf): this module only fills in their variables with
paths in its folder (`.deploy/` by default) and loopback ports. Tests drive it through `Shape`.
"""

import argparse
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from deploy.processes import SUPERVISORD_CONF, Processes, alive, gone, healthy, wait
from testsupport.servers import free_port
from testsupport.with_postgres import as_server_user, postgres_bin

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
LOCAL_PROGRAMS = DEPLOY / "supervisor" / "local.conf"
MAX_PROCESSES = 8  # server lines in deploy/haproxy.cfg
# Room above CHAT_UPLOAD_MAX_BYTES for the multipart envelope and the caption: a file Parley would
# take always passes the proxy, and Parley answers anything up to the cap with its exact size.
BODY_CAP_MARGIN = 64 * 1024
DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Layout:
    """What a shape was brought up with (kept in its folder while it runs)."""

    https_port: int
    http_port: int
    processes: int
    env: dict[str, str]
    tunnel_timeout: str
    ping_interval: float
    first_port: int  # of the daphne processes, one port each in a row
    pg_port: int
    redis_port: int


class Shape:
    """The local production shape in `folder`; `up()` starts it and `down()` leaves no process.

    A shape that is up keeps its ports in folder/shape.json, so a later `Shape(folder)` (e.g. the
    `down` command) drives the running one.
    """

    def __init__(
        self,
        folder: Path,
        *,
        https_port: int = 8443,
        http_port: int = 8080,
        processes: int = 2,
        env: dict[str, str] | None = None,
        tunnel_timeout: str = "8h",
        ping_interval: float = 20.0,
    ) -> None:
        if not 1 <= processes <= MAX_PROCESSES:
            raise ValueError(f"processes must be 1..{MAX_PROCESSES} (deploy/haproxy.cfg's server lines)")
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._settings_file.exists() and self._supervisord_pid() is not None:
            self.settings = Layout(**json.loads(self._settings_file.read_text()))
        else:
            self.settings = Layout(
                https_port=https_port,
                http_port=http_port,
                processes=processes,
                env=env or {},
                tunnel_timeout=tunnel_timeout,
                ping_interval=ping_interval,
                first_port=_consecutive_free_ports(processes),
                pg_port=free_port(),
                redis_port=free_port(),
            )
        self.https_port, self.http_port = self.settings.https_port, self.settings.http_port
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.pg_data = self._pg_data_folder()
        self.env = self._parley_env()
        self.control = Processes({**self.env, **self._deploy_env()})

    # The environment ---------------------------------------------------------------------------

    def _parley_env(self) -> dict[str, str]:
        """What the daphne processes (and manage.py) run with: production settings, local places."""
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        origins = f"{self.url},https://localhost:{self.https_port}"
        env |= {
            "DJANGO_SETTINGS_MODULE": "site_config.settings",
            "DEBUG": "false",
            "SECRET_KEY": self._secret_key(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": origins,
            "DATABASE_URL": f"postgres://parley@127.0.0.1:{self.settings.pg_port}/postgres",
            "REDIS_URL": f"redis://127.0.0.1:{self.settings.redis_port}/0",
            "BEHIND_PROXY": "true",
            "CLIENT_IP_HEADER": "X-Forwarded-For",
            "STATIC_ROOT": str(self.folder / "static"),
            "MEDIA_ROOT": str(self.folder / "media"),
            "CHAT_SITE_URL": self.url,
            # No mail server here: emails land as files, one per message.
            "EMAIL_BACKEND": "file",
            "EMAIL_FILE_PATH": str(self.folder / "emails"),
            "PYTHONUNBUFFERED": "1",
        }
        return env | self.settings.env

    def _deploy_env(self) -> dict[str, str]:
        """The variables deploy/haproxy.cfg and deploy/supervisor*.conf expand."""
        first, count = self.settings.first_port, self.settings.processes
        upload_max = int(self.env.get("CHAT_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES))
        as_root = os.geteuid() == 0
        return {
            "PARLEY_STATE": str(self.folder),
            "PARLEY_HOME": str(REPO),
            "PARLEY_PYTHON": sys.executable,
            "PARLEY_USER": pwd.getpwuid(os.geteuid()).pw_name,
            "PARLEY_PROCESSES": str(count),
            "PARLEY_FIRST_PORT": str(first),
            "DAPHNE_PING_INTERVAL": f"{self.settings.ping_interval:g}",
            "PARLEY_SUPERVISOR_EXTRA": str(LOCAL_PROGRAMS),
            "PARLEY_PG_BIN": str(Path(postgres_bin("postgres")).parent),
            "PARLEY_PG_DATA": str(self.pg_data),
            "PARLEY_PG_USER": "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name,
            "PARLEY_PG_PORT": str(self.settings.pg_port),
            "PARLEY_REDIS_PORT": str(self.settings.redis_port),
            "PARLEY_HTTPS_BIND": f"127.0.0.1:{self.https_port}",
            "PARLEY_HTTP_BIND": f"127.0.0.1:{self.http_port}",
            "PARLEY_HTTPS_PORT": str(self.https_port),
            "PARLEY_CERT": str(self.folder / "tls" / "parley.pem"),
            "PARLEY_HAPROXY_SOCKET": str(self._haproxy_socket),
            "PARLEY_PAGES": str(self.folder / "pages"),
            "PARLEY_BODY_CAP": str(upload_max + BODY_CAP_MARGIN),
            "PARLEY_TUNNEL_TIMEOUT": self.settings.tunnel_timeout,
            **{f"DAPHNE_PORT_{n + 1}": str(first + n) for n in range(count)},
        }

    def _secret_key(self) -> str:
        path = self.folder / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def _settings_file(self) -> Path:
        return self.folder / "shape.json"

    @property
    def _haproxy_socket(self) -> Path:
        return self.folder / "haproxy.sock"

    # Up and down -------------------------------------------------------------------------------

    def up(self) -> None:
        """PostgreSQL, Redis, the certificate, migrations, static files and Parley's proxy pages,
        then supervisord with daphne x N, the worker and HAProxy; returns once every process is UP
        in HAProxy, https://.../healthz answers ok through it and the worker is RUNNING."""
        if self._supervisord_pid() is not None:
            raise RuntimeError(f"the shape in {self.folder} is up already: `down` it first")
        taken = [port for port in (self.https_port, self.http_port) if not _free(port)]
        if taken:
            raise RuntimeError(
                f"port {', '.join(map(str, taken))} is taken: choose others (--https-port, --http-port)"
            )
        (self.folder / "logs").mkdir(exist_ok=True)
        self._make_certificate()
        self._init_database()
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.manage("proxy_pages", str(self.folder / "pages"))
        self._settings_file.write_text(json.dumps(asdict(self.settings)))
        try:
            self._run([_bin("supervisord"), "-c", str(SUPERVISORD_CONF)])
            wait(lambda: _listening(self.settings.pg_port), 60, "PostgreSQL to listen")
            self.manage("migrate", "--noinput", "--verbosity", "0")
            self.control.wait_in_rotation(self.processes(), 60)
            # The worker exits (and supervisor starts it again) until migrate has made its table.
            wait(lambda: " RUNNING " in self.supervisorctl("status", "worker"), 60, "the worker to run")
            wait(lambda: healthy(self.url + "/healthz"), 30, "/healthz through the proxy")
        except TimeoutError as timeout:
            report = self._log_tails()
            self.down()
            raise TimeoutError(f"{timeout}\n{report}") from timeout
        except BaseException:
            self.down()
            raise

    def _log_tails(self, lines: int = 5) -> str:
        """supervisor's view and the last lines of each log: why a program did not come up."""
        tails = [self.supervisorctl("status")]
        for log in sorted((self.folder / "logs").glob("*.log")):
            tails.append(
                f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            )
        return "\n".join(tails)

    def down(self) -> None:
        """Stop every program, then supervisord itself; anything still alive gets SIGKILL."""
        supervisord = self._supervisord_pid()
        if supervisord is not None:
            children = self._program_pids()
            self.supervisorctl("shutdown")
            wait(partial(gone, supervisord), 90, "supervisord to exit")
            for pid in children:
                wait(partial(gone, pid), 10, f"process {pid} to exit", kill=pid)
        self._settings_file.unlink(missing_ok=True)
        if self.pg_data.parent != self.folder:  # a throwaway cluster outside the folder (as root)
            shutil.rmtree(self.pg_data.parent, ignore_errors=True)

    def _make_certificate(self) -> None:
        """Self-signed for 127.0.0.1 and localhost; HAProxy takes certificate and key in one file."""
        tls = self.folder / "tls"
        pem = tls / "parley.pem"
        if pem.exists():
            return
        tls.mkdir(mode=0o700, exist_ok=True)
        key, cert = tls / "key.pem", tls / "cert.pem"
        self._run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(key), "-out", str(cert),
            ]
        )  # fmt: skip
        pem.write_bytes(cert.read_bytes() + key.read_bytes())
        pem.chmod(0o600)

    def _pg_data_folder(self) -> Path:
        """folder/postgres, unless PostgreSQL's account (as root: `postgres`) cannot reach it, e.g.
        under pytest's private tmp folders: then a folder of its own in /tmp, named after the shape's
        and removed by down()."""
        if os.geteuid() != 0 or _postgres_can_enter(self.folder):
            return self.folder / "postgres"
        name = hashlib.sha256(str(self.folder).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"parley-deploy-pg-{name}" / "data"

    def _init_database(self) -> None:
        if (self.pg_data / "PG_VERSION").exists():
            return
        self.pg_data.parent.mkdir(mode=0o700, exist_ok=True)
        self.pg_data.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own account owns the cluster
            for path in {self.pg_data, self.pg_data.parent} - {self.folder}:
                shutil.chown(path, "postgres", "postgres")
        initdb = [
            postgres_bin("initdb"),
            "-D",
            str(self.pg_data),
            "-U",
            "parley",
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        self._run(as_server_user(initdb))

    # Supervisor and HAProxy --------------------------------------------------------------------

    def processes(self) -> list[str]:
        """Supervisor's names of the daphne processes, e.g. "daphne:daphne_8001"."""
        return self.control.names()

    def port(self, name: str) -> int:
        return self.control.port(name)

    def pid(self, name: str) -> int:
        return self.control.pid(name)

    def supervisorctl(self, *args: str) -> str:
        """One supervisorctl command against this shape's supervisord; its output."""
        return self.control.supervisorctl(*args)

    def haproxy(self, command: str) -> str:
        """One command on HAProxy's runtime API (admin level), e.g. "show stat"; its answer."""
        return self.control.haproxy(command)

    def manage(self, *args: str) -> str:
        """manage.py with this shape's environment (e.g. createsuperuser); its output."""
        return self._run([sys.executable, "manage.py", *args], env=self.env)

    def connections(self) -> dict[str, int]:
        """Current sessions (websockets and requests) per daphne process, as HAProxy counts them."""
        return self.control.connections()

    def server_status(self) -> dict[str, str]:
        """HAProxy's view of each daphne process: "UP", "DOWN", "DRAIN", "MAINT", ..."""
        return self.control.server_status()

    def rolling_restart(self, on_step: Callable[[str], None] | None = None) -> None:
        """One process at a time: out of rotation in HAProxy (no new connections), SIGTERM (its
        sockets get 1011 and reconnect to the others), started again, /healthz ok on it, back in
        rotation and UP in HAProxy; only then the next (deploy/processes.py, as in production)."""
        self.control.rolling_restart(on_step)

    def print_status(self) -> int:
        """What `status` prints: supervisor's programs and HAProxy's view of each daphne; 1 if down."""
        if self._supervisord_pid() is None:
            print("down")
            return 1
        self.control.print_status()
        return 0

    def _supervisord_pid(self) -> int | None:
        try:
            pid = int((self.folder / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def _program_pids(self) -> list[int]:
        pids = []
        for line in self.supervisorctl("status").splitlines():
            words = line.replace(",", " ").split()
            if "pid" in words:
                pids.append(int(words[words.index("pid") + 1]))
        return pids

    def _run(self, command: list[str], env: dict[str, str] | None = None, check: bool = True) -> str:
        result = subprocess.run(
            command,
            cwd=REPO,
            env=env or {**self.env, **self._deploy_env()},
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr


def _bin(program: str) -> str:
    """A program of this virtualenv (supervisord, supervisorctl)."""
    return str(Path(sys.executable).parent / program)


def _consecutive_free_ports(count: int) -> int:
    """The first of `count` free loopback ports in a row (supervisor numbers processes by port)."""
    for _ in range(100):
        first = free_port()
        if first + count < 65536 and all(_free(port) for port in range(first + 1, first + count)):
            return first
    raise RuntimeError(f"no {count} free consecutive ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _postgres_can_enter(folder: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)], check=False)
    return probe.returncode == 0


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--folder", type=Path, default=REPO / ".deploy", help="state (default: .deploy/)")
    common.add_argument("--https-port", type=int, default=8443)
    common.add_argument("--http-port", type=int, default=8080)
    common.add_argument("--processes", type=int, default=2)
    parser = argparse.ArgumentParser(prog="python -m deploy.shape", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", parents=[common], help="bring it all up and print the URL")
    commands.add_parser("down", parents=[common], help="stop every process")
    commands.add_parser("status", parents=[common], help="supervisor's programs and HAProxy's view")
    commands.add_parser("restart", parents=[common], help="rolling restart, one process at a time")
    manage = commands.add_parser("manage", parents=[common], help="manage.py with the shape's environment")
    manage.add_argument("arguments", nargs=argparse.REMAINDER, help="manage.py's command and options")
    args = parser.parse_args(argv)
    shape = Shape(args.folder, https_port=args.https_port, http_port=args.http_port, processes=args.processes)
    if args.command == "up":
        shape.up()
        print(f"Parley is up at {shape.url}/ (a self-signed certificate: accept it once in the browser);")
        print(f"{shape.http_url}/ redirects there. Logs: {shape.folder / 'logs'}.")
        print("An admin account: python -m deploy.shape manage createsuperuser")
        print("Restart process by process: make deploy-restart. Stop it all: make deploy-down")
    elif args.command == "down":
        shape.down()
        print("Parley's shape is down: no process left.")
    elif args.command == "status":
        return shape.print_status()
    elif args.command == "restart":
        shape.rolling_restart(on_step=print)
    else:  # interactive (createsuperuser asks for a password): the terminal stays attached
        return subprocess.run(
            [sys.executable, "manage.py", *args.arguments], cwd=REPO, env=shape.env
        ).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
