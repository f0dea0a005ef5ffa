"""End-to-end fixtures: real daphne processes, real Chromium, driven by Playwright.

The server runs as in production (DEBUG off, static files from WhiteNoise after
collectstatic), in its own process with its own SQLite file.
"""

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FrameLocator,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from testsupport.servers import DaphneServer, RedisServer, manage, production_like_env

SCREENSHOTS = Path(__file__).parent / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
expect.set_options(timeout=10_000)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError(
            "Chromium is missing: run `make test`, which installs it (apt-get install chromium)"
        )
    return path


def prepare_site(folder: Path, **env: str) -> dict[str, str]:
    """A migrated database and collected static files; returns the servers' environment."""
    # Every browser in these tests signs up from 127.0.0.1, and Redis keeps counts across tests.
    server_env = production_like_env(folder, **({"CHAT_SIGNUPS_PER_ADDRESS": "100000"} | env))
    manage(server_env, "migrate", "--noinput")
    manage(server_env, "collectstatic", "--noinput")
    create_rooms(server_env, {"garden": "Garden"})
    return server_env


def create_rooms(server_env: dict[str, str], names_by_slug: dict[str, str]) -> None:
    script = "from chat.models import Room\n" + "".join(
        f"Room.objects.get_or_create(slug={slug!r}, defaults={{'name': {name!r}}})\n"
        for slug, name in names_by_slug.items()
    )
    manage(server_env, "shell", "-c", script)


@pytest.fixture(scope="session")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return prepare_site(tmp_path_factory.mktemp("site"))


@pytest.fixture
def server(site_env: dict[str, str], tmp_path: Path) -> Iterator[DaphneServer]:
    """A fresh daphne process per test (the database is shared, usernames are unique)."""
    daphne = DaphneServer(site_env, tmp_path / "daphne.log")
    yield daphne
    daphne.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


_user_numbers = itertools.count(1)


@pytest.fixture
def new_user(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Opens a new browser context and signs up a fresh user in it; returns its page."""
    contexts: list[BrowserContext] = []

    def open_as(
        base_url: str,
        name: str = "user",
        viewport: ViewportSize | None = None,
        touch: bool = False,
        script: bool = True,
        color_scheme: Literal["light", "dark"] = "light",
    ) -> Page:
        """`touch`: a phone's touch screen (no hover), as Chromium emulates one. `script=False`:
        JavaScript turned off, as in Tor Browser's safest mode (docs/no-script.md)."""
        size = viewport or {"width": 1280, "height": 800}
        # ignore_https_errors: the deployed shape (e2e/test_deployed*.py) has a self-signed certificate.
        context = browser.new_context(
            viewport=size,
            has_touch=touch,
            is_mobile=touch,
            ignore_https_errors=True,
            java_script_enabled=script,
            color_scheme=color_scheme,
        )
        contexts.append(context)
        page = context.new_page()
        username = f"{name}{os.getpid()}x{next(_user_numbers)}"
        page.goto(f"{base_url}/accounts/signup/")
        page.fill("#id_username", username)
        page.fill("#id_password1", "a-long-test-passphrase-42")
        page.fill("#id_password2", "a-long-test-passphrase-42")
        page.click("button[type=submit]")
        expect(page.locator(".whoami")).to_have_text(username)
        page.username = username  # type: ignore[attr-defined]
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture
def new_noscript_user(new_user: Callable[..., Page]) -> Callable[..., Page]:
    """Like new_user, with JavaScript turned off in its browser context: signed up through the
    plain form, as anyone without script would."""

    def open_without_script(base_url: str, name: str = "user", **options: object) -> Page:
        return new_user(base_url, name, script=False, **options)

    return open_without_script


def open_room(page: Page, base_url: str, slug: str = "lobby") -> None:
    """Opens a room and waits until its socket has delivered the live form."""
    page.goto(f"{base_url}/rooms/{slug}/")
    expect(page.locator("#members")).to_contain_text(page.username)  # type: ignore[attr-defined]


def message_by(page: Page, text: str) -> Locator:
    return page.locator("#messages .message", has_text=text)


def newest(page: Page) -> FrameLocator:
    """The room's newest messages: without script, a frame that reloads itself (docs/no-script.md)."""
    return page.frame_locator("iframe.live-frame")


def shown_without_script(page: Page, text: str) -> Locator:
    """A message among the newest, as a page without script shows them (in its frame)."""
    return newest(page).locator("#messages .message", has_text=text)


def open_menu(page: Page, text: str) -> None:
    message = message_by(page, text)
    message.hover()
    message.locator(".message-actions > summary").click()
    # The menu is fetched for whoever opens it: wait until it is there.
    expect(message.locator(".message-actions .menu")).to_be_visible()


def send(page: Page, text: str, *, answered: bool = True) -> None:
    """Type and send; by default wait for the server's answer, as a person waits to see it sent.

    The answer is a fresh form swapped in for the old one (empty, or with the reason it was
    refused), so the old input leaving the page marks it.
    """
    box = page.locator("#message-form input[name=message]")
    box.fill(text)
    sent_input = box.element_handle()
    box.press("Enter")
    if answered:
        page.wait_for_function("input => !input.isConnected", arg=sent_input)


def grant(site_env: dict[str, str], username: str, *, moderator_of: str = "", staff: bool = False) -> None:
    """Make a signed-up user a room moderator or a staff superuser, as staff would in the admin."""
    script = (
        "from django.contrib.auth.models import User\n"
        "from chat.models import Membership, Room\n"
        f"user = User.objects.get(username={username!r})\n"
    )
    if staff:
        script += "user.is_staff = user.is_superuser = True\nuser.save()\n"
    if moderator_of:
        script += (
            f"Membership.objects.update_or_create(room=Room.objects.get(slug={moderator_of!r}), user=user,"
            " defaults={'role': 'moderator'})\n"
        )
    manage(site_env, "shell", "-c", script)


def mute(site_env: dict[str, str], username: str, room: str, minutes: int = 10) -> None:
    """Mute a signed-up user in a room, as a moderator would (no live effect: a shell has no socket)."""
    script = (
        "from datetime import timedelta\n"
        "from django.contrib.auth.models import User\n"
        "from django.utils import timezone\n"
        "from chat.models import Mute, Room\n"
        f"user = User.objects.get(username={username!r})\n"
        f"Mute.objects.create(room=Room.objects.get(slug={room!r}), user=user,"
        f" until=timezone.now() + timedelta(minutes={minutes}))\n"
    )
    manage(site_env, "shell", "-c", script)
