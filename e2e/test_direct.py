"""Direct messages and blocking in real Chromium: two people talk, a third is refused, a block
closes the conversation live and plainly, and how it all looks (desktop and phone, light and dark)."""

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, open_room, send
from e2e.test_look import assert_fits_the_screen


def start_conversation(page: Page, base_url: str, other: Page) -> str:
    """From the other person's page: Send a message, then Start; returns the conversation's URL."""
    page.goto(f"{base_url}/people/{other.username}/")  # type: ignore[attr-defined]
    page.get_by_role("link", name="Send a message").click()
    page.get_by_role("button", name="Start the conversation").click()
    expect(page).to_have_url(re.compile(r"/rooms/dm-\d+-\d+/$"))
    expect(page.locator("#members")).to_contain_text(page.username)  # type: ignore[attr-defined]
    return page.url


def test_two_people_talk_live_and_a_third_is_refused(server, new_user):
    alice, bob, carol = (new_user(server.url, name) for name in ("alice", "bob", "carol"))
    url = start_conversation(alice, server.url, bob)
    expect(alice.locator("h1.direct-title")).to_contain_text(bob.username)

    # bob finds it on his room list, under the other person's name.
    bob.goto(server.url)
    conversations = bob.locator(".conversations")
    expect(conversations).to_contain_text("Direct messages")
    conversations.get_by_role("link", name=re.compile(alice.username)).click()
    expect(bob).to_have_url(url)
    expect(bob.locator("h1.direct-title")).to_contain_text(alice.username)
    expect(bob.locator("#members")).to_contain_text(bob.username)

    send(alice, "Are you free for lunch?")
    expect(message_by(bob, "Are you free for lunch?")).to_be_visible()
    send(bob, "Yes, noon works")
    expect(message_by(alice, "Yes, noon works")).to_be_visible()

    refused = carol.goto(url)
    assert refused is not None and refused.status == 404
    carol.goto(server.url)
    expect(carol.locator("body")).not_to_contain_text("Direct messages")


def test_a_block_closes_the_conversation_live_and_the_blocked_is_told_plainly(server, new_user):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    url = start_conversation(alice, server.url, bob)
    open_room(bob, server.url, url.rstrip("/").rsplit("/", 1)[1])
    send(bob, "hello again")
    expect(message_by(alice, "hello again")).to_be_visible()

    alice.get_by_role("button", name=f"Block {bob.username}").click()
    expect(alice.locator("#message-form")).to_contain_text(f"You have blocked {bob.username}.")
    expect(alice.get_by_role("button", name=f"Unblock {bob.username}")).to_be_visible()
    # bob's open page closes at once, saying why; what was said stays readable.
    expect(bob.locator("#message-form")).to_contain_text(
        f"You can't send messages to {alice.username}: they have blocked you."
    )
    expect(message_by(bob, "hello again")).to_be_visible()

    bob.goto(f"{server.url}/dm/{alice.username}/")
    expect(bob.locator(".notice.error")).to_have_text(
        f"You can't send messages to {alice.username}: they have blocked you."
    )

    alice.goto(f"{server.url}/people/{bob.username}/")
    alice.get_by_role("button", name=f"Unblock {bob.username}").click()
    bob.goto(url)
    send(bob, "thanks for unblocking")
    alice.goto(url)
    expect(message_by(alice, "thanks for unblocking")).to_be_visible()


def test_a_name_in_the_member_list_leads_to_a_conversation(server, new_user, site_env):
    create_rooms(site_env, {"meeting-point": "Meeting point"})
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, "meeting-point")
    open_room(bob, server.url, "meeting-point")

    alice.locator("#members").get_by_role("link", name=bob.username).click()
    expect(alice.locator("h1")).to_contain_text(bob.username)
    alice.get_by_role("link", name="Send a message").click()
    alice.get_by_role("button", name="Start the conversation").click()
    expect(alice.locator("h1.direct-title")).to_contain_text(bob.username)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_conversation_looks_right(server, new_user, device: str, scheme: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    conversation = start_conversation(alice, server.url, bob)
    open_room(bob, server.url, conversation.rstrip("/").rsplit("/", 1)[1])
    send(alice, "Did you get the slides?")
    send(bob, "Yes, thanks! I'll comment on **page 3** tonight.")
    expect(message_by(alice, "page 3")).to_be_visible()

    expect(alice.locator("#message-form input[name=message]")).to_be_in_viewport()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"dm-{device}-{scheme}.png")

    alice.goto(server.url)
    expect(alice.locator(".conversations")).to_contain_text(bob.username)
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"dm-list-{device}-{scheme}.png")

    bob.emulate_media(color_scheme=scheme)
    alice.goto(f"{server.url}/people/{bob.username}/")
    alice.get_by_role("button", name=f"Block {bob.username}").click()
    bob.goto(f"{server.url}/dm/{alice.username}/")
    expect(bob.locator(".notice.error")).to_be_visible()
    assert_fits_the_screen(bob)
    bob.screenshot(path=SCREENSHOTS / f"dm-blocked-{device}-{scheme}.png")
    alice.screenshot(path=SCREENSHOTS / f"person-blocked-{device}-{scheme}.png")
    alice.goto(conversation)
    expect(alice.locator("#message-form")).to_contain_text(f"You have blocked {bob.username}.")
    expect(alice.locator("#members")).to_contain_text(alice.username)
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"dm-closed-{device}-{scheme}.png")
