"""Mentions and replies as two people see them in real Chromium: the highlight, the count on the
room list, suggestions while typing, the reply bar and the quote's link. No script of ours."""

import itertools
import re

from playwright.sync_api import Page, expect

from e2e.conftest import create_rooms, message_by, open_room, send

_rooms = itertools.count(1)


def own_room(site_env: dict[str, str], name: str = "Porch") -> str:
    """A room per test, so people from other tests don't show up in it."""
    slug = f"talk-{next(_rooms)}"
    create_rooms(site_env, {slug: name})
    return slug


def start_reply(page: Page, text: str) -> None:
    """Reply from the message's ··· menu."""
    message = message_by(page, text).first
    message.hover()
    message.locator(".message-actions summary").click()
    message.locator(".message-actions .menu button.reply").click()
    # The answer replaces the message box too (with the draft, focused): typing before it lands
    # would be typing into the box it replaces.
    expect(page.locator("#reply-bar")).to_contain_text("Replying to")


def room_card(page: Page, name: str):
    return page.locator(".room-card", has_text=f"# {name}")


def test_a_mention_highlights_the_message_for_that_person_and_counts_on_their_room_list(
    server, site_env, new_user
):
    slug = own_room(site_env, "Porch")
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, slug)

    # Suggestions while typing: the people who can read the room, completing the name.
    box = alice.locator("#message-form input[name=message]")
    box.press_sequentially(f"ping @{bob.username[:-1]}")
    expect(alice.locator(f'#mention-suggestions option[value="ping @{bob.username} "]')).to_have_count(1)

    send(alice, f"@{bob.username} the porch light is on")
    send(alice, "and nobody else is named here")

    bob.goto(server.url)
    expect(room_card(bob, "Porch").locator(".mention-count")).to_have_text("1 mention")
    alice.goto(server.url)
    expect(room_card(alice, "Porch").locator(".mention-count")).to_have_count(0)

    open_room(bob, server.url, slug)
    named = message_by(bob, "the porch light is on")
    expect(named.locator(".mentions-you")).to_be_visible()
    expect(message_by(bob, "nobody else is named").locator(".mentions-you")).to_be_hidden()
    expect(named.locator("a.mention")).to_have_attribute("href", f"/people/{bob.username}/")
    open_room(alice, server.url, slug)
    expect(message_by(alice, "the porch light is on").locator(".mentions-you")).to_be_hidden()

    # Opening the room read it: the count is gone, fresh despite the cached room list.
    bob.goto(server.url)
    expect(room_card(bob, "Porch")).to_be_visible()
    expect(room_card(bob, "Porch").locator(".mention-count")).to_have_count(0)


def test_a_reply_quotes_its_original_and_links_to_it(server, site_env, new_user):
    slug = own_room(site_env, "Stoop")
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    for page in (alice, bob):
        open_room(page, server.url, slug)
    send(alice, "Who is bringing the folding chairs on Saturday?")
    original = message_by(bob, "folding chairs")
    expect(original).to_be_visible()

    start_reply(bob, "folding chairs")
    bar = bob.locator("#reply-bar")
    expect(bar).to_contain_text(f"Replying to {alice.username}: Who is bringing the folding chairs")
    expect(original.locator(".message-actions .menu")).to_have_count(0)  # the menu closed
    bar.get_by_role("link", name="Cancel").click()
    expect(bar).to_be_hidden()

    start_reply(bob, "folding chairs")
    expect(bar).to_be_visible()
    send(bob, "I will, and a thermos")
    expect(bob.locator("#reply-bar")).to_be_hidden()  # sent: the bar goes with the old form

    reply = message_by(alice, "and a thermos")
    quote = reply.locator(".quote")
    expect(quote).to_contain_text(f"{alice.username} Who is bringing the folding chairs")
    original_id = message_by(alice, "folding chairs").first.get_attribute("id")
    assert original_id is not None
    # The quote is the original's permalink: the room opened around it, wherever it is in the history.
    expect(quote).to_have_attribute("href", f"/messages/{original_id.removeprefix('message-')}/link/")
    quote.click()
    expect(alice).to_have_url(re.compile(f"/rooms/{slug}/messages/\\d+/#{original_id}$"))
    expect(message_by(alice, "folding chairs").first).to_be_in_viewport()
