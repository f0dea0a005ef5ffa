"""Unread counts and the "New messages" divider as three people see them in real Chromium:
counts rising live on the room list and its title, clearing when the room is read, the divider
above the first unread message. No script of ours."""

import itertools
import re

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, open_room, send

_rooms = itertools.count(1)


def own_room(site_env: dict[str, str], name: str) -> str:
    """A room per test, so people from other tests don't show up in it."""
    slug = f"unread-{next(_rooms)}"
    create_rooms(site_env, {slug: name})
    return slug


def open_room_list(page: Page, base_url: str) -> None:
    """Open the room list and wait until its socket has sent the counts (its first frame)."""
    frames: list[object] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(payload)))
    page.goto(base_url)
    for _ in range(100):
        if frames:
            return
        page.wait_for_timeout(50)
    pytest.fail("the room list's socket sent nothing")


def room_card(page: Page, slug: str):
    """A room's card, by its link: names repeat across tests, slugs don't."""
    return page.locator(f'.room-card[href="/rooms/{slug}/"]')


def test_counts_rise_live_and_clear_when_the_room_is_read(server, site_env, new_user):
    slug = own_room(site_env, "Attic")
    alice, bob, carol = (new_user(server.url, name) for name in ("alice", "bob", "carol"))
    open_room(bob, server.url, slug)  # bob has been here: what comes next is new to him
    open_room_list(bob, server.url)
    open_room_list(carol, server.url)
    expect(room_card(bob, slug).locator(".unread-count")).to_have_count(0)
    expect(bob).to_have_title("Rooms · Parley")

    open_room(alice, server.url, slug)
    send(alice, "the attic is flooded")
    send(alice, f"@{bob.username} can you bring a bucket?")

    for reader in (bob, carol):
        expect(room_card(reader, slug).locator(".unread-count")).to_have_text("2 new")
        expect(reader).to_have_title("(2) Rooms · Parley")
    expect(room_card(bob, slug).locator(".mention-count")).to_have_text("1 mention")
    expect(room_card(carol, slug).locator(".mention-count")).to_have_count(0)

    room_card(bob, slug).click()
    divider = bob.locator("#messages #new-messages")
    expect(divider).to_have_text("New messages")
    # Right above the first message bob had not read.
    following = bob.locator("#new-messages + .message")
    expect(following).to_contain_text("the attic is flooded")

    # While bob has the room open, what alice says is read as it arrives.
    send(alice, "never mind, it was the rain")
    expect(message_by(bob, "never mind")).to_be_visible()
    open_room_list(bob, server.url)
    expect(room_card(bob, slug).locator(".unread")).to_be_empty()
    expect(bob).to_have_title(re.compile(r"^Rooms · Parley$"))
    # Bob's reading is his alone: carol's count went on rising.
    expect(room_card(carol, slug).locator(".unread-count")).to_have_text("3 new")

    open_room(bob, server.url, slug)
    expect(bob.locator("#new-messages")).to_have_count(0)  # read from then on


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_unread_counts_and_the_divider_look_right(server, site_env, new_user, device: str, scheme: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    slugs = {own_room(site_env, "Garden"): "Garden", own_room(site_env, "Workshop"): "Workshop"}
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    bob.emulate_media(color_scheme=scheme)
    garden, workshop = slugs
    open_room(bob, server.url, garden)
    open_room_list(bob, server.url)

    open_room(alice, server.url, garden)
    send(alice, "The tomatoes are finally ripe.")
    send(alice, f"@{bob.username} want some for dinner?")
    send(alice, "Bring a basket!")
    open_room(alice, server.url, workshop)
    send(alice, "Who borrowed the drill?")

    expect(room_card(bob, garden).locator(".unread-count")).to_have_text("3 new")
    expect(room_card(bob, workshop).locator(".unread-count")).to_have_text("1 new")
    expect(bob).to_have_title("(4) Rooms · Parley")
    assert bob.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    bob.screenshot(path=SCREENSHOTS / f"rooms-unread-{device}-{scheme}.png", full_page=True)

    room_card(bob, garden).click()
    expect(bob.locator("#new-messages")).to_be_visible()
    expect(bob.locator("#members")).to_contain_text(bob.username)
    bob.screenshot(path=SCREENSHOTS / f"room-new-messages-{device}-{scheme}.png")
