"""Posting with JavaScript turned off: the room page's forms are plain forms (chat.views.room_act),
answered by a redirect back to the room at the message, or by the room page again with the reason
and what was typed. And with script on, the same forms still go over the socket, once.

Each person here has a browser context of their own; `new_noscript_user` turns JavaScript off in it.
"""

import os
import re
from itertools import count

import pytest
from playwright.sync_api import FilePayload, Page, expect

from e2e.conftest import (
    SCREENSHOTS,
    VIEWPORTS,
    create_rooms,
    grant,
    message_by,
    mute,
    open_room,
    send,
    shown_without_script,
)

_numbers = count(1)


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
    server, site_env, new_user, new_noscript_user, room
) -> None:
    url = f"{server.url}/rooms/{room}/"
    alice, mona = new_noscript_user(server.url, "alice"), new_noscript_user(server.url, "mona")
    grant(site_env, mona.username, moderator_of=room)
    bob = new_user(server.url, "bob")  # with script: the mixed pair
    open_room(bob, server.url, room)
    alice.goto(url)

    # Posting: the browser posts the form, and is sent back to the room at the new message.
    post(alice, "hello from a page without script")
    assert re.search(r"#message-\d+$", alice.url), alice.url
    expect(shown_without_script(alice, "hello from a page without script")).to_be_visible()
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
    expect(shown_without_script(alice, "from a page with script")).to_be_visible()

    # Uploading: a multipart form post, back at the message with the file.
    picked: FilePayload = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"plain notes\n"}
    alice.locator("#upload-form input[type=file]").set_input_files(files=[picked])
    alice.locator("#upload-caption").fill("my notes")
    with alice.expect_navigation():
        alice.locator("#upload-button").click()
    expect(shown_without_script(alice, "my notes").locator(".file-card")).to_contain_text("notes.txt")

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


def act_on(page: Page, text: str) -> None:
    """Open a message's ··· menu without script: a link to its actions as a page."""
    message = shown_without_script(page, text)
    message.locator(".message-actions > summary").click()
    with page.expect_navigation():
        message.get_by_role("link", name="Open the actions page").click()


def submit(page: Page, button: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def test_reporting_deleting_muting_and_removing_from_the_actions_page_without_script(
    server, site_env, new_user, new_noscript_user, room
) -> None:
    url = f"{server.url}/rooms/{room}/"
    alice, mona = new_noscript_user(server.url, "alice"), new_noscript_user(server.url, "mona")
    grant(site_env, mona.username, moderator_of=room)
    bob = new_user(server.url, "bob")  # with script: sees each outcome live
    open_room(bob, server.url, room)
    send(bob, "Buy cheap watches")
    alice.goto(url)
    post(alice, "A typo I regret")
    post(alice, "Nobody reads this anyway")

    # A member reports: the menu page's form, then back in the room with the thanks.
    act_on(alice, "Buy cheap watches")
    alice.get_by_text("Report…").click()
    alice.get_by_label("Reason for reporting").fill("spam")
    submit(alice, "Report message")
    expect(alice.locator("#chat-notice")).to_contain_text("Thanks for reporting it")

    # The author deletes their own message, confirmed in a <details>; Bob sees it go live.
    act_on(alice, "A typo I regret")
    alice.locator(".confirm-delete > summary").click()
    submit(alice, "Yes, delete it")
    expect(alice.locator("#chat-notice")).to_have_text("Message deleted.")
    expect(shown_without_script(alice, "A typo I regret")).to_have_count(0)
    expect(message_by(bob, "A typo I regret")).to_have_count(0)

    # The moderator removes one message and mutes its author, from the actions page.
    mona.goto(url)
    act_on(mona, "Nobody reads this anyway")
    mona.get_by_label("Reason for removing").fill("off topic")
    submit(mona, "Remove message")
    expect(mona.locator("#chat-notice")).to_have_text(f"Removed a message by {alice.username}.")
    expect(bob.locator("#messages")).to_contain_text("Message removed by a moderator")
    act_on(mona, "Buy cheap watches")
    mona.get_by_label("Mute for").select_option(index=0)
    submit(mona, f"Mute {bob.username}")
    expect(mona.locator("#chat-notice")).to_contain_text(f"{bob.username} is muted until")
    expect(bob.locator("#message-form")).to_contain_text("You're muted in this room")
