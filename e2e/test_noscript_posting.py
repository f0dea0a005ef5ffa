"""Posting with JavaScript turned off: the room page's forms are plain forms (chat.views.room_act),
answered by a redirect back to the room at the message, or by the room page again with the reason
and what was typed. And with script on, the same forms still go over the socket, once.

Each person here has a browser context of their own; `without_script` turns JavaScript off in it.
"""

import os
import re
from collections.abc import Callable, Iterator
from itertools import count

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, grant, message_by, mute, open_room, send

PASSPHRASE = "a-long-test-passphrase-42"
_numbers = count(1)


@pytest.fixture
def without_script(browser: Browser) -> Iterator[Callable[[str, str], Page]]:
    """Signs a fresh user up in a browser context with JavaScript turned off; returns its page."""
    contexts: list[BrowserContext] = []

    def sign_up(base_url: str, name: str) -> Page:
        context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        username = f"{name}{os.getpid()}n{next(_numbers)}"
        page.goto(f"{base_url}/accounts/signup/")
        page.fill("#id_username", username)
        page.fill("#id_password1", PASSPHRASE)
        page.fill("#id_password2", PASSPHRASE)
        page.click("button[type=submit]")
        expect(page.locator(".whoami")).to_have_text(username)
        page.username = username  # type: ignore[attr-defined]
        return page

    yield sign_up
    for context in contexts:
        context.close()


@pytest.fixture
def room(site_env: dict[str, str]) -> str:
    """A room of this test's own: it turns slow mode on, which would hold other tests back."""
    slug = f"plain-{os.getpid()}-{next(_numbers)}"
    create_rooms(site_env, {slug: "Plain forms"})
    return slug


def post(page: Page, text: str) -> None:
    """Type and press Enter, as a person does: without script the browser posts the form."""
    box = page.locator("#message-input")
    box.fill(text)
    with page.expect_navigation():
        box.press("Enter")


def test_posting_uploading_and_moderating_without_script(
    server, site_env, new_user, without_script, room
) -> None:
    url = f"{server.url}/rooms/{room}/"
    alice, mona = without_script(server.url, "alice"), without_script(server.url, "mona")
    grant(site_env, mona.username, moderator_of=room)
    bob = new_user(server.url, "bob")  # with script: the mixed pair
    open_room(bob, server.url, room)
    alice.goto(url)

    # Posting: the browser posts the form, and is sent back to the room at the new message.
    post(alice, "hello from a page without script")
    assert re.search(r"#message-\d+$", alice.url), alice.url
    expect(message_by(alice, "hello from a page without script")).to_be_visible()
    expect(alice.locator("#message-input")).to_have_value("")
    expect(message_by(bob, "hello from a page without script")).to_be_visible()  # live, with script

    # With script, the same form goes over the socket once, and the browser posts nothing.
    posted: list[str] = []
    bob.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    send(bob, "from a page with script")
    bob.reload()
    expect(message_by(bob, "from a page with script")).to_have_count(1)
    assert posted == []
    alice.reload()  # without script, a reload shows what others said
    expect(message_by(alice, "from a page with script")).to_be_visible()

    # Uploading: a multipart form post, back at the message with the file.
    picked: FilePayload = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"plain notes\n"}
    alice.locator("#upload-form input[type=file]").set_input_files(files=[picked])
    alice.locator("#upload-caption").fill("my notes")
    with alice.expect_navigation():
        alice.locator("#upload-button").click()
    expect(message_by(alice, "my notes").locator(".file-card")).to_contain_text("notes.txt")

    # Muted while the page was open: the post is refused on the page, the text kept.
    mute(site_env, alice.username, room)
    post(alice, "are you there?")
    expect(alice.locator("#message-form")).to_contain_text("You're muted in this room until")
    expect(alice.locator("#message-form")).to_contain_text("Not sent, so you can keep it: “are you there?”")

    # The moderator unmutes and turns slow mode on from the Moderate panel, without script.
    mona.goto(url)
    mona.locator("#moderation > summary").click()
    with mona.expect_navigation():
        mona.locator("#moderation-tools .sanctions button", has_text="Unmute").click()
    expect(mona.locator("#chat-notice")).to_have_text(f"{alice.username} can post again.")
    mona.locator("#moderation > summary").click()
    mona.select_option("#settings-slow", "60")
    with mona.expect_navigation():
        mona.locator("#moderation-tools button", has_text="Save settings").click()
    expect(mona.locator("#chat-notice")).to_have_text("Room settings saved.")
    mona.reload()
    expect(mona.locator("#chat-notice")).to_have_text("")  # shown once

    # "Check again" gives the form back; slow mode refuses the next post, the text still in the box.
    with alice.expect_navigation():
        alice.locator("#message-form button", has_text="Check again").click()
    with alice.expect_response(re.compile(r"/act/$")) as answer:
        post(alice, "one more thing")
    assert answer.value.status == 429
    expect(alice.locator("#message-form .form-errors")).to_contain_text("Slow mode is on")
    expect(alice.locator("#message-input")).to_have_value("one more thing")
    for device, size in VIEWPORTS.items():
        alice.set_viewport_size(size)
        alice.screenshot(path=SCREENSHOTS / f"noscript-refused-{device}.png", full_page=True)
