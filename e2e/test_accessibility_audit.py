"""Accessibility, measured: axe-core on every page and state Parley renders, and the page structure.

The audit runs the axe-core that axe-playwright-python ships (pinned in requirements/test.txt; no
network needed) in the Chromium the other e2e tests use, on each state in light and dark and at
1280 and 320 px wide. Zero violations is the bar: a failure lists every rule, element and reason
at once. The other tests check what axe cannot: the skip link, the landmarks, the focus ring on
every Tab stop, and the browser settings Parley honours (docs/accessibility.md).
"""

import re
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Literal

from playwright.sync_api import Browser, FilePayload, Page, ViewportSize, expect

from chat.tests.files import image_bytes
from e2e.conftest import SCREENSHOTS, grant, message_by, open_menu, open_room, send
from e2e.test_attachments import thumbnail_loaded
from e2e.test_bots import bot_in_a_room, bot_posts
from e2e.test_editing import open_edit_form
from e2e.test_mentions import start_reply
from e2e.test_reactions_typing import react
from testsupport.servers import DaphneServer, manage

AXE_SCRIPT = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")
WIDTHS = (1280, 320)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

# Where an axe rule is wrong for one element: (rule id, CSS selector of the element, why).
# Nothing else is excused; docs/accessibility.md repeats these with their reasons.
EXCEPTIONS: list[tuple[str, str, str]] = []

# Runs axe on the whole page and answers the violations minus the exceptions, as plain data. Its
# default rules, plus WCAG 2.2 AA's target size (24 px, or spaced apart), which axe leaves off.
RUN_AXE = """async (exceptions) => {
  const rules = {"target-size": {enabled: true}};
  const results = await axe.run(document, {resultTypes: ["violations"], rules});
  const excused = (rule, target) => exceptions.some(([id, selector]) => {
    const element = typeof target === "string" ? document.querySelector(target) : null;
    return id === rule && element !== null && element.closest(selector) !== null;
  });
  return results.violations.map(violation => ({
    id: violation.id,
    help: violation.help,
    nodes: violation.nodes
      .filter(node => !excused(violation.id, node.target[0]))
      .map(node => ({target: node.target.join(" "), summary: node.failureSummary || ""})),
  })).filter(violation => violation.nodes.length > 0);
}"""


class Audit:
    """Collects the violations of every state audited, to report them all at once."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.scans = 0

    def check(self, page: Page, state: str) -> None:
        """axe on the page as it is now, in each scheme and width; back to light, 1280 px after."""
        if (headings := page.locator("h1").count()) != 1:
            self.problems.append(f"{state}: {headings} h1 headings, where one names the page")
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                self._scan(page, f"{state} ({scheme}, {width} px)")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size(DESKTOP)

    def form(self, page: Page, url: str, state: str, fields: dict[str, str], *, send: str, then: str) -> None:
        """A form's page as it opens (`state`), then as it answers: `fields` filled in and sent with
        the button named `send`, audited once `then` shows (a CSS selector: errors, a new state)."""
        page.goto(url)
        self.check(page, state)
        for selector, value in fields.items():
            page.fill(selector, value)
        page.get_by_role("button", name=send, exact=True).click()
        expect(page.locator(then)).to_be_visible()
        self.check(page, f"{state}, answered ({then} shown)")

    def _scan(self, page: Page, where: str) -> None:
        if not page.evaluate("() => 'axe' in window"):
            page.evaluate(AXE_SCRIPT)
        self.scans += 1
        for violation in page.evaluate(RUN_AXE, [list(exception[:2]) for exception in EXCEPTIONS]):
            for node in violation["nodes"]:
                summary = " ".join(node["summary"].split())
                self.problems.append(
                    f"{where}: {violation['id']} at `{node['target']}`: {violation['help']}. {summary}"
                )

    def assert_clean(self) -> None:
        assert self.scans, "nothing was audited"
        assert not self.problems, f"{len(self.problems)} axe violation(s):\n" + "\n".join(self.problems)


# The audit --------------------------------------------------------------------------------------


def test_signed_out_pages_and_error_pages_pass_axe(
    server: DaphneServer, browser: Browser, site_env: dict[str, str], tmp_path: Path
) -> None:
    audit = Audit()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()

    page.goto(f"{server.url}/")
    expect(page.locator(".room-card").first).to_be_visible()
    audit.check(page, "room list, signed out")

    slug = room_with_a_long_history(site_env)
    page.goto(f"{server.url}/rooms/{slug}/")
    expect(page.locator("#message-form")).to_contain_text("Sign in to post")
    audit.check(page, "room with a long history, signed out")

    signup = {
        "#id_username": f"audit{uuid.uuid4().hex[:8]}",
        "#id_password1": "a-long-test-passphrase-42",
        "#id_password2": "a different passphrase",
    }
    audit.form(page, f"{server.url}/accounts/signup/", "sign up", signup, send="Sign up", then=".errorlist")
    login = {"#id_username": "nobody-by-this-name", "#id_password": "wrong passphrase"}
    audit.form(page, f"{server.url}/accounts/login/", "log in", login, send="Log in", then=".errorlist")

    response = page.goto(f"{server.url}/rooms/no-such-room/")
    assert response is not None and response.status == 404
    audit.check(page, "404")
    response = page.goto(f"{server.url}/rooms/garden/mentions/?message=a")
    assert response is not None and response.status == 403
    audit.check(page, "403")

    # What HAProxy answers itself for a body over its cap, written by the operator's command and
    # served here under the site's address so that its stylesheet loads as it does behind the proxy.
    manage(site_env, "proxy_pages", str(tmp_path / "proxy"))
    too_big = (tmp_path / "proxy" / "too-big.html").read_text()
    page.route(f"{server.url}/too-big", lambda route: route.fulfill(status=413, body=too_big))
    page.goto(f"{server.url}/too-big")
    expect(page.get_by_role("heading", name="File too large")).to_be_visible()
    audit.check(page, "the proxy's too-large page")
    context.close()
    audit.assert_clean()


LONG_HISTORY = """
from django.contrib.auth.models import User
from chat.models import Message, Room
room = Room.objects.create(slug={slug!r}, name="Visitors")
author = User.objects.create_user({slug!r}, password="a-long-test-passphrase-42")
for number in range(30):
    Message.objects.create(room=room, author=author, body=f"Message {{number}} of a long history")
"""


def room_with_a_long_history(site_env: dict[str, str]) -> str:
    """A room whose history is taller than the screen: a visitor's view of it has no button in it."""
    slug = f"visitors-{uuid.uuid4().hex[:6]}"
    manage(site_env, "shell", "-c", LONG_HISTORY.format(slug=slug))
    return slug


def test_a_room_in_every_state_and_the_signed_in_pages_pass_axe(
    server: DaphneServer, new_user, site_env: dict[str, str]
) -> None:
    audit = Audit()
    tag = uuid.uuid4().hex[:6]
    slug = f"audit-{tag}"
    bot_key = bot_in_a_room(site_env, slug, f"ci{tag}")  # the room, with a bot allowed to post in it
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    grant(site_env, alice.username, moderator_of=slug)
    open_room(alice, server.url, slug)
    open_room(bob, server.url, slug)
    fill_the_room(server, alice, bob, slug, bot_key)
    audit.check(alice, "room with history (moderator)")

    open_menu(alice, "Is the build green")
    audit.check(alice, "message menu on someone else's message (moderator)")
    close_menu(alice, "Is the build green")
    open_menu(alice, "My own words")
    message_by(alice, "My own words").locator(".confirm-delete summary").click()
    audit.check(alice, "own message's menu, delete confirmation open")
    close_menu(alice, "My own words")

    open_edit_form(alice, "My own words", typed=OWN_WORDS)
    audit.check(alice, "edit form")
    alice.locator("form.editing").get_by_role("link", name="Cancel").click()
    expect(alice.locator("form.editing")).to_have_count(0)

    start_reply(alice, "Is the build green")
    expect(alice.locator("#reply-bar")).to_be_visible()
    alice.locator("#upload-form input[type=file]").set_input_files(files=[png("plan.png", (40, 30))])
    audit.check(alice, "composer with a reply and a file chosen")
    send(alice, "   ")
    expect(alice.locator("#message-form .form-errors")).to_be_visible()
    audit.check(alice, "composer with an error")

    alice.locator("#moderation > summary").click()
    expect(alice.locator("#moderation-tools")).to_be_visible()
    audit.check(alice, "moderation panel open")

    # Bob away: new messages arrive; back, he finds the count on the list and the divider in the room.
    bob.goto(f"{server.url}/")
    send(alice, "Something new while bob is away")
    expect(bob.locator(f".room-card[href*='/rooms/{slug}/'] .unread-count")).to_be_visible()
    audit.check(bob, "room list with unread counts")
    open_room(bob, server.url, slug)
    expect(bob.locator("#new-messages")).to_be_visible()
    open_menu(bob, "My own words")
    message_by(bob, "My own words").locator(".report summary").click()
    audit.check(bob, "member's room: new-messages divider, menu with the report form")

    message_id = message_by(alice, "Is the build green").first.get_attribute("id") or ""
    alice.goto(f"{server.url}/messages/{message_id.removeprefix('message-')}/link/")
    expect(alice.locator(".permalink-marker")).to_be_focused()
    audit.check(alice, "permalink page")

    alice.goto(f"{server.url}/search/?q=build")
    expect(alice.locator(".hit").first).to_be_visible()
    audit.check(alice, "search results")
    alice.goto(f"{server.url}/search/?q=zzzznothing")
    expect(alice.locator("#search-results")).to_contain_text("No messages match")
    audit.check(alice, "search without results")

    address = {"#id_email": f"{alice.username}@example.com"}
    audit.form(
        alice, f"{server.url}/settings/", "settings", address, send="Save", then=".address-state.unconfirmed"
    )

    alice.goto(f"{server.url}/people/{bob.username}/")
    audit.check(alice, "a person's page")
    alice.get_by_role("link", name="Send a message").click()
    audit.check(alice, "starting a direct message")
    alice.get_by_role("button", name="Start the conversation").click()
    expect(alice).to_have_url(re.compile(r"/rooms/dm-\d+-\d+/$"))
    expect(alice.locator("#members")).to_contain_text(alice.username)
    send(alice, "Hello bob, just us here")
    audit.check(alice, "direct message")

    alice.goto(f"{server.url}/")
    expect(alice.locator(".conversations")).to_be_visible()
    audit.check(alice, "room list with direct messages")
    alice.goto(f"{server.url}/rooms/propose/")
    audit.check(alice, "propose a room")

    audit.assert_clean()


OWN_WORDS = "My own words, with `code`, a [link](https://example.com) and ~~old~~ plans"


def fill_the_room(server: DaphneServer, alice: Page, bob: Page, slug: str, bot_key: str) -> None:
    """Every kind of message: someone else's, your own, a reply, an edited, a deleted and a
    removed one, reactions, an image, a bot's, formatting, a mention, a long word and code."""
    send(bob, "Morning! Is the **build** green? > not sure")
    send(alice, OWN_WORDS)
    send(bob, "Who has the keys to the server room?")
    start_reply(alice, "Who has the keys")  # its words show again in the reply's quote: not used below
    send(alice, "Replying: I do")
    send(bob, f"@{alice.username} can you look at the deploy?")  # type: ignore[attr-defined]
    expect(message_by(alice, "can you look at the deploy").locator(".mentions-you")).to_be_visible()
    send(alice, "A message to edit")
    open_edit_form(alice, "A message to edit")
    alice.locator("form.editing [name=message]").fill("An edited message")
    alice.locator("form.editing").get_by_role("button", name="Save").click()
    expect(message_by(alice, "An edited message").locator(".edited")).to_be_visible()
    send(alice, "A message to delete")
    open_menu(alice, "A message to delete")
    message_by(alice, "A message to delete").locator(".confirm-delete summary").click()
    message_by(alice, "A message to delete").get_by_role("button", name="Yes, delete it").click()
    expect(alice.locator("#messages")).to_contain_text("Message deleted")
    send(bob, "Buy cheap watches")
    open_menu(alice, "Buy cheap watches")
    message_by(alice, "Buy cheap watches").get_by_role("button", name="Remove message").click()
    expect(alice.locator("#messages")).to_contain_text("Message removed by a moderator")
    react(bob, "My own words", "🎉")
    expect(message_by(alice, "My own words").locator(".reaction")).to_be_visible()
    attach_image(alice, "the chart of the week")
    bot_posts(server, slug, bot_key, "**Build #7 passed**\n\n```\n" + "long_line = 1  # " * 20 + "\n```")
    send(bob, "Unbroken: " + "a" * 150)
    expect(message_by(alice, "Unbroken")).to_be_visible()
    expect(message_by(alice, "Build #7 passed")).to_be_visible()


def attach_image(page: Page, caption: str) -> None:
    form = page.locator("#upload-form")
    form.locator("input[type=file]").set_input_files(files=[png("chart.png", (320, 200))])
    form.locator("input[name=message]").fill(caption)
    form.get_by_role("button", name="Upload").click()
    thumbnail_loaded(page, caption)


def png(name: str, size: tuple[int, int]) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": image_bytes("PNG", size)}


def close_menu(page: Page, text: str) -> None:
    message_by(page, text).locator(".message-actions > summary").click()
    expect(message_by(page, text).locator(".message-actions .menu")).to_be_hidden()


# Structure: the skip link, landmarks and headings -----------------------------------------------

# YAML: a " #" starts a comment, hence "." for the rooms' "#" in the patterns.
ROOM_LANDMARKS = """
- link "Skip to the message box"
- banner:
  - link "Parley"
  - navigation "Account":
    - link "Search"
    - link "Settings"
    - button "Log out"
- main:
  - region /Conversation in .Builds/:
    - heading /Builds/ [level=1]
    - region "Messages":
      - heading "Messages" [level=2]
    - form "Write a message":
      - combobox /Message .Builds/
      - button "Send"
  - complementary "Online now":
    - heading /Online/ [level=2]
"""


def from_the_top(page: Page) -> None:
    """Tab on past the page's last stop, out to the browser's own controls (the page's focus is then
    on no element): the next Tab enters the page at its top, as when coming from the address bar."""
    for _ in range(100):
        if page.evaluate("() => document.activeElement === document.body"):
            return
        page.keyboard.press("Tab")
    raise AssertionError("Tab never leaves the page")


def test_the_skip_link_comes_first_and_the_landmarks_are_named(
    server: DaphneServer, new_user, site_env: dict[str, str]
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    slug = f"structure-{uuid.uuid4().hex[:6]}"
    bot_in_a_room(site_env, slug, f"ci{uuid.uuid4().hex[:6]}")
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, slug)
    send(alice, "Hello, landmarks")

    expect(alice.locator("body")).to_match_aria_snapshot(ROOM_LANDMARKS)
    skip = alice.get_by_role("link", name="Skip to the message box")
    for scheme in SCHEMES:
        alice.emulate_media(color_scheme=scheme)
        from_the_top(alice)
        expect(skip).not_to_be_in_viewport()  # out of sight until focused
        alice.keyboard.press("Tab")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport(ratio=1)
        alice.screenshot(path=SCREENSHOTS / f"skip-link-{scheme}.png")
        alice.keyboard.press("Enter")
        expect(alice.locator("#message-input")).to_be_focused()
        expect(skip).not_to_be_in_viewport()

    alice.goto(f"{server.url}/")
    from_the_top(alice)
    alice.keyboard.press("Tab")
    expect(alice.get_by_role("link", name="Skip to rooms")).to_be_focused()
    alice.keyboard.press("Enter")
    alice.keyboard.press("Tab")  # the next stop is the page's own content, past the header
    expect(alice.locator("main").locator(":focus")).to_have_count(1)


# The browser's settings -------------------------------------------------------------------------

# What the focused element's ring looks like, and the colour it is drawn against: the element's
# own background for rings drawn inside it (a negative offset), else the nearest opaque ancestor's.
FOCUS_RING = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  const opaque = color => color !== "transparent" && !/rgba\\(.*, 0\\)$/.test(color);
  let behind = parseFloat(style.outlineOffset) < 0 ? element : element.parentElement;
  while (behind && !opaque(getComputedStyle(behind).backgroundColor)) behind = behind.parentElement;
  return {
    top: element === document.body,
    element: element.outerHTML.slice(0, 100),
    style: style.outlineStyle, width: parseFloat(style.outlineWidth), color: style.outlineColor,
    behind: behind ? getComputedStyle(behind).backgroundColor : "rgb(255, 255, 255)",
    visible: element.checkVisibility({opacityProperty: true, visibilityProperty: true}),
  };
}"""

# Every element that moves: a transition or an animation longer than nothing, or smooth scrolling.
MOVING = """() => [...document.querySelectorAll("*")].filter(element => {
  const style = getComputedStyle(element);
  const lasts = value => value.split(",").some(duration => parseFloat(duration) > 0);
  return lasts(style.transitionDuration) || (style.animationName !== "none" && lasts(style.animationDuration))
    || style.scrollBehavior === "smooth";
}).map(element => element.outerHTML.slice(0, 80))"""


def rgb(color: str) -> tuple[float, float, float]:
    red, green, blue = (float(part) for part in re.findall(r"[\d.]+", color)[:3])
    return red, green, blue


def contrast(first: str, second: str) -> float:
    """WCAG's contrast ratio of two computed CSS colours."""

    def luminance(color: str) -> float:
        linear = [
            c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb(color)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# Elements whose content is wider than they are and that scroll it (a room's history would, not the
# page). The phone's one-line member strip scrolls sideways by design (docs/accessibility.md).
SIDEWAYS = """() => [...document.querySelectorAll("body *:not(.members)")].filter(element => {
  const overflow = getComputedStyle(element).overflowX;
  return (overflow === "auto" || overflow === "scroll") && element.scrollWidth > element.clientWidth + 1;
}).map(element => element.outerHTML.slice(0, 80))"""


def fits_the_width(page: Page) -> None:
    """WCAG 1.4.10: nothing to scroll sideways, neither the page nor a part of it."""
    width = page.evaluate("window.innerWidth")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url}: {scroll_width} px of content in a {width} px window"
    assert page.evaluate(SIDEWAYS) == [], f"{page.url}: parts scroll sideways at {width} px"


def test_focus_rings_motion_contrast_and_reflow_follow_the_browser(
    server: DaphneServer, new_user, browser: Browser, site_env: dict[str, str]
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    slug = f"settings-{tag}"
    key = bot_in_a_room(site_env, slug, f"ci{tag}")
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, slug)
    open_room(bob, server.url, slug)
    send(bob, "Unbroken: " + "w" * 180)
    bot_posts(server, slug, key, "Code:\n\n```\n" + "x = compute(a, b)  # " * 12 + "\n```")
    expect(message_by(alice, "Code:").locator("pre")).to_be_visible()

    # Every Tab stop of the room page, an open message menu included, shows a ring in both themes.
    open_menu(alice, "Unbroken")
    for scheme in SCHEMES:
        alice.emulate_media(color_scheme=scheme)
        assert_every_tab_stop_shows_a_ring(alice, scheme)
    alice.emulate_media(color_scheme="light")

    # prefers-reduced-motion: the skip link slides in by default and appears at once when asked.
    assert alice.evaluate(MOVING), "nothing moves by default: the reduced-motion check below proves nothing"
    alice.emulate_media(reduced_motion="reduce")
    assert alice.evaluate(MOVING) == []
    alice.emulate_media(reduced_motion="no-preference")

    # prefers-contrast: more: secondary text reaches 7:1 (AAA), field borders 3:1, in both themes.
    for scheme in SCHEMES:
        alice.emulate_media(color_scheme=scheme, contrast="more")
        muted = alice.locator(".history-start").evaluate("e => getComputedStyle(e).color")
        surface = alice.locator(".conversation").evaluate("e => getComputedStyle(e).backgroundColor")
        assert contrast(muted, surface) >= 7, f"{scheme}: muted text {muted} on {surface}"
        field = alice.locator("#message-input")
        border = field.evaluate("e => getComputedStyle(e).borderTopColor")
        inside = field.evaluate("e => getComputedStyle(e).backgroundColor")
        assert contrast(border, inside) >= 3 and contrast(border, surface) >= 3, f"{scheme}: border {border}"
    alice.emulate_media(color_scheme="light", contrast="no-preference")

    # 320 px (WCAG 1.4.10 reflow): no sideways scrolling, long words and code included.
    close_menu(alice, "Unbroken")
    alice.set_viewport_size({"width": 320, "height": 640})
    for scheme in SCHEMES:
        alice.emulate_media(color_scheme=scheme)
        fits_the_width(alice)
        expect(alice.locator("#message-input")).to_be_in_viewport()
        alice.screenshot(path=SCREENSHOTS / f"room-320-{scheme}.png")
    alice.goto(f"{server.url}/")
    expect(alice.locator(".room-card").first).to_be_visible()
    fits_the_width(alice)

    # 200% zoom of a 1280 x 800 window: the same page in 640 x 400 CSS pixels, drawn at twice the
    # density, as Chromium lays out a zoomed page; the message box and newest message stay in view.
    zoomed = browser.new_context(
        viewport={"width": 640, "height": 400},
        device_scale_factor=2,
        storage_state=alice.context.storage_state(),
    )
    page = zoomed.new_page()
    page.goto(f"{server.url}/rooms/{slug}/")
    expect(page.locator("#members")).to_contain_text(alice.username)
    fits_the_width(page)
    expect(page.locator("#message-input")).to_be_in_viewport()
    expect(page.locator("#messages .message").last).to_be_in_viewport()
    page.screenshot(path=SCREENSHOTS / "room-zoom-200.png")
    zoomed.close()


def assert_every_tab_stop_shows_a_ring(page: Page, scheme: str) -> None:
    """Tab from the top through the whole page: each stop is visible with a ring of 3:1 or more."""
    from_the_top(page)
    seen: list[str] = []
    missing: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING)
        if ring["top"] or (seen and ring["element"] == seen[0]):
            break  # past the last stop: out to the browser, or round to the first again
        seen.append(ring["element"])
        ratio = contrast(ring["color"], ring["behind"])
        if ring["style"] == "none" or ring["width"] < 2 or ratio < 3 or not ring["visible"]:
            missing.append(
                f"{ring['element']}: {ring['style']} {ring['width']}px {ring['color']} on {ring['behind']}"
            )
    assert len(seen) > 15, f"only {len(seen)} Tab stops: {seen}"
    assert not missing, f"{scheme}: Tab stops without a visible ring:\n" + "\n".join(missing)
