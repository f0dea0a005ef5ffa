"""What a screen reader is given to announce, asserted on Chromium's accessibility tree.

The message list (#messages) is no live region; each new message is appended there and, once, as
"author: text", to the log #announcements (see docs/accessibility.md, "Live region and keyboard").
"""

import itertools

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, create_rooms, message_by, open_room, send

_rooms = itertools.count(1)

# Anything a screen reader reads out when it changes.
LIVE = "[role=log], [role=status], [role=alert], [aria-live]:not([aria-live=off])"


@pytest.fixture
def room(site_env: dict[str, str]) -> str:
    slug = f"announced-{next(_rooms)}"
    create_rooms(site_env, {slug: "Announced"})
    return slug


def react_by_keyboard(page: Page, text: str, emoji: str) -> None:
    message_by(page, text).locator(".message-actions > summary").focus()
    page.keyboard.press("Enter")
    button = message_by(page, text).locator(".reaction-picker").get_by_role("button", name=emoji, exact=True)
    button.focus()
    page.keyboard.press("Enter")


def test_a_new_message_is_announced_once_author_then_text(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    send(alice, "Said before Bob came")
    open_room(bob, server.url, room)
    expect(message_by(bob, "Said before Bob came")).to_be_visible()

    log = bob.get_by_role("log", name="New messages")
    expect(log).to_have_count(1)
    expect(log).to_match_aria_snapshot('- log "New messages"')  # the history is not in it

    send(alice, "Lunch at **noon**?")
    # Author, then the text as words (no markup, no time, no menu button).
    expect(log).to_match_aria_snapshot(f'- log "New messages":\n  - text: "{alice.username}: Lunch at noon?"')
    # The message itself shows as usual, outside any live region.
    expect(message_by(bob, "Lunch at noon?")).to_be_visible()
    expect(bob.locator(LIVE).locator(".message")).to_have_count(0)
    # Alice's own message is not read back to her.
    expect(alice.get_by_role("log", name="New messages")).to_match_aria_snapshot('- log "New messages"')

    # A reaction and an edit change the message in place: nothing more is announced.
    react_by_keyboard(alice, "Lunch at noon?", "👍")
    expect(message_by(bob, "Lunch at noon?").locator(".reaction")).to_have_text("👍 1")
    send(bob, "Yes please")
    expect(log).to_match_aria_snapshot(f'- log "New messages":\n  - text: "{alice.username}: Lunch at noon?"')

    # The member list, the typing line and the counts stay outside every live region.
    alice.locator("#message-form input[name=message]").press_sequentially("typing away")
    expect(bob.locator("#typing")).to_have_text(f"{alice.username} is typing…")
    for outside in ("#members", "#typing", "#room-header"):
        expect(bob.locator(LIVE).locator(outside)).to_have_count(0)
        expect(bob.locator(outside)).to_have_count(1)
    expect(log).to_match_aria_snapshot(f'- log "New messages":\n  - text: "{alice.username}: Lunch at noon?"')


def test_a_reconnect_replays_the_history_without_announcing_it(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    for text in ("One", "Two", "Three"):
        send(alice, f"History line {text}")
    expect(message_by(bob, "History line Three")).to_be_visible()
    log = bob.get_by_role("log", name="New messages")
    expect(log.locator(".announcement")).to_have_count(3)

    expect(bob.locator("#live-messages .message")).to_have_count(3)  # arrived live
    server.stop()
    server.start()
    # The socket reconnects and replaces #messages whole with the history, the three in it now:
    # shown, not announced.
    expect(bob.locator("#live-messages .message")).to_have_count(0, timeout=20_000)
    expect(bob.locator("#messages .message")).to_have_count(3)
    expect(bob.locator(LIVE).locator(".message")).to_have_count(0)
    send(alice, "After the restart")
    expect(message_by(bob, "After the restart")).to_have_count(1)
    # The log got the one new message only, beside the three from before the restart (each line in
    # the slot of its message's id: the log holds a fixed number of them).
    announced = log.locator(".announcement")
    expect(announced).to_have_count(4)
    expect(announced.filter(has_text="After the restart")).to_have_text(
        f"{alice.username}: After the restart"
    )


def test_paused_live_updates_hold_new_messages_until_asked(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    bob.goto(f"{server.url}/settings/")
    bob.get_by_label("Pause live updates in rooms").check()
    bob.get_by_role("button", name="Save live updates").press("Enter")
    expect(bob.locator(".live-updates-setting .saved")).to_have_text("Saved.")
    expect(bob.get_by_label("Pause live updates in rooms")).to_be_checked()
    open_room(alice, server.url, room)
    send(alice, "Said before Bob came")
    open_room(bob, server.url, room)
    expect(message_by(bob, "Said before Bob came")).to_be_visible()

    catch_up = bob.get_by_role("button", name="Show new messages", exact=True)
    expect(catch_up).to_be_visible()
    held = bob.locator("#live-messages .message")
    send(alice, "Held one")
    send(alice, "Held two")
    expect(held).to_have_count(2)
    # Not shown, not in the accessibility tree, not announced: the log is gone for Bob.
    expect(message_by(bob, "Held two")).to_be_hidden()
    expect(bob.get_by_role("log")).to_have_count(0)
    expect(bob.get_by_role("article").filter(has_text="Held")).to_have_count(0)
    send(bob, "My own shows at once")  # what Bob posts is not held from him
    expect(message_by(bob, "My own shows at once")).to_be_visible()
    expect(bob.get_by_role("article").filter(has_text="My own shows at once")).to_have_count(1)
    bob.screenshot(path=SCREENSHOTS / "live-updates-paused-desktop-light.png")  # "Show new messages (2)"

    catch_up.focus()
    bob.keyboard.press("Enter")
    expect(message_by(bob, "Held one")).to_be_visible()
    expect(message_by(bob, "Held two")).to_be_visible()
    expect(held).to_have_count(0)  # all in the history now
    expect(catch_up).to_be_focused()  # still there, for next time
    expect(bob.locator("#messages .message")).to_have_count(4)

    # Alice has not paused: the same broadcast reaches her page live and announced.
    expect(alice.get_by_role("button", name="Show new messages")).to_be_hidden()
    expect(message_by(alice, "Held two")).to_be_visible()


def test_pausing_in_settings_reaches_an_open_room_at_once(server, new_user, room):
    """Saved on another tab: the open room switches without a reload, both ways."""
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    settings_tab = bob.context.new_page()
    settings_tab.goto(f"{server.url}/settings/")
    pause_box = settings_tab.get_by_label("Pause live updates in rooms")
    save = settings_tab.get_by_role("button", name="Save live updates")
    catch_up = bob.get_by_role("button", name="Show new messages", exact=True)
    send(alice, "Seen live")
    expect(message_by(bob, "Seen live")).to_be_visible()
    expect(catch_up).to_be_hidden()

    pause_box.check()
    save.click()
    expect(catch_up).to_be_visible()  # the paused bar, on the room tab, at once
    expect(message_by(bob, "Seen live")).to_be_visible()  # what had shown stays in sight
    expect(bob.get_by_role("log")).to_have_count(0)
    send(alice, "Held live")
    expect(bob.locator("#live-messages .message")).to_have_count(1)
    expect(message_by(bob, "Held live")).to_be_hidden()
    bob.screenshot(path=SCREENSHOTS / "live-updates-paused-live-desktop-light.png")  # no reload

    pause_box.uncheck()
    save.click()
    # Live again: what was held is brought in (the history, as "Show new messages" does), the bar goes.
    expect(message_by(bob, "Held live")).to_be_visible()
    expect(bob.locator("#live-messages .message")).to_have_count(0)
    expect(catch_up).to_be_hidden()
    log = bob.get_by_role("log", name="New messages")
    expect(log.locator(".announcement")).to_have_count(0)  # the held line is not left to be read out
    send(alice, "Live again")
    expect(log).to_match_aria_snapshot(f'- log "New messages":\n  - text: "{alice.username}: Live again"')
