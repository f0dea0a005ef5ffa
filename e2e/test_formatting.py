"""Formatted messages in real Chromium: what renders, what stays inert, and how it looks."""

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, open_room, prepare_site, send
from e2e.test_look import assert_fits_the_screen
from testsupport.hostile import HOSTILE
from testsupport.servers import manage

REL = "nofollow noopener noreferrer ugc"
# Everything a formatted message may contain, as the browser's DOM names it.
ALLOWED = {
    "P": set(),
    "BR": set(),
    "STRONG": set(),
    "EM": set(),
    "S": set(),
    "CODE": set(),
    "PRE": set(),
    "BLOCKQUOTE": set(),
    "UL": set(),
    "OL": {"start"},
    "LI": set(),
    "A": {"href", "rel", "target"},
}
# The composer is a one-line input, so text with line breaks is posted from another client.
MULTILINE = [
    (
        "dana",
        "Deploy steps, in order:\n1. pull `main`\n2. run the migrations\n3. restart **both** workers\n"
        "> don't skip step 2\n> it bit us last week",
    ),
    (
        "dana",
        "The failing line:\n```\n"
        "for worker in workers: worker.restart(timeout=30, drain=True, reason='deploy of the "
        "release candidate')  # a long line that must scroll\n"
        "print('done')\n```\nThe rest looks fine.",
    ),
]
INLINE = [
    "**Bold**, *italic*, ~~struck~~ and `inline code`, see [the docs](https://example.com/docs)",
    "- bare links work too: https://example.org/changelog",
]
# What lists every element and attribute inside message bodies, and every link's target.
BODY_DOM = """() => Array.from(document.querySelectorAll('#messages .body *')).map(
    el => [el.tagName, Array.from(el.attributes).map(a => [a.name, a.value])])"""
ACTIVE = ":is([hx-get], [hx-post], [hx-trigger], [hx-on], [ws-send], [ws-connect], [onclick], [onerror])"
# Elements the page itself may have (its scripts), which a message must never add to.
ACTIVE_ELEMENTS = "script, img, iframe, svg, object, embed, style, base"
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation',
    e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A site of its own: the hostile corpus is posted faster than flood control allows."""
    env = prepare_site(tmp_path_factory.mktemp("formatting-site"), CHAT_FLOOD_MESSAGES="1000")
    rooms = {"formats": "Formats"} | {
        f"formats-{device}-{scheme}": "Formats" for device in VIEWPORTS for scheme in ("light", "dark")
    }
    rooms |= {f"bounds-{device}": "Bounds" for device in VIEWPORTS}
    create_rooms(env, rooms)
    seed = "from django.contrib.auth.models import User\nfrom chat.models import Message, Room\n"
    seed += "dana, _ = User.objects.get_or_create(username='dana')\n"
    for slug in rooms:
        for _, text in MULTILINE:
            seed += (
                f"Message.objects.create(room=Room.objects.get(slug={slug!r}), author=dana, body={text!r})\n"
            )
    manage(env, "shell", "-c", seed)
    return env


class Watched:
    """What a page did that nobody should see: CSP reports, console errors, dialogs (alert())."""

    def __init__(self, page: Page) -> None:
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.page = page
        page.add_init_script(RECORD_CSP_VIOLATIONS)
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_quiet(self) -> None:
        assert self.page.evaluate("window.cspViolations") == []
        assert [text for text in self.console if "Content Security Policy" in text] == []
        assert self.dialogs == []


def assert_message_bodies_inert(page: Page) -> None:
    """Inside messages only the allowlist, as the browser built it; no htmx or event attributes."""
    for tag, attributes in page.evaluate(BODY_DOM):
        assert tag in ALLOWED, f"<{tag}> inside a message"
        values = dict(attributes)
        assert set(values) <= ALLOWED[tag], f"<{tag} {attributes}> inside a message"
        if tag == "A" and "href" in values:
            assert values["href"].split(":", 1)[0] in {"http", "https", "mailto"}, values
            assert (values["rel"], values["target"]) == (REL, "_blank")
    expect(page.locator(f"#messages .body {ACTIVE}, #messages .body{ACTIVE}")).to_have_count(0)


def active_elements(page: Page) -> int:
    return page.evaluate(f"document.querySelectorAll({ACTIVE_ELEMENTS!r}).length")


def test_formatting_shows_to_others_and_hostile_text_stays_inert(server, new_user) -> None:
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    watch = Watched(bob)
    open_room(alice, server.url, "formats")
    open_room(bob, server.url, "formats")
    page_elements = active_elements(bob)

    send(alice, INLINE[0])
    last = bob.locator("#messages .message").last
    expect(last.locator(".body strong")).to_have_text("Bold")
    expect(last.locator(".body em")).to_have_text("italic")
    expect(last.locator(".body s")).to_have_text("struck")
    expect(last.locator(".body code")).to_have_text("inline code")
    link = last.locator(".body a")
    expect(link).to_have_text("the docs")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("rel", REL)
    expect(link).to_have_attribute("target", "_blank")
    send(alice, INLINE[1])
    expect(bob.locator("#messages .message").last.locator(".body li a")).to_have_attribute(
        "href", "https://example.org/changelog"
    )

    # What a one-line input can carry and the form accepts (it refuses NUL characters).
    one_line = [text for text in HOSTILE if not {"\n", "\0"} & set(text) and len(text) <= 2000]
    for text in [*one_line, "end of the corpus"]:
        send(alice, text)
    messages = bob.locator("#messages .message")
    expect(messages.last).to_contain_text("end of the corpus")
    expect(messages).to_have_count(len(MULTILINE) + len(INLINE) + len(one_line) + 1)
    expect(messages.filter(has_text="<script>alert(1)</script>").first).to_be_visible()
    assert_message_bodies_inert(bob)
    assert active_elements(bob) == page_elements
    watch.assert_quiet()

    # After a reload the history comes from the page, not the socket: just as inert.
    bob.reload()
    expect(messages.last).to_contain_text("end of the corpus")
    assert_message_bodies_inert(bob)
    assert active_elements(bob) == page_elements
    watch.assert_quiet()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_formatted_messages_look_right(server, new_user, device: str, scheme: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    room = f"formats-{device}-{scheme}"
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(bob, INLINE[0])
    send(alice, "> quoting `one` line, with a [link](https://example.com)")
    send(bob, INLINE[1])
    expect(alice.locator("#messages .message")).to_have_count(len(MULTILINE) + 3)

    code = alice.locator("#messages pre").first
    expect(code).to_be_visible()
    alice.screenshot(path=SCREENSHOTS / f"room-formatted-{device}-{scheme}.png")
    assert_fits_the_screen(alice)
    # The long code line wraps inside its block: neither the page nor the block scrolls sideways.
    assert code.evaluate("pre => pre.scrollWidth <= pre.clientWidth")


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_message_over_the_link_limit_is_refused_and_kept(server, new_user, device: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    open_room(alice, server.url, f"bounds-{device}")
    links = " ".join(f"https://example.com/{n}" for n in range(51))

    send(alice, links)

    form = alice.locator("#message-form")
    expect(form.locator(".form-errors")).to_have_text("A message can hold at most 50 links; this one has 51.")
    expect(form.locator("input[name=message]")).to_have_value(links)  # to shorten, not to retype
    messages = alice.locator("#messages .message")
    expect(messages).to_have_count(len(MULTILINE))
    alice.screenshot(path=SCREENSHOTS / f"room-too-many-links-{device}.png")
    assert_fits_the_screen(alice)

    send(alice, links.removesuffix(" https://example.com/50"))
    expect(messages).to_have_count(len(MULTILINE) + 1)
    expect(messages.last.locator(".body a")).to_have_count(50)
