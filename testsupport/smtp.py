"""A real SMTP server for the tests, on a loopback port, in a thread of the test's process.

It speaks just enough SMTP for Django's SMTP backend (smtplib): EHLO/HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT. A message counts as delivered when the server answers 250 to its DATA, as RFC 5321 has
it: a sender that disappears before that answer (kill -9) delivered nothing. Two ways to misbehave,
as real mail servers do:
- `hold_next()`: the next message's DATA is read but not answered until `release()`, so the sender is
  caught in the middle of sending it; `held` is set once it is, and `dropped` once the sender went
  away without its answer (that message is not delivered).
- `refuse(n)`: the next n messages are refused for now (451 to MAIL FROM).
"""

import email
import email.policy
import select
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Delivered:
    recipients: list[str]
    message: EmailMessage


@dataclass
class _State:
    delivered: list[Delivered] = field(default_factory=list)
    refusals_left: int = 0
    hold: bool = False


class SmtpServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self.held = threading.Event()
        self.dropped = threading.Event()
        self._released = threading.Event()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Session)
        self._server.daemon_threads = True
        self._server.smtp = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="smtp", daemon=True).start()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def delivered(self) -> list[Delivered]:
        with self._lock:
            return list(self._state.delivered)

    def recipients(self) -> list[str]:
        """Every recipient of every delivered message, once per delivery, sorted."""
        return sorted(address for item in self.delivered for address in item.recipients)

    def hold_next(self) -> None:
        with self._lock:
            self._state.hold = True
        self.held.clear()
        self.dropped.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def refuse(self, count: int) -> None:
        with self._lock:
            self._state.refusals_left = count

    # Called by the sessions ----------------------------------------------------------------------

    def _take_refusal(self) -> bool:
        with self._lock:
            if self._state.refusals_left <= 0:
                return False
            self._state.refusals_left -= 1
            return True

    def _take_hold(self) -> bool:
        with self._lock:
            hold, self._state.hold = self._state.hold, False
            return hold

    def _deliver(self, recipients: list[str], data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._state.delivered.append(Delivered(recipients, message))


class _Session(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        smtp: SmtpServer = self.server.smtp  # type: ignore[attr-defined]
        self._say("220 localhost SMTP test server")
        recipients: list[str] = []
        while line := self.rfile.readline():
            verb = line[:4].decode(errors="replace").upper()
            if verb in ("EHLO", "HELO", "NOOP"):
                self._say("250 localhost")
            elif verb == "MAIL":
                if smtp._take_refusal():
                    self._say("451 4.3.0 Try again later")
                else:
                    recipients = []
                    self._say("250 OK")
            elif verb == "RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 End data with <CR><LF>.<CR><LF>")
                data = self._read_data()
                if smtp._take_hold() and not self._wait_for_release(smtp):
                    smtp.dropped.set()  # the sender went away before our 250: nothing was delivered
                    return
                smtp._deliver(recipients, data)
                self._say("250 OK: queued")
            elif verb == "RSET":
                recipients = []
                self._say("250 OK")
            elif verb == "QUIT":
                self._say("221 Bye")
                return
            else:
                self._say("502 Command not implemented")

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-unstuffing
        return b"".join(lines)

    def _wait_for_release(self, smtp: SmtpServer) -> bool:
        """Hold the answer until release(); False if the sender closed the connection meanwhile."""
        smtp.held.set()
        connection: socket.socket = self.connection
        while not smtp._released.wait(0.05):
            readable, _, _ = select.select([connection], [], [], 0)
            try:
                if readable and connection.recv(1, socket.MSG_PEEK) == b"":
                    return False
            except OSError:  # reset by the sender's kernel
                return False
        return True
