"""A bot posts with one HTTP request, and a browser with the room open sees it at once, marked as
a bot. Screenshots of bot messages at desktop and phone widths land in e2e/screenshots/."""

import http.client
import json
import uuid

import pytest
from playwright.sync_api import expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, message_by, open_room, send
from testsupport.servers import DaphneServer, manage

BOT_IN_A_ROOM = """
import json
from chat import bots
from chat.models import Room
room = Room.objects.create(slug={slug!r}, name="Builds")
bot, key = bots.create({name!r}, initial="C")
bots.set_rooms(bot, [room])
print(json.dumps(key))
"""


def bot_in_a_room(site_env: dict[str, str], slug: str, name: str) -> str:
    output = manage(site_env, "shell", "-c", BOT_IN_A_ROOM.format(slug=slug, name=name))
    return json.loads(output.strip().splitlines()[-1])


def bot_posts(server: DaphneServer, slug: str, key: str, text: str) -> int:
    """What a CI job sends: one POST with the key in the Authorization header."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/markdown"}
        connection.request("POST", f"/api/rooms/{slug}/messages", body=text.encode(), headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 201, body
        return json.loads(body)["id"]
    finally:
        connection.close()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_bots_post_shows_live_with_its_badge(server, new_user, site_env, device: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    slug, name = f"builds-{device}-{tag}", f"ci{tag}"
    key = bot_in_a_room(site_env, slug, name)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    open_room(alice, server.url, slug)
    send(alice, "Is main green again?")

    bot_posts(server, slug, key, "**Build #212 passed** on `main` in 4m 12s. All 1,024 tests green.")
    bot_posts(server, slug, key, "Deployed `v2.3.1` to staging: https://staging.example.com")

    posted = message_by(alice, "Build #212 passed")
    expect(posted).to_be_visible()  # live: the page was not reloaded
    expect(posted.locator(".author")).to_have_text(name)
    expect(posted.locator(".bot-badge")).to_have_text("bot")
    expect(posted.locator(".avatar")).to_have_text("C")
    expect(posted.locator(".body strong")).to_have_text("Build #212 passed")
    expect(message_by(alice, "Deployed")).to_be_visible()
    # A person's message carries no badge.
    expect(message_by(alice, "Is main green again?").locator(".bot-badge")).to_have_count(0)
    overflow = alice.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    alice.screenshot(path=str(SCREENSHOTS / f"bot-messages-{device}.png"))

    # Reloaded, the history shows the same badge (history is read in one query, not per message).
    alice.reload()
    expect(message_by(alice, "Build #212 passed").locator(".bot-badge")).to_have_text("bot")


def test_a_person_opens_a_direct_message_with_a_bot(server, new_user, site_env) -> None:
    tag = uuid.uuid4().hex[:6]
    slug, name = f"builds-dm-{tag}", f"helper{tag}"
    bot_in_a_room(site_env, slug, name)
    alice = new_user(server.url, "alice")

    alice.goto(f"{server.url}/people/{name}/")
    expect(alice.locator("h1 .bot-badge")).to_have_text("bot")
    alice.get_by_role("link", name="Send a message").click()
    expect(alice.locator("h1 .bot-badge")).to_have_text("bot")
    alice.get_by_role("button", name="Start the conversation").click()

    expect(alice.locator(".direct-title .bot-badge")).to_have_text("bot")
    send(alice, f"hello {name}")
    expect(message_by(alice, f"hello {name}")).to_be_visible()
    alice.goto(f"{server.url}/")
    expect(alice.locator(".room-card", has_text=name).locator(".bot-badge")).to_have_text("bot")
