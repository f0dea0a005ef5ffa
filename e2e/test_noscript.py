"""Parley with JavaScript turned off, in real Chromium (docs/no-script.md): signing up, reading a
room and paging back by links, a message's actions as a page, search and permalinks, new messages
arriving in the room's self-reloading frame, and unread counts across reloads; next to someone
with script, who sees the same room live.

The frame reloads every CHAT_NOSCRIPT_REFRESH_SECONDS (20 s in production); these servers use
REFRESH seconds so a test waits for one reload, not twenty seconds."""

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, newest, open_room, send
from testsupport.servers import DaphneServer, manage

REFRESH = 2
_rooms = itertools.count(1)


@pytest.fixture
def quick_server(site_env: dict[str, str], tmp_path: Path) -> Iterator[DaphneServer]:
    """A server whose no-script frame reloads every REFRESH seconds."""
    daphne = DaphneServer(site_env | {"CHAT_NOSCRIPT_REFRESH_SECONDS": str(REFRESH)}, tmp_path / "daphne.log")
    yield daphne
    daphne.stop()


def own_room(site_env: dict[str, str], name: str) -> str:
    slug = f"noscript-{next(_rooms)}"
    create_rooms(site_env, {slug: name})
    return slug


def add_history(site_env: dict[str, str], slug: str, author: str, count: int, special: str) -> None:
    """`count` messages by `author`, one a second apart up to a minute ago (still editable, and out of
    the flood limit's window, so the author can post at once), the sixth `special`."""
    manage(
        site_env,
        "shell",
        "-c",
        "from datetime import timedelta\n"
        "from django.contrib.auth.models import User\n"
        "from django.utils import timezone\n"
        "from chat.models import Message, Room\n"
        f"room, author = Room.objects.get(slug={slug!r}), User.objects.get(username={author!r})\n"
        f"start = timezone.now() - timedelta(seconds={count} + 60)\n"
        "Message.objects.bulk_create(Message(room=room, author=author,"
        " created_at=start + timedelta(seconds=n),"
        f" body={special!r} if n == 5 else f'note number {{n}}') for n in range({count}))\n"
        # created_at is auto_now_add, which bulk_create fills in: set the times afterwards.
        "for n, message in enumerate(Message.objects.filter(room=room).order_by('pk')):\n"
        "    Message.objects.filter(pk=message.pk).update(created_at=start + timedelta(seconds=n))\n",
    )


def test_without_script_a_reader_pages_back_opens_actions_and_finds_a_message(
    quick_server, site_env, new_noscript_user
):
    slug = own_room(site_env, "Reading room")
    reader = new_noscript_user(quick_server.url, "reader")  # signed up through the plain form
    add_history(site_env, slug, reader.username, 60, "the pelican is back")

    reader.goto(f"{quick_server.url}/rooms/{slug}/")
    expect(newest(reader).locator(".message", has_text="note number 59")).to_be_visible()
    expect(reader.locator(".scroller > #messages")).to_be_hidden()  # the frame stands in for it

    newest(reader).get_by_role("link", name="Load older messages").click()
    expect(reader).to_have_url(re.compile(rf"/rooms/{slug}/\?before=\d+$"))
    expect(message_by(reader, "the pelican is back")).to_be_visible()
    expect(reader.get_by_role("link", name="Load newer messages")).to_be_attached()

    pelican = message_by(reader, "the pelican is back")
    pelican.locator(".message-actions > summary").click()
    pelican.get_by_role("link", name="Open the actions page").click()
    expect(reader.get_by_role("heading", name="A message in #Reading room")).to_be_visible()
    shoot(reader, "noscript-actions-desktop-light")
    expect(reader.get_by_text("Delete", exact=True)).to_be_visible()  # the author's own
    actions_page = reader.url

    # React: a button of the page's picker posts, and the room comes back (at its newest page).
    with reader.expect_navigation():
        reader.locator(".reaction-picker button").first.click()
    expect(reader).to_have_url(re.compile(rf"/rooms/{slug}/#message-\d+$"))
    reader.goto(actions_page)
    expect(reader.locator(".message-page .reaction")).to_contain_text("1")

    # Edit: a page with the form; Cancel is a link back to the message; Enter saves.
    reader.get_by_role("link", name="Edit").click()
    reader.get_by_role("link", name="Cancel").click()
    expect(reader.locator("#messages .message", has_text="the pelican is back")).to_be_in_viewport()
    reader.goto(actions_page)
    reader.get_by_role("link", name="Edit").click()
    box = reader.get_by_role("textbox", name="Edit your message")
    expect(box).to_have_value("the pelican is back")
    box.fill("the pelican is back, with friends")
    with reader.expect_navigation():
        box.press("Enter")
    reader.goto(actions_page)
    expect(reader.locator(".message-page .message")).to_contain_text("the pelican is back, with friends")

    # Reply: a link that sets the reply bar (Cancel, a link, drops it); the reply posts with its quote.
    reader.get_by_role("link", name="Reply").click()
    reader.locator("#reply-bar").get_by_role("link", name="Cancel").click()
    expect(reader.locator("#reply-bar")).to_be_hidden()
    reader.goto(actions_page)
    reader.get_by_role("link", name="Reply").click()
    expect(reader.locator("#reply-bar")).to_contain_text("Replying to")
    expect(reader.locator("#reply-bar")).to_contain_text("the pelican is back, with friends")
    reader.locator("#message-input").fill("which friends?")
    with reader.expect_navigation():
        reader.locator("#message-input").press("Enter")
    reply = newest(reader).locator(".message", has_text="which friends?")
    expect(reply).to_contain_text("the pelican is back, with friends")  # its quote

    reader.locator(".site-header").get_by_role("link", name="Search").click()
    reader.get_by_role("searchbox").fill("friends")
    reader.get_by_role("searchbox").press("Enter")
    reader.locator(".hit-link", has_text="pelican").click()
    expect(reader.locator("#messages .message", has_text="the pelican is back")).to_be_in_viewport()


def test_without_script_new_messages_arrive_on_reload_and_counts_follow(
    quick_server, site_env, new_user, new_noscript_user
):
    """A mixed pair: the writer has script (live), the reader has none (the frame's reloads)."""
    slug = own_room(site_env, "Mixed")
    writer = new_user(quick_server.url, "writer")
    reader = new_noscript_user(quick_server.url, "reader")
    open_room(writer, quick_server.url, slug)
    send(writer, "first, while nobody reads")
    reader.goto(f"{quick_server.url}/rooms/{slug}/")
    expect(newest(reader).locator(".message", has_text="first, while nobody reads")).to_be_visible()

    send(writer, "second, in the reader's room")
    # Shown after the frame's next reload, with the message box untouched by it.
    reader.locator("#message-input").fill("half a thought")
    expect(newest(reader).locator(".message", has_text="second, in the reader's room")).to_be_visible()
    expect(newest(reader).locator("#new-messages")).to_be_visible()
    expect(reader.locator("#message-input")).to_have_value("half a thought")

    reader.goto(quick_server.url)
    card = reader.locator(f'.room-card[href="/rooms/{slug}/"]')
    expect(card.locator(".unread-count")).to_have_count(0)
    send(writer, "third, while the reader is away")
    send(writer, "fourth, while the reader is away")
    reader.reload()
    expect(card.locator(".unread-count")).to_have_text("2 new")

    card.click()
    frame = newest(reader)
    expect(frame.locator("#new-messages + .message")).to_contain_text("third, while the reader is away")
    reader.goto(quick_server.url)
    expect(card.locator(".unread-count")).to_have_count(0)


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def test_the_room_without_script_at_desktop_and_phone_widths(quick_server, site_env, new_noscript_user):
    slug = own_room(site_env, "Look")
    reader = new_noscript_user(quick_server.url, "looker")
    add_history(site_env, slug, reader.username, 60, "a message to open")
    for scheme in ("light", "dark"):
        reader.emulate_media(color_scheme=scheme)
        for size, viewport in VIEWPORTS.items():
            reader.set_viewport_size(viewport)
            reader.goto(f"{quick_server.url}/rooms/{slug}/")
            expect(newest(reader).locator(".message", has_text="note number 59")).to_be_visible()
            shoot(reader, f"noscript-room-{size}-{scheme}")
            reader.goto(f"{quick_server.url}/rooms/{slug}/?after=0")  # the room's first page
            opened = message_by(reader, "a message to open")
            opened.locator(".message-actions > summary").click()
            expect(opened.get_by_role("link", name="Open the actions page")).to_be_visible()
            shoot(reader, f"noscript-history-{size}-{scheme}")
