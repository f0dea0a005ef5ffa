"""Notification levels per room in real Chromium: chosen from the room list by keyboard and by mouse,
followed live by the person's other tab; what each level counts; a Hidden room leaving the list and
coming back while it has a mention; the control in the room's header. No script of ours."""

import re

from playwright.sync_api import Locator, Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, open_room, send
from e2e.test_unread import open_room_list, own_room


def row(page: Page, slug: str) -> Locator:
    """A room's row on the list (its card links to the room, or to its first unread mention)."""
    return page.locator(".room-row", has=page.locator(f'.room-card[href^="/rooms/{slug}/"]'))


def choose(page: Page, slug: str, level: str) -> None:
    """Open the room's level menu and press a level, with the mouse."""
    control = row(page, slug).locator(".level-control")
    if not control.locator("details[open]").count():  # after a choice it stays open on it
        control.locator("summary").click()
    control.get_by_role("button", name=re.compile(f"^{level}")).click()
    expect(control.get_by_role("button", name=re.compile(f"^{level}"))).to_have_attribute(
        "aria-pressed", "true"
    )


def test_levels_count_what_they_say_and_two_tabs_stay_in_step(server, site_env, new_user):
    slug = own_room(site_env, "Belfry")
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    other_tab = bob.context.new_page()
    other_tab.username = bob.username
    open_room(bob, server.url, slug)  # bob has been here: what comes next is new to him
    open_room_list(bob, server.url)
    open_room_list(other_tab, server.url)
    open_room(alice, server.url, slug)
    expect(alice.locator("#members")).not_to_contain_text(bob.username)  # bob is away: mentions are unread
    tabs = (bob, other_tab)

    # Keyboard: Tab to the menu, open it, choose Mentions; focus stays on the pressed button.
    summary = row(bob, slug).locator("summary")
    summary.focus()
    bob.keyboard.press("Enter")
    mentions = row(bob, slug).get_by_role("button", name=re.compile("^Mentions"))
    bob.keyboard.press("Tab")
    bob.keyboard.press("Tab")
    expect(mentions).to_be_focused()
    bob.keyboard.press("Enter")
    expect(mentions).to_have_attribute("aria-pressed", "true")
    expect(mentions).to_be_focused()
    expect(row(other_tab, slug).locator(".level-name")).to_have_text("Mentions")  # the other tab, live

    send(alice, "the bells need oiling")
    send(alice, f"@{bob.username} can you bring the oil?")
    for tab in tabs:
        expect(row(tab, slug).locator(".mention-count")).to_have_text("1 mention")
        expect(row(tab, slug).locator(".unread-count")).to_have_count(0)  # only mentions count
        expect(tab).to_have_title(re.compile(r"^\(1\) Rooms · Parley$"))

    choose(other_tab, slug, "Everything")
    for tab in tabs:
        expect(row(tab, slug).locator(".unread-count")).to_have_text("2 new")
        expect(tab).to_have_title(re.compile(r"^\(2\) Rooms · Parley$"))
    expect(row(bob, slug).locator(".level-name")).to_have_text("Everything")

    choose(other_tab, slug, "Nothing")
    for tab in tabs:
        expect(row(tab, slug).locator(".unread")).to_be_empty()
        expect(row(tab, slug)).to_be_visible()  # still on the list, looking muted
        expect(tab).to_have_title(re.compile(r"^Rooms · Parley$"))

    # Hidden: still shown while the mention is unread; gone once bob has read the room.
    choose(other_tab, slug, "Hidden")
    for tab in tabs:
        expect(row(tab, slug).locator(".mention-count")).to_have_text("1 mention")
    reader = bob.context.new_page()
    reader.username = bob.username
    open_room(reader, server.url, slug)
    expect(row(bob, slug).locator(".level-control")).to_have_attribute("data-level", "hidden")
    for tab in tabs:
        expect(row(tab, slug)).to_be_hidden()
    reader.close()
    expect(alice.locator("#members")).not_to_contain_text(bob.username)  # bob has left the room

    # Shown again to change it...
    bob.get_by_label("Show hidden rooms").check()
    expect(row(bob, slug)).to_be_visible()
    bob.get_by_label("Show hidden rooms").uncheck()
    expect(row(bob, slug)).to_be_hidden()

    # ...and back by itself while a new mention is unread.
    send(alice, "nobody hears this")
    send(alice, f"@{bob.username} the bells!")
    for tab in tabs:
        expect(row(tab, slug)).to_be_visible()
        expect(row(tab, slug).locator(".mention-count")).to_have_text("1 mention")
        expect(row(tab, slug).locator(".unread-count")).to_have_count(0)

    # The room's header offers the same control, as bob chose it.
    open_room(bob, server.url, slug)
    header_control = bob.locator(".room-bar .level-control")
    expect(header_control.locator(".level-name")).to_have_text("Hidden")
    header_control.locator("summary").click()
    header_control.get_by_role("button", name=re.compile("^Everything")).click()
    expect(header_control.get_by_role("button", name=re.compile("^Everything"))).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(row(other_tab, slug).locator(".level-name")).to_have_text("Everything")


def test_the_level_controls_and_snooze_look_right(server, site_env, new_user):
    """Screenshots at desktop and phone widths, light and dark, of one page resized."""
    SCREENSHOTS.mkdir(exist_ok=True)
    slug = own_room(site_env, "Lighthouse")
    bob = new_user(server.url, "bob")
    bob.goto(f"{server.url}/settings/")
    bob.get_by_role("button", name="For 1 hour").click()
    expect(bob.locator(".snooze-state")).to_contain_text("Snoozed")
    settings_page = bob.url
    open_room_list(bob, server.url)
    expect(bob.locator(".snooze-line")).to_contain_text("Notifications snoozed until")
    for scheme in ("light", "dark"):
        bob.emulate_media(color_scheme=scheme)
        for device, size in VIEWPORTS.items():
            bob.set_viewport_size(size)
            bob.goto(server.url)
            control = row(bob, slug).locator(".level-control")
            control.locator("summary").click()
            expect(control.get_by_role("button", name=re.compile("^Everything"))).to_be_visible()
            control.scroll_into_view_if_needed()
            assert bob.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
            bob.screenshot(path=SCREENSHOTS / f"levels-list-{device}-{scheme}.png")
            open_room(bob, server.url, slug)
            header_control = bob.locator(".room-bar .level-control")
            header_control.locator("summary").click()
            expect(header_control.get_by_role("button", name=re.compile("^Hidden"))).to_be_visible()
            assert bob.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
            bob.screenshot(path=SCREENSHOTS / f"levels-room-{device}-{scheme}.png")
            bob.goto(settings_page)
            bob.screenshot(path=SCREENSHOTS / f"levels-snooze-settings-{device}-{scheme}.png", full_page=True)
    bob.goto(server.url)
    bob.get_by_role("button", name="Resume").click()
    expect(bob.locator(".snooze-line")).to_have_count(0)


def test_a_snooze_shows_live_on_the_open_room_list_and_goes_with_resume(server, new_user):
    """Snoozed on the settings tab, the open room list shows it at once; its live Resume works
    (a real form post with the page's token); resumed on the settings tab, the line goes live too."""
    bob = new_user(server.url, "bob")
    settings_tab = bob.context.new_page()
    open_room_list(bob, server.url)
    line = bob.locator("#snooze-line")
    expect(line).not_to_contain_text("Notifications snoozed")

    settings_tab.goto(f"{server.url}/settings/")
    settings_tab.get_by_role("button", name="For 1 hour").click()
    expect(settings_tab.locator(".snooze-state")).to_contain_text("Snoozed")
    expect(line).to_contain_text("Notifications snoozed until")  # no reload
    expect(line.get_by_role("status")).to_be_visible()
    bob.screenshot(path=SCREENSHOTS / "snooze-live-list-desktop-light.png")

    with bob.expect_websocket() as reopened:  # the list comes back with its own socket
        line.get_by_role("button", name="Resume").click()
    reopened.value.wait_for_event("framereceived")
    expect(bob).to_have_url(f"{server.url}/")
    expect(line).not_to_contain_text("Notifications snoozed")

    settings_tab.get_by_role("button", name="For 1 hour").click()
    expect(line).to_contain_text("Notifications snoozed until")
    settings_tab.get_by_role("button", name="Resume now").click()
    expect(settings_tab.locator(".snooze-state")).to_have_count(0)
    expect(line).not_to_contain_text("Notifications snoozed")  # no reload
    expect(line).to_be_hidden()
