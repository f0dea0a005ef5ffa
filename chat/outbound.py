"""POSTing to an address someone typed into the admin, without letting it reach inside our network.

A webhook URL is chosen by staff, but the host it names is resolved by whoever controls its DNS, at
every delivery: a name that resolved to a public address when it was saved may resolve to 127.0.0.1
or 169.254.169.254 (a cloud's metadata service) a minute later. So each POST resolves the name,
checks every address it resolves to, and connects to the address it checked (never the name again),
sending the name in the Host header and, for https, as the TLS server name. Redirects are not
followed; the whole exchange has one deadline; the answer is read up to a cap.

Loopback and private addresses are allowed only with CHAT_WEBHOOK_ALLOW_PRIVATE (a bot running on
the same host or network). Link-local (the metadata services), multicast, unspecified and reserved
addresses are refused even then: no webhook lives there.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address inside them (NAT64, 6to4): what they reach is the IPv4 one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class Refused(Exception):
    """The URL may not be called: the text says why, for the admin. Nothing was sent."""


class Failed(Exception):
    """The POST was tried and did not get an answer (connection refused, timed out, TLS failed...)."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    # True when the body was longer than the cap: `body` then holds only the first part.
    cut_short: bool


def why_refused_url(url: str) -> str | None:
    """What is wrong with the URL itself, before any lookup, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The webhook URL is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The webhook URL must start with http:// or https://."
    if not parts.hostname:
        return "The webhook URL has no host."
    if parts.username or parts.password:
        return "The webhook URL may not carry a user name or password: verify the signature instead."
    if port == 0:
        return "The webhook URL's port is not valid."
    return None


def why_refused_address(address: IPAddress, allow_private: bool) -> str | None:
    """Why a POST may not go to this address, or None when it may."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return why_refused_address(inner, allow_private)
    if address.is_unspecified or address.is_multicast or address.is_link_local:
        return f"{address} is not an address a webhook can be at."
    if address.is_global and not address.is_reserved:
        return None
    # ::1 sits in IPv6's reserved ::/8, so loopback is let through before the reserved check.
    if allow_private and (address.is_loopback or (address.is_private and not address.is_reserved)):
        return None
    return (
        f"{address} is a loopback, private or reserved address; "
        "set CHAT_WEBHOOK_ALLOW_PRIVATE for a bot on this host or network."
    )


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def why_refused_now(url: str, allow_private: bool) -> str | None:
    """For the form where staff type the URL: what is wrong with it, or with where its host points
    now. A name that doesn't resolve yet is let through (it may be set up next); every delivery
    checks again anyway."""
    refusal = why_refused_url(url)
    if refusal:
        return refusal
    parts = urlsplit(url)
    try:
        resolve(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), allow_private)
    except Refused as refused:
        return str(refused)
    except Failed:
        return None
    return None


def resolve(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to, in the resolver's order, once every one has passed.

    Refusing when any address is refused (not just skipping it) keeps a name that answers with a
    public and a private address from being tried on the private one by a retry.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as problem:
        raise Failed(f"The webhook's host {host} could not be resolved ({problem}).") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise Failed(f"The webhook's host {host} has no address.")
    for address in addresses:
        refusal = why_refused_address(address, allow_private)
        if refusal:
            raise Refused(f"The webhook's host {host} resolves to {refusal}")
    return addresses


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    max_answer_bytes: int,
    allow_private: bool,
) -> Answer:
    """POST `body` to `url` through the checks above; the answer, whatever its status.

    Raises Refused (nothing was sent) or Failed (no answer within `timeout`, or none at all).
    """
    refusal = why_refused_url(url)
    if refusal:
        raise Refused(refusal)
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    addresses = resolve(host, port, allow_private)
    deadline = time.monotonic() + timeout
    connection = _connect(host, port, addresses, https, timeout, deadline)
    try:
        connection.request("POST", path, body=body, headers=headers)
        _limit(connection, deadline)
        response = connection.getresponse()
        content = _read_capped(connection, response, deadline, max_answer_bytes)
        return Answer(response.status, response.getheader("Content-Type", ""), *content)
    except (OSError, http.client.HTTPException) as problem:
        raise Failed(_describe(problem, timeout)) from None
    finally:
        connection.close()


def _connect(
    host: str, port: int, addresses: list[IPAddress], https: bool, timeout: float, deadline: float
) -> http.client.HTTPConnection:
    """A connection to the first of `addresses` that answers, saying `host` (in Host, and as TLS's
    server name)."""
    connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    # http.client writes Host from the name given here; the socket below is what it actually uses.
    connection = connection_class(host, port, timeout=timeout)
    problem: OSError = ConnectionRefusedError()
    for address in addresses:
        try:
            remaining = max(0.01, deadline - time.monotonic())
            sock = socket.create_connection((str(address), port), timeout=remaining)
            break
        except OSError as error:
            problem = error
    else:
        raise Failed(_describe(problem, timeout))
    try:
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except OSError as error:
        sock.close()
        raise Failed(_describe(error, timeout)) from None
    connection.sock = sock
    return connection


def _limit(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Each read waits at most until the deadline, so a receiver that drips bytes can't hold us."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _read_capped(
    connection: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float, cap: int
) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        _limit(connection, deadline)
        chunk = response.read1(min(16 * 1024, cap + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    content = b"".join(chunks)
    return content[:cap], size > cap


def _describe(problem: BaseException, timeout: float) -> str:
    if isinstance(problem, TimeoutError | socket.timeout):
        return f"No answer within {timeout:g} seconds."
    if isinstance(problem, ssl.SSLError):
        return f"TLS failed: {problem.reason or problem}."
    if isinstance(problem, ConnectionRefusedError):
        return "The connection was refused."
    return f"{type(problem).__name__}: {problem}"[:200]
