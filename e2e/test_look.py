"""Screenshots of the pages people see, at desktop and phone widths, light and dark.

They land in e2e/screenshots/ to be looked at; the assertions catch what a person
would notice at once: a page wider than the phone, a message box out of view.
"""

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, open_menu, open_room, send
from e2e.test_editing import open_edit_form

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
        {
            f"{kind}-{device}-{scheme}": "Design"
            for kind in ("design", "editing", "react")
            for device in VIEWPORTS
            for scheme in ("light", "dark")
        },
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


REVIEW = "Could someone review the **changelog** before then? It is a long one this time."


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_edited_deleted_and_editing_messages_look_right(
    server, new_user, look_rooms, device: str, scheme: str
):
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    room = f"editing-{device}-{scheme}"
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(bob, "Sorry, that was meant for another room entirely.")
    send(alice, "The release is on Thursdya.")
    send(alice, REVIEW)
    send(bob, "I can take a look after lunch.")

    open_menu(bob, "meant for another room")
    message_by(bob, "meant for another room").locator(".confirm-delete summary").click()
    message_by(bob, "meant for another room").get_by_role("button", name="Yes, delete it").click()
    open_edit_form(alice, "The release is on Thursdya.")
    alice.locator("form.editing [name=message]").fill("The release is on Thursday.")
    alice.locator("form.editing").get_by_role("button", name="Save").click()
    expect(alice.locator("#messages .edited")).to_have_count(1)
    expect(alice.locator("#messages")).to_contain_text("Message deleted")

    open_menu(alice, "Could someone review")
    alice.screenshot(path=SCREENSHOTS / f"room-own-menu-{device}-{scheme}.png")
    message_by(alice, "Could someone review").locator(".confirm-delete summary").click()
    alice.screenshot(path=SCREENSHOTS / f"room-delete-confirm-{device}-{scheme}.png")
    message_by(alice, "Could someone review").get_by_role("button", name="Edit").click()  # the menu is open
    expect(alice.locator("form.editing [name=message]")).to_have_value(REVIEW)
    expect(alice.locator("form.editing [name=message]")).to_be_in_viewport()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"room-editing-{device}-{scheme}.png")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_reactions_and_typing_look_right(server, new_user, look_rooms, device: str, scheme: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    alice, bob, carol = (
        new_user(server.url, name, viewport=VIEWPORTS[device]) for name in ("alice", "bob", "carol")
    )
    alice.emulate_media(color_scheme=scheme)
    room = f"react-{device}-{scheme}"
    for page in (alice, bob, carol):
        open_room(page, server.url, room)
    send(bob, CONVERSATION[1][1])
    send(carol, CONVERSATION[3][1])
    for page, text, emoji in [
        (alice, CONVERSATION[1][1], "👍"),
        (carol, CONVERSATION[1][1], "👍"),
        (carol, CONVERSATION[1][1], "🎉"),
        (alice, CONVERSATION[3][1], "😂"),
        (bob, CONVERSATION[3][1], "❤️"),
    ]:
        message = page.locator("#messages .message", has_text=text[:30])
        if message.locator(".message-actions").get_attribute("open") != "":
            message.hover()
            message.locator(".message-actions summary").click()
        message.locator(".reaction-picker").get_by_role("button", name=emoji, exact=True).click()
        expect(message.locator(".reaction", has_text=emoji)).to_be_visible()
    bob.locator("#message-form input[name=message]").press_sequentially("typing a reply")
    carol.locator("#message-form input[name=message]").press_sequentially("me too")
    alice.reload()  # the history shows the reactions; a page that opens is told who is typing
    expect(alice.locator("#messages .reaction")).to_have_count(4)
    expect(alice.locator("#typing")).to_contain_text("are typing…")
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"room-reactions-{device}-{scheme}.png")
    # The menu with its emoji, as the reactor sees it (their picks pressed).
    message = alice.locator("#messages .message", has_text=CONVERSATION[3][1][:30])
    message.hover()
    message.locator(".message-actions summary").click()
    expect(message.locator(".reaction-picker")).to_be_visible()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"room-reaction-menu-{device}-{scheme}.png")


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
    expect(bob.locator("#reply-bar")).to_contain_text("footer still wrap")  # the box is swapped in with it
    bob.locator("#message-form input[name=message]").fill(f"Yes, @{alice.username}, I'll fix it")
    bob.mouse.move(0, 0)

    expect(bob.locator("#reply-bar")).to_contain_text("Replying to")
    expect(bob.locator(".mentions-you").first).to_be_visible()
    expect(bob.locator("#message-form input[name=message]")).to_be_in_viewport()
    assert_fits_the_screen(bob)
    bob.screenshot(path=SCREENSHOTS / f"room-replies-{device}-{scheme}.png")

    # Listed in the room first, so that the next check waits for the leave (not for a join that
    # was never announced yet): someone with the room open has seen what names them.
    expect(alice.locator("#members")).to_contain_text(bob.username)
    bob.goto(server.url)
    expect(alice.locator("#members")).not_to_contain_text(bob.username)
    send(alice, f"@{bob.username} see you at the stand-up")
    bob.reload()
    # With a mention unread, the card opens the room at it (its permalink).
    card = bob.locator(f'.room-card[href^="/rooms/{room}/messages/"]')
    expect(card.locator(".mention-count")).to_have_text("1 mention")
    assert_fits_the_screen(bob)
    bob.screenshot(path=SCREENSHOTS / f"rooms-mentions-{device}-{scheme}.png")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_grouped_messages_and_another_persons_menu_look_right(
    server, site_env, new_user, device: str, scheme: str
):
    """A person's consecutive messages under one avatar and name, live and after a reload alike;
    in someone else's menu the everyday actions come first and Report last; on a touch screen
    the ··· shows without any hover."""
    SCREENSHOTS.mkdir(exist_ok=True)
    room = f"grouped-{device}-{scheme}"
    create_rooms(site_env, {room: "Design"})
    touch = device == "phone"
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device], touch=touch)
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    for page in (alice, bob):
        open_room(page, server.url, room)
    for speaker, text in [
        (bob, "Morning! The build from last night is up."),
        (bob, "Release notes are in the wiki."),
        (bob, "Ping me if the login page looks off."),
        (alice, "Thanks, looking now."),
        (alice, "The login page is fine on my phone."),
        (bob, "Great, shipping it then."),
    ]:
        send(speaker, text)
        expect(alice.locator("#messages")).to_contain_text(text)

    expect(alice.locator("#members")).to_contain_text(bob.username)
    continued = alice.locator("#messages .message.continued")
    expect(continued).to_have_count(3)
    expect(continued.locator(".author")).to_have_count(0)
    expect(continued.locator(".avatar")).to_have_count(0)
    assert_fits_the_screen(alice)
    alice.mouse.move(0, 0)
    alice.screenshot(path=SCREENSHOTS / f"room-grouped-{device}-{scheme}.png")
    alice.reload()
    expect(alice.locator("#messages .message.continued")).to_have_count(3)

    message = message_by(alice, "Release notes are in the wiki.")
    actions = message.locator(".message-actions > summary")
    if touch:  # nothing hovers on a touch screen: the ··· must show by itself
        expect(actions).to_be_visible()
        assert actions.evaluate("summary => getComputedStyle(summary).opacity") == "1"
    else:
        message.hover()
    actions.click()
    menu = message.locator(".message-actions .menu")
    expect(menu.get_by_role("button", name="Reply")).to_be_visible()
    expect(menu.get_by_role("button", name="Report message")).to_be_hidden()  # folded away at the end
    expect(menu.get_by_text("Report…")).to_be_visible()
    reply_top = menu.get_by_role("button", name="Reply").bounding_box()
    report_top = menu.get_by_text("Report…").bounding_box()
    assert reply_top and report_top and reply_top["y"] < report_top["y"]
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"room-other-menu-{device}-{scheme}.png")


@pytest.mark.parametrize("device", VIEWPORTS)
def test_the_room_list_counts_people_live_and_search_names_a_conversation_by_the_person(
    server, site_env, new_user, device: str
):
    SCREENSHOTS.mkdir(exist_ok=True)
    room = f"online-{device}"
    create_rooms(site_env, {room: f"Online {device}"})
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.goto(server.url)
    card = alice.locator(".room-card", has_text=f"# Online {device}")
    expect(card.locator(".online")).to_have_text("0 online")

    open_room(bob, server.url, room)

    expect(card.locator(".online")).to_have_text("1 online")  # no reload
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"rooms-online-{device}.png")

    bob.goto(f"{server.url}/dm/{alice.username}/")
    bob.get_by_role("button", name="Start the conversation").click()
    expect(bob.locator("#members")).to_contain_text(bob.username)
    send(bob, "the quarterly numbers, between us")
    alice.goto(f"{server.url}/search/?q=quarterly")
    hit = alice.locator(".hit", has_text="between us")
    expect(hit.locator(".hit-room")).to_have_text(bob.username)
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"search-direct-{device}.png")
