"""Screenshots of the pages people see, at desktop and phone widths, light and dark.

They land in e2e/screenshots/ to be looked at; the assertions catch what a person
would notice at once: a page wider than the phone, a message box out of view.
"""

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, open_room, send

CONVERSATION = [
    ("alice", "Morning all! Has anyone tried the new build yet?"),
    ("bob", "Yes, it's fast. The reconnect after a deploy is seamless now."),
    ("alice", "Nice. <em>HTML</em> stays as text too, as it should."),
    (
        "bob",
        "A longer message to see how wrapping looks when someone writes a whole paragraph "
        "about their weekend plans, the weather, and whether the coffee machine is fixed yet.",
    ),
]


@pytest.fixture(scope="module")
def look_rooms(site_env: dict[str, str]) -> None:
    """A room per screenshot, so people from other tests don't show up in the member list."""
    create_rooms(
        site_env,
        {f"design-{device}-{scheme}": "Design" for device in VIEWPORTS for scheme in ("light", "dark")},
    )


def assert_fits_the_screen(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_room_page_looks_right(server, new_user, look_rooms, device: str, scheme: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    room = f"design-{device}-{scheme}"
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    for speaker, text in CONVERSATION:
        send(alice if speaker == "alice" else bob, text)
        expect(alice.locator("#messages")).to_contain_text(text[:30])

    expect(alice.locator("#message-form input[name=message]")).to_be_in_viewport()
    expect(alice.locator("#messages .message").last).to_be_in_viewport()
    expect(alice.locator("#members")).to_be_in_viewport()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"room-{device}-{scheme}.png")

    send(alice, "   ")
    expect(alice.locator("#message-form .form-errors")).to_have_text("Write something before sending.")
    alice.screenshot(path=SCREENSHOTS / f"room-error-{device}-{scheme}.png")


@pytest.mark.parametrize("device", VIEWPORTS)
def test_room_list_and_signed_out_room_look_right(server, browser, device: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    page.goto(server.url)
    expect(page.locator(".room-card").first).to_be_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=SCREENSHOTS / f"rooms-{device}.png")
    page.goto(f"{server.url}/rooms/lobby/")
    expect(page.locator("#message-form")).to_contain_text("Sign in to post")
    assert_fits_the_screen(page)
    page.screenshot(path=SCREENSHOTS / f"room-signed-out-{device}.png")
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_mentions_and_replies_look_right(server, site_env, new_user, device: str, scheme: str):
    """The reader named sees the highlight; a reply shows its quote; the reply bar is open."""
    SCREENSHOTS.mkdir(exist_ok=True)
    room = f"replies-{device}-{scheme}"
    create_rooms(site_env, {room: "Design"})
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    bob.emulate_media(color_scheme=scheme)
    for page in (alice, bob):
        open_room(page, server.url, room)
    send(alice, f"@{bob.username} could you review the **new header** before lunch?")
    send(bob, "Sure, looking now.")
    first = bob.locator("#messages .message", has_text="new header")
    first.hover()
    first.locator(".message-actions summary").click()
    first.locator("button.reply").click()
    expect(bob.locator("#reply-bar")).to_contain_text("Replying to")
    send(bob, "Looks good to me, ship it")
    expect(bob.locator("#messages .message .quote")).to_be_visible()
    send(alice, "Thanks! One more: does the footer still wrap on phones?")
    last = bob.locator("#messages .message", has_text="footer still wrap")
    last.hover()
    last.locator(".message-actions summary").click()
    last.locator("button.reply").click()
    bob.locator("#message-form input[name=message]").fill(f"Yes, @{alice.username}, I'll fix it")
    bob.mouse.move(0, 0)

    expect(bob.locator("#reply-bar")).to_contain_text("Replying to")
    expect(bob.locator(".mentions-you").first).to_be_visible()
    expect(bob.locator("#message-form input[name=message]")).to_be_in_viewport()
    assert_fits_the_screen(bob)
    bob.screenshot(path=SCREENSHOTS / f"room-replies-{device}-{scheme}.png")

    bob.goto(server.url)
    # Gone from the room first: someone with the room open has seen what names them.
    expect(alice.locator("#members")).not_to_contain_text(bob.username)
    send(alice, f"@{bob.username} see you at the stand-up")
    bob.reload()
    expect(bob.locator(f'.room-card[href="/rooms/{room}/"] .mention-count')).to_have_text("1 mention")
    assert_fits_the_screen(bob)
    bob.screenshot(path=SCREENSHOTS / f"rooms-mentions-{device}-{scheme}.png")
