"""The room page runs only nonce'd htmx files: no inline script, no inline handlers, no eval."""

from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from chat.models import Message, Room
from chat.standing import Account

REPO = Path(django_settings.BASE_DIR)


class PageScan(HTMLParser):
    """Every tag with its attributes, and the text inside each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.styles: list[dict[str, str | None]] = []
        self.script_bodies: list[str] = []
        self.style_bodies: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("script", "style"):
            (self.scripts if tag == "script" else self.styles).append(attributes)
            self._in = tag
            (self.script_bodies if tag == "script" else self.style_bodies).append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.script_bodies[-1] += data
        elif self._in == "style":
            self.style_bodies[-1] += data


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture(params=["anonymous", "signed-in"])
def room_page(request, client: Client, lobby: Room, alice: Account, settings):
    """The lobby page with a message in it, in DEBUG so django-htmx's debug script is on the page too."""
    settings.DEBUG = True
    Message.objects.create(room=lobby, author=alice, body="<img src=x onerror=alert(1)> hi")
    if request.param == "signed-in":
        client.force_login(alice)
    return client.get("/rooms/lobby/")


def scan(response) -> PageScan:
    page = PageScan()
    page.feed(response.content.decode())
    return page


def test_csp_forbids_inline_script_and_eval(room_page) -> None:
    directives = csp_directives(room_page["Content-Security-Policy"])

    script_src = directives["script-src"]
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert "'self'" in script_src
    assert any(source.startswith("'nonce-") for source in script_src)
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


def test_every_script_is_a_nonced_django_htmx_file(room_page) -> None:
    nonce_source = next(
        source
        for source in csp_directives(room_page["Content-Security-Policy"])["script-src"]
        if source.startswith("'nonce-")
    )
    nonce = nonce_source.removeprefix("'nonce-").removesuffix("'")
    page = scan(room_page)

    sources = [script.get("src") or "" for script in page.scripts]
    assert sources == [
        "/static/django_htmx/htmx-2.min.js",
        "/static/django_htmx/ext/hx-ws-2.min.js",
        "/static/django_htmx/django-htmx.js",
    ]
    assert all(script.get("nonce") == nonce for script in page.scripts)
    assert all(body.strip() == "" for body in page.script_bodies)


def test_inline_styles_carry_the_nonce(room_page) -> None:
    page = scan(room_page)
    nonce = next(
        source.removeprefix("'nonce-").removesuffix("'")
        for source in csp_directives(room_page["Content-Security-Policy"])["style-src"]
        if source.startswith("'nonce-")
    )

    assert all(style.get("nonce") == nonce for style in page.styles)
    assert not [tag for tag, attributes in page.tags if "style" in attributes]


def test_no_inline_event_handlers_or_hx_on_attributes(room_page) -> None:
    page = scan(room_page)

    handlers = [
        (tag, name)
        for tag, attributes in page.tags
        for name in attributes
        if name.startswith("on") or name.startswith("hx-on") or name.startswith("data-hx-on")
    ]
    assert handlers == []


def test_htmx_is_configured_to_never_eval(room_page) -> None:
    config = next(
        attributes["content"]
        for tag, attributes in scan(room_page).tags
        if tag == "meta" and attributes.get("name") == "htmx-config"
    )

    assert config is not None
    assert '"allowEval":false' in config
    assert '"allowScriptTags":false' in config


def test_the_project_ships_no_javascript_of_its_own() -> None:
    own_scripts = [
        path.relative_to(REPO)
        for folder in ("static", "templates", "chat")
        for path in (REPO / folder).rglob("*.js")
    ]

    assert own_scripts == []


def test_the_own_message_style_names_the_viewer_by_numeric_id_only(client: Client, lobby: Room) -> None:
    """Nothing a user chooses (a username) may reach a stylesheet, where it could break out of the rule."""
    sneaky = Account.objects.create_user(username="x]{}*{display:none}")
    client.force_login(sneaky)

    styles = "".join(scan(client.get("/rooms/lobby/")).style_bodies)

    assert f'.message[data-author-id="{sneaky.pk}"]' in styles
    assert "display:none" not in styles
