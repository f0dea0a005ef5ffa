"""chat/outbound.py: which addresses a webhook may reach, and POSTs to a real local receiver."""

import contextlib
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from chat import outbound
from testsupport.receiver import Reply, receiving

NEVER = [
    "169.254.169.254",  # a cloud's metadata service
    "fe80::1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "::",
    "240.0.0.1",
    "255.255.255.255",
]
PRIVATE = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "::1", "fc00::1", "100.64.0.1"]
# IPv6 spellings of loopback: mapped, NAT64 and 6to4 all reach 127.0.0.1.
LOOPBACK_IN_IPV6 = ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2001:4860:4860::8888"]


@pytest.mark.parametrize("address", NEVER + PRIVATE + LOOPBACK_IN_IPV6)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert outbound.why_refused_address(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert outbound.why_refused_address(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address", PRIVATE[:6] + LOOPBACK_IN_IPV6[:1])
def test_the_setting_allows_loopback_and_private_addresses(address: str) -> None:
    assert outbound.why_refused_address(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize("address", NEVER)
def test_link_local_multicast_and_unspecified_stay_refused_with_the_setting(address: str) -> None:
    assert outbound.why_refused_address(ipaddress.ip_address(address), allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "http:///nohost", "http://user:pw@example.com/", "hook"],
)
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    assert outbound.why_refused_url(url)


def post(url: str, allow_private: bool = True, timeout: float = 3, cap: int = 1024) -> outbound.Answer:
    return outbound.post(
        url,
        b'{"hello": 1}',
        {"Content-Type": "application/json", "X-Test": "yes"},
        timeout=timeout,
        max_answer_bytes=cap,
        allow_private=allow_private,
    )


def test_a_name_that_resolves_to_loopback_is_refused_and_nothing_is_sent() -> None:
    """The DNS-rebinding shape: the URL names a host, the host resolves to 127.0.0.1 now."""
    with receiving(Reply(200, b"hi")) as receiver:
        with pytest.raises(outbound.Refused, match="loopback"):
            post(receiver.url, allow_private=False)
        with pytest.raises(outbound.Refused):
            post(receiver.loopback_url, allow_private=False)
        assert receiver.received == []


def test_the_post_reaches_the_checked_address_with_the_name_in_host() -> None:
    with receiving(Reply(200, b"hello back", "text/plain")) as receiver:
        answer = post(receiver.url + "?x=1")
        (request,) = receiver.received
    assert (answer.status, answer.body, answer.cut_short) == (200, b"hello back", False)
    assert answer.content_type == "text/plain"
    assert request.path == "/hook?x=1"
    assert request.headers["Host"] == f"localhost:{receiver.port}"
    assert request.headers["X-Test"] == "yes"
    assert request.body == b'{"hello": 1}'


def test_redirects_are_not_followed() -> None:
    with receiving(Reply(302, b"", headers={"Location": "http://169.254.169.254/"})) as receiver:
        answer = post(receiver.url)
        assert answer.status == 302
        assert len(receiver.received) == 1


def test_a_receiver_slower_than_the_timeout_fails_in_about_the_timeout() -> None:
    with receiving(Reply(200, b"late", delay=3)) as receiver:
        started = time.monotonic()
        with pytest.raises(outbound.Failed, match=r"No answer within 0\.5 seconds"):
            post(receiver.url, timeout=0.5)
        assert time.monotonic() - started < 2


def test_an_answer_over_the_cap_is_cut_short() -> None:
    with receiving(Reply(200, b"x" * 5000)) as receiver:
        answer = post(receiver.url, cap=1000)
    assert answer.cut_short and answer.body == b"x" * 1000


def test_nothing_listening_fails_with_a_sentence() -> None:
    with receiving() as receiver:
        url = receiver.url
    with pytest.raises(outbound.Failed, match="refused"):
        post(url)


OPENSSL_SELF_SIGNED = [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
]


def test_https_names_the_host_to_tls_and_verifies_its_certificate(tmp_path: Path) -> None:
    """Connected to the checked address, TLS still gets the URL's name (SNI), and a certificate
    nobody vouches for is refused: no answer is read from it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        connection, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(1)

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    try:
        with pytest.raises(outbound.Failed, match="TLS failed"):
            post(f"https://localhost:{port}/hook")
    finally:
        server.join(5)
        listener.close()
    assert names == ["localhost"]
