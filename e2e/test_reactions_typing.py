"""Reactions and "… is typing" between people in real Chromium against a real daphne process."""

import time

from playwright.sync_api import Page, expect

from e2e.conftest import message_by, open_room, send


def react(page: Page, text: str, emoji: str) -> None:
    """Open the message's ··· menu (fetched when opened) and click one emoji."""
    message = message_by(page, text)
    if message.locator(".message-actions").get_attribute("open") != "":
        message.hover()
        message.locator(".message-actions summary").click()
    message.locator(".reaction-picker").get_by_role("button", name=emoji, exact=True).click()


def chip(page: Page, text: str, emoji: str):
    return message_by(page, text).locator(".reaction", has_text=emoji)


def test_two_people_toggle_a_reaction_and_everyone_sees_the_counts(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    carol = new_user(server.url, "carol")
    for page in (alice, bob, carol):
        open_room(page, server.url)
    send(alice, "Cake in the kitchen")

    react(bob, "Cake in the kitchen", "🎉")
    expect(chip(alice, "Cake in the kitchen", "🎉")).to_have_text("🎉 1")
    expect(chip(alice, "Cake in the kitchen", "🎉")).to_have_attribute("title", bob.username)
    # Bob's menu shows his emoji pressed, and his own chip is marked by his page's style.
    picker = message_by(bob, "Cake in the kitchen").locator(".reaction-picker")
    expect(picker.get_by_role("button", name="🎉", exact=True)).to_have_attribute("aria-pressed", "true")
    accent = "rgb(79, 70, 229)"
    expect(chip(bob, "Cake in the kitchen", "🎉")).to_have_css("border-top-color", accent)
    expect(chip(alice, "Cake in the kitchen", "🎉")).not_to_have_css("border-top-color", accent)

    react(carol, "Cake in the kitchen", "🎉")
    expect(chip(alice, "Cake in the kitchen", "🎉")).to_have_text("🎉 2")
    expect(chip(bob, "Cake in the kitchen", "🎉")).to_have_attribute(
        "title", f"{bob.username} and {carol.username}"
    )

    react(bob, "Cake in the kitchen", "🎉")  # toggled off
    expect(chip(alice, "Cake in the kitchen", "🎉")).to_have_text("🎉 1")
    expect(chip(carol, "Cake in the kitchen", "🎉")).to_have_attribute("title", carol.username)
    expect(picker.get_by_role("button", name="🎉", exact=True)).to_have_attribute("aria-pressed", "false")

    alice.reload()  # the history shows them too
    expect(chip(alice, "Cake in the kitchen", "🎉")).to_have_text("🎉 1")


def test_typing_shows_to_the_other_person_and_then_goes_away(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    open_room(alice, server.url)
    open_room(bob, server.url)

    bob.locator("#message-form input[name=message]").press_sequentially("hold on, writing")
    expect(alice.locator("#typing")).to_have_text(f"{bob.username} is typing…")
    expect(bob.locator("#typing")).to_have_text("")
    started = time.monotonic()

    expect(alice.locator("#typing")).to_have_text("", timeout=12_000)
    # Bob's last signal went at most 3 s after his first; it shows for 6 s after that.
    assert 5 <= time.monotonic() - started <= 11

    bob.locator("#message-form input[name=message]").press_sequentially(" more")
    expect(alice.locator("#typing")).to_have_text(f"{bob.username} is typing…")
    bob.locator("#message-form input[name=message]").press("Enter")
    expect(message_by(alice, "hold on, writing more")).to_be_visible()
    expect(alice.locator("#typing")).to_have_text("", timeout=2_000)  # at once, not 6 s later


# Presses the first emoji of a picker the moment it is put in the page, before anything else runs.
PRESS_ON_ARRIVAL = """() => new MutationObserver((changes, observer) => {
  const button = document.querySelector(".reaction-picker button");
  if (button) { observer.disconnect(); button.click(); }
}).observe(document.body, {childList: true, subtree: true})"""


def test_an_emoji_pressed_the_moment_the_menu_shows_reacts_in_place(server, new_user):
    """A quick hand (or a slow phone) presses before htmx has settled the fetched menu: the press
    still goes over the socket, and the page stays (it once posted natively and got a 403)."""
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    for page in (alice, bob):
        open_room(page, server.url)
    send(alice, "Quick hands")
    room_url = bob.url
    bob.evaluate(PRESS_ON_ARRIVAL)
    message_by(bob, "Quick hands").hover()
    message_by(bob, "Quick hands").locator(".message-actions summary").click()

    expect(chip(alice, "Quick hands", "👍")).to_have_text("👍 1")
    expect(chip(bob, "Quick hands", "👍")).to_have_text("👍 1")
    assert bob.url == room_url
