"""Editing and deleting your own messages, as two people see it: live, in place, no script of ours."""

import itertools

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import create_rooms, message_by, mute, open_menu, open_room, send

_rooms = itertools.count(1)


@pytest.fixture
def room(site_env: dict[str, str]) -> str:
    slug = f"editing-{next(_rooms)}"
    create_rooms(site_env, {slug: "Workshop"})
    return slug


def open_edit_form(page: Page, text: str, typed: str | None = None) -> None:
    """Edit the message showing `text`; the form holds what was typed (the Markdown, if any)."""
    open_menu(page, text)
    message_by(page, text).get_by_role("button", name="Edit").click()
    expect(page.locator("#messages form.editing [name=message]")).to_have_value(typed or text)


def test_an_edit_and_a_delete_show_live_to_the_other_person(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(alice, "Meet at 9")
    send(alice, "Wrong room, sorry")
    expect(message_by(bob, "Wrong room, sorry")).to_be_visible()

    open_edit_form(alice, "Meet at 9")
    alice.locator("form.editing [name=message]").fill("Meet at **10**")
    alice.locator("form.editing").get_by_role("button", name="Save").click()

    for page in (alice, bob):
        edited = page.locator("#messages .message", has_text="Meet at 10")
        expect(edited.locator("strong")).to_have_text("10")
        expect(edited.locator(".edited")).to_have_text("(edited)")
    expect(alice.locator("form.editing")).to_have_count(0)

    open_menu(alice, "Wrong room, sorry")
    message_by(alice, "Wrong room, sorry").locator(".confirm-delete summary").click()
    message_by(alice, "Wrong room, sorry").get_by_role("button", name="Yes, delete it").click()
    for page in (alice, bob):
        expect(page.locator("#messages")).to_contain_text("Message deleted")
        expect(page.locator("#messages")).not_to_contain_text("Wrong room, sorry")


def test_cancel_puts_the_message_back(server, new_user, room):
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, room)
    send(alice, "Keep this as it is")

    open_edit_form(alice, "Keep this as it is")
    alice.locator("form.editing [name=message]").fill("Changed my mind")
    alice.locator("form.editing").get_by_role("link", name="Cancel").click()

    expect(alice.locator("form.editing")).to_have_count(0)
    expect(message_by(alice, "Keep this as it is")).to_be_visible()
    expect(message_by(alice, "Keep this as it is").locator(".edited")).to_have_count(0)


def test_only_the_author_is_offered_edit_and_delete(server, new_user, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(alice, "Alice's words")
    expect(message_by(bob, "Alice's words")).to_be_visible()

    open_menu(bob, "Alice's words")

    menu = message_by(bob, "Alice's words").locator(".menu")
    expect(menu.get_by_text("Report…")).to_be_visible()
    expect(menu.get_by_role("button", name="Edit")).to_have_count(0)
    expect(menu.locator(".confirm-delete")).to_have_count(0)


def test_a_crafted_edit_of_someone_elses_message_is_refused(server, new_user, room):
    """Bob's own edit form, its hidden message id changed to Alice's message: htmx sends it as is."""
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(alice, "Alice's original")
    send(bob, "Bob's own")
    target_id = (message_by(bob, "Alice's original").get_attribute("id") or "").removeprefix("message-")

    open_edit_form(bob, "Bob's own")
    bob.locator("form.editing input[name=message_id]").evaluate(
        "(input, id) => { input.value = id; }", target_id
    )
    bob.locator("form.editing [name=message]").fill("Bob was here")
    bob.locator("form.editing").get_by_role("button", name="Save").click()

    expect(bob.locator("#chat-notice")).to_have_text("You can only change your own messages.")
    expect(bob.locator("form.editing [name=message]")).to_have_value("Bob was here")  # nothing lost
    bob.wait_for_timeout(300)
    for page in (alice, bob):
        expect(message_by(page, "Alice's original")).to_be_visible()
        expect(page.locator("#messages")).not_to_contain_text("Bob was here")


def test_a_muted_author_is_refused_an_edit_in_a_sentence(server, new_user, site_env, room):
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(alice, "Said before the mute")
    open_edit_form(alice, "Said before the mute")

    mute(site_env, alice.username, room)
    alice.locator("form.editing [name=message]").fill("Said after the mute")
    alice.locator("form.editing").get_by_role("button", name="Save").click()

    expect(alice.locator("#chat-notice")).to_contain_text("You're muted in this room until")
    expect(alice.locator("#chat-notice")).to_contain_text("so you can't edit messages.")
    expect(alice.locator("form.editing [name=message]")).to_have_value("Said after the mute")
    expect(message_by(bob, "Said before the mute")).to_be_visible()
    expect(bob.locator("#messages")).not_to_contain_text("Said after the mute")
