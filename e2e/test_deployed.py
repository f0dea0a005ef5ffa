"""Parley as an operator deploys it (deploy/shape.py): HAProxy terminating TLS in front of daphne
processes under supervisor, with PostgreSQL and Redis, and real Chromium over HTTPS.

Most tests share one shape of two processes; the few that need other settings (low per-address
limits, pings slower than the proxy's timeout) share a second, short-lived one.
"""

import http.client
import re
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, FilePayload, Page, WebSocket, expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from chat.sockets import TOO_MANY_FROM_ADDRESS
from chat.tests.files import image_bytes
from deploy.shape import Shape
from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, open_room, send
from e2e.test_attachments import attach, thumbnail_loaded
from e2e.test_editing import open_edit_form
from e2e.test_look import assert_fits_the_screen
from e2e.test_reactions_typing import chip, react
from e2e.test_unread import open_room_list, room_card
from testsupport.servers import free_port, manage

# Over Django's FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): a file just over it is streamed to the
# upload temp dir, so "no partial file left there" is something that could happen.
UPLOAD_LIMIT = 3 * 1024 * 1024
JUST_OVER = UPLOAD_LIMIT + 1024  # under the proxy's cap (64 KiB above the limit): Parley refuses it
FAR_OVER = 4 * UPLOAD_LIMIT  # far over the proxy's cap: HAProxy answers without asking Parley
TUNNEL_TIMEOUT_SECONDS = 3
SIGNUPS_PER_ADDRESS = 2
SOCKETS_PER_ADDRESS = 2
FLOODER = "127.0.0.2"  # another loopback address: Linux routes all of 127.0.0.0/8 to lo
ROOMS = ("proxied", "proxied-files", "quiet", "uploads", "look-desktop", "look-phone")


@contextmanager
def running(shape: Shape) -> Iterator[Shape]:
    """Up for the tests, and down however they end (also when up() fails halfway)."""
    try:
        shape.up()
        yield shape
    finally:
        shape.down()


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    """Two daphne processes; daphne pings every second, well inside the proxy's tunnel timeout."""
    folder = tmp_path_factory.mktemp("deployed")
    (folder / "upload-tmp").mkdir()
    deployed = Shape(
        folder,
        https_port=free_port(),
        http_port=free_port(),
        processes=2,
        env={
            "CHAT_SIGNUPS_PER_ADDRESS": "100000",  # every browser here signs up from 127.0.0.1
            "CHAT_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT),
            "TMPDIR": str(folder / "upload-tmp"),  # where Django streams large uploads
        },
        tunnel_timeout=f"{TUNNEL_TIMEOUT_SECONDS}s",
        ping_interval=1,
    )
    with running(deployed):
        create_rooms(deployed.env, {slug: slug.title() for slug in ROOMS})
        yield deployed


@pytest.fixture(scope="module")
def strict_shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    """One process (so its count of an address's sockets is the whole count), low per-address
    limits, and daphne's pings far slower than the proxy's tunnel timeout."""
    deployed = Shape(
        tmp_path_factory.mktemp("strict"),
        https_port=free_port(),
        http_port=free_port(),
        processes=1,
        env={
            "CHAT_SIGNUPS_PER_ADDRESS": str(SIGNUPS_PER_ADDRESS),
            "CHAT_SOCKETS_PER_ADDRESS": str(SOCKETS_PER_ADDRESS),
        },
        tunnel_timeout=f"{TUNNEL_TIMEOUT_SECONDS}s",
        ping_interval=60,
    )
    with running(deployed):
        yield deployed


# Helpers --------------------------------------------------------------------------------------


def insecure_tls() -> ssl.SSLContext:
    """The shape's certificate is self-signed, as the browsers' ignore_https_errors accepts it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def socket_url(shape: Shape, path: str) -> str:
    return shape.url.replace("https://", "wss://", 1) + path


def open_socket(
    shape: Shape, path: str, *, source: str = "127.0.0.1", origin: str | None = None, forged: str = ""
) -> ClientConnection:
    """A websocket through the proxy from one loopback address, optionally with a forged
    X-Forwarded-For; it pings twice a second itself, so the proxy keeps it while a test holds it."""
    return connect(
        socket_url(shape, path),
        ssl=insecure_tls(),
        origin=Origin(origin or shape.url),
        additional_headers={"X-Forwarded-For": forged} if forged else None,
        source_address=(source, 0),
        proxy=None,
        ping_interval=0.5,
        # Generous: under CI's load a handshake through TLS and the proxy once took over 10 s, and
        # these tests are about who is let in, not how fast.
        open_timeout=30,
    )


class AddressedClient:
    """An HTTPS client of the proxy from one loopback source address, with its own cookies."""

    def __init__(self, shape: Shape, source: str) -> None:
        self.base_url, self.source = shape.url, source
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPSConnection(
            parts.hostname or "",
            parts.port,
            source_address=(self.source, 0),
            context=insecure_tls(),
            timeout=20,
        )
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            connection.request(method, path, body or None, {"Cookie": cookie, **(headers or {})})
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
            return response.status, response.read().decode()
        finally:
            connection.close()

    def sign_up(self, username: str, forged: str) -> tuple[int, str]:
        """The sign-up form, filled and sent with X-Forwarded-For set to `forged` both times."""
        forwarded = {"X-Forwarded-For": forged}
        status, page = self.request("GET", "/accounts/signup/", headers=forwarded)
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        password = "a-long-test-passphrase-42"
        form = {
            "csrfmiddlewaretoken": token[1],
            "username": username,
            "password1": password,
            "password2": password,
        }
        return self.request(
            "POST",
            "/accounts/signup/",
            urlencode(form),
            {
                **forwarded,
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.base_url,
                "Referer": f"{self.base_url}/accounts/signup/",
            },
        )


def websockets_per_process(shape: Shape) -> dict[str, int]:
    """Open websockets per daphne process: HAProxy's streams that were answered 101 (a tunnel).
    Shape.connections() counts a browser's keep-alive page connections too."""
    counts = dict.fromkeys(shape.processes(), 0)
    for stream in re.split(r"\n(?=0x[0-9a-f]+: )", shape.haproxy("show sess all")):
        server = re.search(r"\bserver=(\S+)", stream)
        if server and " status=101 " in stream:
            counts[f"daphne:{server[1]}"] += 1
    return counts


def no_websockets_left(shape: Shape, timeout: float = 10) -> dict[str, int]:
    """Wait until the sockets of pages gone or closed have left HAProxy too."""
    deadline = time.monotonic() + timeout
    while sum((counts := websockets_per_process(shape)).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sum(counts.values()), f"websockets still open: {counts}"
    return counts


def serving_process(shape: Shape, before: dict[str, int], timeout: float = 10) -> str:
    """The daphne process that took the one websocket opened since `before`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = websockets_per_process(shape)
        grown = [name for name, count in now.items() if count > before.get(name, 0)]
        if sum(now.values()) == sum(before.values()) + 1 and len(grown) == 1:
            return grown[0]
        time.sleep(0.1)
    raise AssertionError(f"no single new websocket: {before} → {websockets_per_process(shape)}")


def room_socket(page: Page, base_url: str, slug: str, signed_in: bool = True) -> WebSocket:
    """Open a room and return the page's socket to it (once it delivered its first frame)."""
    with page.expect_websocket(lambda socket: socket.url.endswith(f"/ws/rooms/{slug}/")) as opened:
        if signed_in:
            open_room(page, base_url, slug)
        else:
            page.goto(f"{base_url}/rooms/{slug}/")
    socket = opened.value
    if not signed_in:
        socket.wait_for_event("framereceived")
    return socket


def people_on_different_processes(
    shape: Shape, new_user: Callable[..., Page], slug: str
) -> tuple[Page, Page]:
    """Alice and Bob in a room, their sockets held by two different daphne processes."""
    alice, bob = new_user(shape.url, "alice"), new_user(shape.url, "bob")
    for page in (alice, bob):  # off the room list, whose socket would count
        page.goto("about:blank")
    before = no_websockets_left(shape)
    open_room(alice, shape.url, slug)
    alices = serving_process(shape, before)
    before = websockets_per_process(shape)
    open_room(bob, shape.url, slug)
    bobs = serving_process(shape, before)
    assert alices != bobs, f"both sockets went to {alices}: the proxy should balance by least connections"
    return alice, bob


def pick_and_upload(page: Page, content: bytes, name: str, caption: str) -> None:
    """Pick a file and press Upload, without waiting for the form to be replaced (a refusal by
    the proxy leaves it, and its caption, in place)."""
    form = page.locator("#upload-form")
    picked: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": content}
    form.locator("input[type=file]").set_input_files(files=[picked])
    form.locator("input[name=message]").fill(caption)
    form.locator("button[type=submit]").click()


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


# 1. Two people on different processes -------------------------------------------------------------


def test_people_on_different_processes_talk_edit_react_and_type_live_through_the_proxy(shape, new_user):
    alice, bob = people_on_different_processes(shape, new_user, "proxied")

    send(alice, "Through the proxy from Alice")
    expect(message_by(bob, "Through the proxy from Alice")).to_be_visible()
    send(bob, "And back from Bob")
    expect(message_by(alice, "And back from Bob")).to_be_visible()

    open_edit_form(alice, "Through the proxy from Alice")
    alice.locator("form.editing [name=message]").fill("Through the proxy, **edited**")
    alice.locator("form.editing").get_by_role("button", name="Save").click()
    edited = message_by(bob, "Through the proxy, edited")
    expect(edited.locator("strong")).to_have_text("edited")
    expect(edited.locator(".edited")).to_have_text("(edited)")

    react(alice, "And back from Bob", "🎉")
    expect(chip(bob, "And back from Bob", "🎉")).to_have_text("🎉 1")

    bob.locator("#message-form input[name=message]").press_sequentially("hold on")
    expect(alice.locator("#typing")).to_have_text(f"{bob.username} is typing…")  # type: ignore[attr-defined]


def test_unread_counts_and_an_upload_cross_processes_through_the_proxy(shape, new_user):
    alice, bob = people_on_different_processes(shape, new_user, "proxied-files")
    carol = new_user(shape.url, "carol")
    open_room_list(carol, shape.url)

    attach(alice, image_bytes("PNG", (600, 400)), "roof.png", caption="the roof, through the proxy")

    thumbnail_loaded(bob, "the roof, through the proxy")  # the image itself came through the proxy
    expect(room_card(carol, "proxied-files").locator(".unread-count")).to_have_text("1 new")
    send(bob, "Nice view")
    expect(room_card(carol, "proxied-files").locator(".unread-count")).to_have_text("2 new")
    expect(carol).to_have_title("(2) Rooms · Parley")


# 2. Security through the proxy ----------------------------------------------------------------------


def test_plain_http_redirects_to_https_and_cookies_and_headers_are_secure(shape, new_user):
    parts = urlsplit(shape.http_url)
    plain = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    plain.request("GET", "/rooms/lobby/?from=plain")
    answer = plain.getresponse()
    plain.close()
    assert answer.status in (301, 302, 307, 308)
    assert answer.headers["Location"] == f"{shape.url}/rooms/lobby/?from=plain"

    alice = new_user(shape.http_url, "alice")  # typed with http://, signed up over HTTPS
    assert alice.url.startswith(f"{shape.url}/")
    cookies = {cookie["name"]: cookie for cookie in alice.context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
    assert cookies["csrftoken"]["secure"]  # not HttpOnly: Django's default, nothing of ours reads it
    page = alice.goto(f"{shape.url}/")
    assert page is not None
    assert "max-age=31536000" in page.headers["strict-transport-security"]


def test_a_websocket_from_a_foreign_origin_is_refused(shape):
    with (
        pytest.raises(InvalidStatus) as refused,
        open_socket(shape, "/ws/rooms/lobby/", origin="https://evil.example"),
    ):
        pass
    assert refused.value.response.status_code == 403

    with open_socket(shape, "/ws/rooms/lobby/") as from_parley:  # the same socket from Parley's own pages
        assert 'id="messages"' in str(from_parley.recv(timeout=30))


def test_check_deploy_is_clean_with_the_variables_the_deploy_uses(shape):
    # The local shape writes emails to files, having no mail server; production sends them (SMTP).
    production = shape.env | {"EMAIL_BACKEND": "smtp"}
    assert "no issues" in manage(production, "check", "--deploy", "--fail-level", "WARNING")
    # The same check does fail at this level once a production setting is off.
    hsts_off = production | {"SECURE_HSTS_SECONDS": "0"}
    with pytest.raises(RuntimeError, match=r"security\.W004"):
        manage(hsts_off, "check", "--deploy", "--fail-level", "WARNING")


# 3. The client address is the real one ------------------------------------------------------------


def test_an_address_over_its_signup_limit_is_refused_while_another_signs_up(strict_shape, new_user):
    """Each of the flooder's sign-ups forges a fresh X-Forwarded-For: none moves its count."""
    for number in range(SIGNUPS_PER_ADDRESS):
        status, page = AddressedClient(strict_shape, FLOODER).sign_up(f"flood{number}", f"203.0.113.{number}")
        assert status == 302, page

    status, page = AddressedClient(strict_shape, FLOODER).sign_up("flood-over", "198.51.100.7")

    assert status == 429
    assert "Too many attempts. Try again in 60 minutes." in page
    alice = new_user(strict_shape.url, "alice")  # from 127.0.0.1, the proxy's own address too
    expect(alice.locator(".whoami")).to_have_text(alice.username)


def test_an_address_over_its_socket_limit_is_refused_while_another_gets_in(strict_shape):
    """The flooder's sockets each forge a fresh X-Forwarded-For: none moves its count."""
    with ExitStack() as held:
        for number in range(SOCKETS_PER_ADDRESS):
            socket = held.enter_context(
                open_socket(strict_shape, "/ws/rooms/lobby/", source=FLOODER, forged=f"203.0.113.{number}")
            )
            assert 'id="messages"' in str(socket.recv(timeout=30))

        with open_socket(strict_shape, "/ws/rooms/lobby/", source=FLOODER, forged="198.51.100.9") as over:
            assert TOO_MANY_FROM_ADDRESS in str(over.recv(timeout=30))
        with open_socket(strict_shape, "/ws/rooms/lobby/", source="127.0.0.1") as other:
            assert 'id="messages"' in str(other.recv(timeout=30))


# 4. A body over the limit gets a sentence -----------------------------------------------------------


@pytest.fixture
def no_file_left(shape: Shape) -> Iterator[None]:
    """Asserts that the test stored nothing in MEDIA_ROOT and left nothing in the upload temp dir."""
    media, upload_tmp = Path(shape.env["MEDIA_ROOT"]), Path(shape.env["TMPDIR"])
    for name in shape.processes():  # the temp dir watched is the one the processes use
        environ = Path(f"/proc/{shape.pid(name)}/environ").read_bytes().split(b"\0")
        assert f"TMPDIR={upload_tmp}".encode() in environ
    stored, temporary = files_under(media), files_under(upload_tmp)
    yield
    assert files_under(media) == stored
    assert files_under(upload_tmp) == temporary


def test_an_upload_just_over_the_limit_gets_parleys_sentence_through_the_proxy(shape, new_user, no_file_left):
    alice = new_user(shape.url, "alice")
    open_room(alice, shape.url, "uploads")

    attach(alice, b"a" * JUST_OVER, "just-over.txt", "text/plain", caption="the notes")

    expect(alice.locator("#chat-notice")).to_have_text(
        "Files can be at most 3.0\xa0MB (this one is just over)."
    )
    expect(alice.locator("#upload-form input[name=message]")).to_have_value("the notes")
    expect(alice.locator("#messages .message", has_text="the notes")).to_have_count(0)


def test_an_upload_far_over_the_proxys_cap_gets_the_sentence_in_the_browser(shape, new_user, no_file_left):
    alice = new_user(shape.url, "alice")
    open_room(alice, shape.url, "uploads")

    with alice.expect_response(re.compile(r"/attachments/$")) as answered:
        pick_and_upload(alice, b"a" * FAR_OVER, "far-over.txt", caption="the whole archive")

    expect(alice.locator("#chat-notice")).to_have_text("Files can be at most 3.0\xa0MB (this one is larger).")
    assert answered.value.headers.get("hx-reswap") == "none"  # the proxy's answer, not Parley's
    expect(alice.locator("#upload-form input[name=message]")).to_have_value("the whole archive")
    expect(alice.locator("#messages .message", has_text="the whole archive")).to_have_count(0)
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.screenshot(path=SCREENSHOTS / "deployed-upload-refused-desktop.png")


# 5. An idle socket survives ---------------------------------------------------------------------------


def test_a_quiet_socket_outlives_the_proxy_timeout_and_gets_the_next_message(shape, new_user):
    alice, bob = new_user(shape.url, "alice"), new_user(shape.url, "bob")
    open_room(alice, shape.url, "quiet")
    bobs_socket = room_socket(bob, shape.url, "quiet")
    frames: list[str] = []
    bobs_socket.on("framereceived", lambda payload: frames.append(str(payload)))

    bob.wait_for_timeout(3 * TUNNEL_TIMEOUT_SECONDS * 1000 + 500)  # nothing said for three timeouts
    send(alice, "Still there after the quiet?")

    expect(message_by(bob, "Still there after the quiet?")).to_be_visible()
    assert not bobs_socket.is_closed()
    assert any("Still there after the quiet?" in frame for frame in frames), "not on the socket kept open"


def test_with_pings_slower_than_the_proxy_timeout_a_quiet_socket_is_cut(strict_shape, browser: Browser):
    """The control: without daphne's pings inside the timeout, HAProxy does cut a quiet socket."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        visitor = context.new_page()
        opened = time.monotonic()
        socket = room_socket(visitor, strict_shape.url, "lobby", signed_in=False)
        socket.wait_for_event("close", timeout=3 * TUNNEL_TIMEOUT_SECONDS * 1000)
        assert time.monotonic() - opened >= TUNNEL_TIMEOUT_SECONDS - 0.5  # for being quiet, not at once
    finally:
        context.close()


# How it looks through the proxy -------------------------------------------------------------------------


@pytest.mark.parametrize("device", VIEWPORTS)
def test_the_deployed_room_and_the_proxys_too_large_page_look_right(shape, new_user, device: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    slug = f"look-{device}"
    alice, bob = (new_user(shape.url, name, viewport=VIEWPORTS[device]) for name in ("alice", "bob"))
    open_room(alice, shape.url, slug)
    open_room(bob, shape.url, slug)
    send(bob, "Served over HTTPS by HAProxy, two processes behind it.")
    send(alice, "And the socket went through it too.")
    expect(message_by(bob, "And the socket went through it too.")).to_be_visible()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"deployed-room-{device}.png")

    # What a plain form post (no htmx) far over the cap shows: the proxy's page, made by Parley.
    page = alice.context.new_page()
    upload_url = f"{shape.url}/rooms/{slug}/attachments/"
    page.route(
        upload_url,
        lambda route: route.continue_(
            method="POST", post_data=b"a" * FAR_OVER, headers={"content-type": "text/plain"}
        ),
    )
    answer = page.goto(upload_url)
    assert answer is not None and answer.status == 413
    expect(page.locator("main")).to_contain_text("Files can be at most 3.0\xa0MB (this one is larger).")
    assert_fits_the_screen(page)
    page.screenshot(path=SCREENSHOTS / f"deployed-too-large-{device}.png")
