"""Every message action by keyboard alone, in real Chromium: Tab, Shift+Tab, Enter, Space, Escape.

No clicks and no `.focus()` here: focus moves only by keys, and after each action the test checks
where it went (never to the page's body). Screenshots of the focused states, at 1280 and 390 px,
light and dark, go to e2e/screenshots/keyboard-*.png.
"""

import itertools
import random
import re
import string

import pytest
from playwright.sync_api import Locator, Page, expect

from e2e.conftest import SCREENSHOTS, create_rooms, grant, message_by, open_room, send
from testsupport.servers import manage

_rooms = itertools.count(1)


@pytest.fixture
def room(site_env: dict[str, str]) -> str:
    slug = f"keys-{next(_rooms)}"
    create_rooms(site_env, {slug: "Keys"})
    return slug


def tab_to(page: Page, target: Locator, key: str = "Tab", most: int = 80) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus, as a keyboard user would."""
    for pressed in range(most + 1):
        if target.evaluate("element => element === document.activeElement"):
            return
        if pressed < most:
            page.keyboard.press(key)
    raise AssertionError(f"{target} was not reached in {most} presses of {key}")


def message(page: Page, text: str) -> Locator:
    """The first message showing `text` (a reply quoting it comes after it)."""
    return message_by(page, text).first


def composer(page: Page) -> Locator:
    return page.locator("#message-form input[name=message]")


def menu_button(page: Page, text: str) -> Locator:
    return message(page, text).locator(".message-actions > summary")


def open_menu_by_keyboard(page: Page, text: str, key: str = "Shift+Tab") -> Locator:
    """From the composer, back (Shift+Tab) to the message's ··· button, and open it with Enter."""
    button = menu_button(page, text)
    tab_to(page, button, key)
    expect(button).to_have_css("opacity", "1")  # shown on focus, not only on hover
    page.keyboard.press("Enter")
    menu = message(page, text).locator(".message-actions .menu")
    expect(menu).to_be_visible()
    return menu


def shoot(page: Page, name: str) -> None:
    """The focused state at both widths, light and dark; the page is left as it was found."""
    for width, height, device in ((1280, 800, "desktop"), (390, 844, "phone")):
        page.set_viewport_size({"width": width, "height": height})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=SCREENSHOTS / f"keyboard-{name}-{device}-{scheme}.png")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.emulate_media(color_scheme="light")


def test_post_react_reply_report_and_open_a_permalink_by_keyboard(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(bob, server.url, room)
    send(bob, "Who is bringing the cake?")
    open_room(alice, server.url, room)

    # Post: the composer has the focus on arrival and keeps it after sending.
    expect(composer(alice)).to_be_focused()
    alice.keyboard.type("Hello by keyboard")
    alice.keyboard.press("Enter")
    expect(message(bob, "Hello by keyboard")).to_be_visible()
    expect(composer(alice)).to_be_focused()
    expect(composer(alice)).to_have_value("")

    # The ··· button is hidden until hovered or focused (on a screen with a mouse).
    expect(menu_button(alice, "Who is bringing the cake?")).to_have_css("opacity", "0")
    # React: the menu opens with Enter; the emoji pressed keeps the focus when the buttons are replaced.
    menu = open_menu_by_keyboard(alice, "Who is bringing the cake?")
    shoot(alice, "menu-open")
    cake = menu.get_by_role("button", name="🎉", exact=True)
    tab_to(alice, cake)
    alice.keyboard.press("Enter")
    expect(message(bob, "Who is bringing the cake?").locator(".reaction")).to_have_text("🎉 1")
    expect(cake).to_have_attribute("aria-pressed", "true")
    expect(cake).to_be_focused()
    shoot(alice, "reaction-focused")
    alice.keyboard.press("Space")  # toggled off again, focus still there
    expect(message(bob, "Who is bringing the cake?").locator(".reaction")).to_have_count(0)
    expect(cake).to_have_attribute("aria-pressed", "false")
    expect(cake).to_be_focused()

    # Reply: the menu closes, the bar says what is answered, and the (empty) box has the focus.
    tab_to(alice, menu.get_by_role("button", name="Reply"))
    alice.keyboard.press("Enter")
    bar = alice.locator("#reply-bar")
    expect(bar).to_contain_text(f"Replying to {bob.username}")
    expect(composer(alice)).to_be_focused()
    alice.keyboard.type("Me, a lemon one")
    alice.keyboard.press("Enter")
    reply = message(bob, "Me, a lemon one")
    expect(reply.locator(".quote")).to_contain_text("Who is bringing the cake?")
    expect(composer(alice)).to_be_focused()
    expect(bar).to_be_hidden()

    # With a draft in the box, Reply leaves the box alone and focuses the bar (read out); the
    # bar's Cancel, reached by Shift+Tab from the box, says so and keeps the draft.
    alice.keyboard.type("never mind")
    menu = open_menu_by_keyboard(alice, "Who is bringing the cake?")
    tab_to(alice, menu.get_by_role("button", name="Reply"))
    alice.keyboard.press("Enter")
    expect(bar.locator("p")).to_be_focused()
    tab_to(alice, composer(alice), most=2)
    tab_to(alice, bar.get_by_role("link", name="Cancel"), "Shift+Tab")
    alice.keyboard.press("Enter")
    expect(bar).to_be_hidden()
    expect(alice.locator("#chat-notice")).to_be_focused()
    expect(alice.locator("#chat-notice")).to_have_text("Reply cancelled.")
    expect(composer(alice)).to_have_value("never mind")

    # A menu closes with Enter on its button again, which keeps the focus.
    open_menu_by_keyboard(alice, "Who is bringing the cake?")
    alice.keyboard.press("Enter")
    expect(message(alice, "Who is bringing the cake?").locator(".message-actions .menu")).to_be_hidden()
    expect(menu_button(alice, "Who is bringing the cake?")).to_be_focused()

    # Report: a nested <details>, its reason, its button.
    alice.keyboard.press("Enter")  # open again
    menu = message(alice, "Who is bringing the cake?").locator(".message-actions .menu")
    report = menu.locator(".report > summary")
    tab_to(alice, report)
    alice.keyboard.press("Enter")
    alice.keyboard.press("Tab")
    expect(menu.get_by_label("Reason for reporting")).to_be_focused()
    alice.keyboard.type("Testing the report path")
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-notice")).to_contain_text("Thanks for reporting it.")
    assert not alice.evaluate("document.activeElement === document.body")

    # Open a permalink: the page opens at the message, the focus just before it.
    tab_to(alice, menu.get_by_role("link", name="Link to this message"))
    alice.keyboard.press("Enter")
    pk = _id_of(bob, "Who is bringing the cake?")
    expect(alice).to_have_url(f"{server.url}/rooms/{room}/messages/{pk}/#message-{pk}")
    expect(alice.locator(".permalink-marker")).to_be_focused()
    alice.keyboard.press("Tab")  # into the linked message: its ··· button
    expect(menu_button(alice, "Who is bringing the cake?")).to_be_focused()


def _id_of(page: Page, text: str) -> str:
    return (message(page, text).get_attribute("id") or "").removeprefix("message-")


def test_edit_cancel_delete_and_remove_by_keyboard(server, site_env, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    grant(site_env, bob.username, moderator_of=room)
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(alice, "Meet at 9")
    send(alice, "Wrong room, sorry")
    send(alice, "Buy cheap watches")

    # Edit: Enter on Edit swaps in the form, its box focused; Enter saves.
    menu = open_menu_by_keyboard(alice, "Meet at 9")
    tab_to(alice, menu.get_by_role("button", name="Edit"))
    alice.keyboard.press("Enter")
    box = alice.locator("form.editing [name=message]")
    expect(box).to_be_focused()
    expect(box).to_have_value("Meet at 9")
    shoot(alice, "edit-form")
    alice.keyboard.press("End")
    alice.keyboard.press("Backspace")
    alice.keyboard.type("10")
    alice.keyboard.press("Enter")
    expect(message(bob, "Meet at 10").locator(".edited")).to_have_text("(edited)")
    expect(alice.locator("form.editing")).to_have_count(0)
    expect(alice.locator("#chat-notice")).to_be_focused()  # not lost with the form

    # Cancel puts the message back and the focus on its ··· button (autofocus, ?focus=menu).
    menu = open_menu_by_keyboard(alice, "Meet at 10")
    tab_to(alice, menu.get_by_role("button", name="Edit"))
    alice.keyboard.press("Enter")
    expect(box).to_be_focused()
    alice.keyboard.type(" or never")
    tab_to(alice, alice.locator("form.editing").get_by_role("link", name="Cancel"))
    alice.keyboard.press("Enter")
    expect(alice.locator("form.editing")).to_have_count(0)
    expect(message(alice, "Meet at 10")).not_to_contain_text("never")
    expect(menu_button(alice, "Meet at 10")).to_be_focused()

    # Escape cancels too (the form is a <dialog closedby="closerequest">), focus as for Cancel.
    alice.keyboard.press("Enter")
    tab_to(alice, message(alice, "Meet at 10").get_by_role("button", name="Edit"))
    alice.keyboard.press("Enter")
    expect(box).to_be_focused()
    alice.keyboard.type(" or 11")
    alice.keyboard.press("Escape")
    expect(alice.locator("form.editing")).to_have_count(0)
    expect(message(alice, "Meet at 10")).not_to_contain_text("or 11")
    expect(menu_button(alice, "Meet at 10")).to_be_focused()
    expect(message(bob, "Meet at 10")).not_to_contain_text("or 11")

    # Delete, confirmed in a nested <details>: the focus waits on the outcome.
    menu = open_menu_by_keyboard(alice, "Wrong room, sorry")
    tab_to(alice, menu.locator(".confirm-delete > summary"))
    alice.keyboard.press("Enter")
    tab_to(alice, menu.get_by_role("button", name="Yes, delete it"))
    alice.keyboard.press("Enter")
    for page in (alice, bob):
        expect(page.locator("#messages")).to_contain_text("Message deleted")
        expect(page.locator("#messages")).not_to_contain_text("Wrong room, sorry")
    expect(alice.locator("#chat-notice")).to_be_focused()
    expect(alice.locator("#chat-notice")).to_have_text("Message deleted.")
    # From there the composer is one Tab away.
    tab_to(alice, composer(alice), most=3)

    # A moderator removes a message from its menu, with a reason; the focus waits on the outcome.
    menu = open_menu_by_keyboard(bob, "Buy cheap watches")
    tab_to(bob, menu.get_by_label("Reason for removing"))
    bob.keyboard.type("Spam")
    bob.keyboard.press("Enter")
    expect(alice.locator("#messages")).to_contain_text("Message removed by a moderator")
    expect(bob.locator("#chat-notice")).to_be_focused()
    expect(bob.locator("#chat-notice")).to_have_text(f"Removed a message by {alice.username}.")


def test_the_menu_button_shows_on_touch_screens_without_hover(server, new_user, room):
    alice = new_user(server.url, "alice", viewport={"width": 390, "height": 844}, touch=True)
    open_room(alice, server.url, room)
    send(alice, "Seen on a phone")
    expect(menu_button(alice, "Seen on a phone")).to_have_css("opacity", "1")


def test_upload_a_file_by_keyboard(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)

    picker = alice.get_by_label("File to attach")
    tab_to(alice, picker)
    with alice.expect_file_chooser() as chosen:
        alice.keyboard.press("Space")  # opens the system's file picker
    chosen.value.set_files(files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Agenda: cake"}])
    alice.keyboard.press("Tab")
    expect(alice.get_by_label("Caption for the file")).to_be_focused()
    alice.keyboard.type("The agenda")
    alice.keyboard.press("Enter")
    expect(message(bob, "The agenda").locator(".file-card")).to_contain_text("notes.txt")
    # The form is replaced (emptied); the focus stays in its caption box, not on the page's body.
    expect(alice.get_by_label("Caption for the file")).to_be_focused()
    expect(alice.get_by_label("Caption for the file")).to_have_value("")


def test_moderate_by_keyboard_from_the_menu_and_the_moderate_panel(server, site_env, new_user, room):
    mod, carol, dave = (new_user(server.url, name) for name in ("mod", "carol", "dave"))
    grant(site_env, mod.username, moderator_of=room)
    for page in (carol, dave, mod):
        open_room(page, server.url, room)
    send(carol, "Buy cheap watches")
    send(dave, "Spam spam spam")
    expect(message(mod, "Spam spam spam")).to_be_visible()
    mod.keyboard.type("Half a thought")  # a draft, which room-wide redraws below must keep

    # Mute from the message's menu: how long (arrow keys on the select), why, Enter.
    menu = open_menu_by_keyboard(mod, "Buy cheap watches")
    tab_to(mod, menu.get_by_label("Mute for"))
    mod.keyboard.press("ArrowDown")  # 10 minutes -> 1 hour
    expect(menu.get_by_label("Mute for")).to_have_value("60")
    mod.keyboard.press("Tab")
    expect(menu.get_by_label("Reason for muting")).to_be_focused()
    mod.keyboard.type("Calm down")
    mod.keyboard.press("Enter")
    expect(mod.locator("#chat-notice")).to_contain_text(f"{carol.username} is muted until")
    expect(carol.locator("#message-form")).to_contain_text("You're muted in this room until")
    expect(carol.locator("#message-form input[name=message]")).to_have_count(0)
    expect(menu.get_by_label("Reason for muting")).to_be_focused()  # the menu was not replaced

    # Ban from the next message's menu, forward with Tab through the rest of this one.
    menu = open_menu_by_keyboard(mod, "Spam spam spam", key="Tab")
    tab_to(mod, menu.get_by_label("Reason for banning"))
    mod.keyboard.type("Spam")
    mod.keyboard.press("Enter")
    expect(dave.locator("#message-form")).to_contain_text("You have been banned from #Keys.")
    expect(mod.locator("#chat-notice")).to_have_text(f"{dave.username} is banned from this room.")
    expect(menu.get_by_label("Reason for banning")).to_be_focused()

    # The Moderate panel, back up past the messages: it lists both, with their reasons.
    panel_button = mod.locator("#moderation > summary")
    tab_to(mod, panel_button, "Shift+Tab", most=120)
    mod.keyboard.press("Enter")
    panel = mod.locator("#moderation-tools")
    expect(panel).to_be_visible()
    sanctions = panel.locator(".sanctions")
    expect(sanctions).to_contain_text(f"{carol.username} muted until")
    expect(sanctions).to_contain_text("Calm down")
    expect(sanctions).to_contain_text(f"{dave.username} banned: Spam")

    # Lock and unlock: the panel is replaced each time, the pressed button kept (focus and all).
    lock = panel.get_by_role("button", name="Lock room")
    tab_to(mod, lock)
    mod.keyboard.press("Enter")
    expect(carol.locator("#room-header")).to_contain_text("Locked")
    expect(mod.locator("#chat-notice")).to_have_text("Locked: only moderators can post now.")
    expect(panel).to_contain_text("Only moderators can post.")  # the panel itself was swapped
    unlock = panel.get_by_role("button", name="Unlock room")
    expect(unlock).to_be_focused()
    shoot(mod, "moderate-panel")
    mod.keyboard.press("Space")
    expect(carol.locator("#room-header")).not_to_contain_text("Locked")
    expect(panel).to_contain_text("Locking makes the room read-only")
    expect(lock).to_be_focused()

    # A setting: slow mode by arrow key, Tab to Save settings, Enter; the button keeps the focus.
    tab_to(mod, panel.get_by_label("Slow mode"))
    mod.keyboard.press("ArrowDown")  # Off -> 5 seconds
    save = panel.get_by_role("button", name="Save settings")
    tab_to(mod, save)
    mod.keyboard.press("Enter")
    expect(carol.locator("#room-header")).to_contain_text("Slow mode · 5s")
    expect(mod.locator("#chat-notice")).to_have_text("Room settings saved.")
    expect(panel.get_by_label("Slow mode")).to_have_value("5")  # the new panel
    expect(save).to_be_focused()
    expect(composer(mod)).to_have_value("Half a thought")  # the form, redrawn thrice, kept its box

    # Unmute, then Unban, from the lists: their rows leave with the button; the focus waits on the notice.
    tab_to(mod, sanctions.get_by_role("button", name="Unmute"))
    mod.keyboard.press("Enter")
    expect(carol.locator("#message-form input[name=message]")).to_be_visible()
    expect(sanctions).not_to_contain_text(carol.username)
    expect(mod.locator("#chat-notice")).to_be_focused()
    tab_to(mod, panel.get_by_role("button", name="Unban"))
    mod.keyboard.press("Enter")
    expect(mod.locator("#chat-notice")).to_have_text(f"{dave.username} is no longer banned.")
    expect(panel.locator(".sanctions")).to_have_count(0)  # nobody muted or banned: no list
    expect(mod.locator("#chat-notice")).to_be_focused()

    # The panel closes with Enter on its button again, which keeps the focus.
    tab_to(mod, panel_button, "Shift+Tab")
    mod.keyboard.press("Enter")
    expect(panel).to_be_hidden()
    expect(panel_button).to_be_focused()


def test_search_and_open_a_hit_by_keyboard(server, new_user, room):
    word = "".join(random.choices(string.ascii_lowercase, k=10))  # found only in this test's messages
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    send(alice, f"The {word} is in the shed")
    send(alice, f"Bring the {word} back")

    # From the top of the room list: Tab to Search in the header, Enter; the box has the focus.
    bob.goto(f"{server.url}/")
    tab_to(bob, bob.get_by_role("navigation", name="Account").get_by_role("link", name="Search"))
    bob.keyboard.press("Enter")
    search_box = bob.get_by_role("searchbox", name="Search messages")
    expect(search_box).to_be_focused()
    bob.keyboard.type(word)
    bob.keyboard.press("Enter")  # the form's own GET: an address to share, the box focused again
    expect(bob).to_have_url(re.compile(rf"/search/\?q={word}(&|$)"))
    expect(search_box).to_be_focused()
    hits = bob.locator(".hit-link")
    expect(hits).to_have_count(2)

    # Through the results with Tab and back with Shift+Tab; Enter opens the one focused.
    tab_to(bob, hits.nth(0))
    bob.keyboard.press("Tab")
    expect(hits.nth(1)).to_be_focused()
    bob.keyboard.press("Shift+Tab")
    expect(hits.nth(0)).to_be_focused()
    opened = hits.nth(0).inner_text()
    bob.keyboard.press("Enter")
    expect(bob.locator(".permalink-marker")).to_be_focused()
    text = "Bring the" if "Bring the" in opened else "in the shed"
    pk = _id_of(alice, text)
    expect(bob).to_have_url(f"{server.url}/rooms/{room}/messages/{pk}/#message-{pk}")
    bob.keyboard.press("Tab")  # into the message found: its ··· button
    expect(menu_button(bob, text)).to_be_focused()


ARCHIVE = """
from django.contrib.auth.models import User
from chat.models import Message, Room
room = Room.objects.get(slug={slug!r})
author, _ = User.objects.get_or_create(username="archivist")
Message.objects.bulk_create(
    Message(room=room, author=author, body=f"Old note {{n:03}}") for n in range(1, 61)
)
"""


def test_load_older_messages_by_keyboard_keeps_the_focus_in_place(server, site_env, new_user, room):
    manage(site_env, "shell", "-c", ARCHIVE.format(slug=room))  # 60: one page (50) and 10 more
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, room)
    expect(message(alice, "Old note 011")).to_be_attached()
    expect(message_by(alice, "Old note 010")).to_have_count(0)

    older = alice.get_by_role("link", name="Load older messages")
    tab_to(alice, older, "Shift+Tab")
    alice.keyboard.press("Enter")
    expect(message(alice, "Old note 001")).to_be_attached()
    expect(alice.locator("#messages")).to_contain_text("This is the start of #Keys.")
    # The button is gone with the swap; the focus waits just below the page loaded, in view.
    expect(alice.locator(".older-loaded")).to_be_focused()
    expect(message(alice, "Old note 011")).to_be_in_viewport()
    alice.keyboard.press("Shift+Tab")  # up into the older page: its newest message's ··· button
    expect(menu_button(alice, "Old note 010")).to_be_focused()
    alice.keyboard.press("Tab")  # down (the marker is no Tab stop): the first one shown before
    expect(menu_button(alice, "Old note 011")).to_be_focused()
