"""A room holding what an older version stored too large, as a browser shows it: the room opens,
the message reads as typed, and its moderator removes it from the page."""

import pytest
from playwright.sync_api import expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, grant, message_by, open_menu, open_room
from testsupport.servers import manage

STORED_TOO_LARGE = """
from chat.models import Message, Room
from chat.standing import Account
room = Room.objects.get(slug="{slug}")
author, _ = Account.objects.get_or_create(username="oldtimer")
url = "https://example.com/" + "a" * 975
body = "Look at [this] and [this] and [this]!\\n\\n[this]: " + url
ids = [Message.objects.create(room=room, author=author, body=f"{{n}}. {{body}}").pk for n in range(5)]
Message.objects.filter(pk__in=ids).update(body_html="<p>" + f'<a href="{{url}}">this</a> ' * 248 + "</p>")
"""
AS_TYPED = "Shown as typed: its formatting was too large to show."


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_room_of_messages_stored_too_large_opens_reads_as_typed_and_is_cleaned_up(
    server, site_env, new_user, device: str
):
    slug = f"stored-{device}"
    create_rooms(site_env, {slug: "Old times"})
    manage(site_env, "shell", "-c", STORED_TOO_LARGE.format(slug=slug))
    mona = new_user(server.url, "mona", viewport=VIEWPORTS[device])
    grant(site_env, mona.username, moderator_of=slug)

    open_room(mona, server.url, slug)

    messages = mona.locator("#messages .message")
    expect(messages).to_have_count(5)
    expect(messages.first).to_contain_text("Look at [this] and [this] and [this]!")
    expect(messages.first).to_contain_text(AS_TYPED)
    SCREENSHOTS.mkdir(exist_ok=True)
    mona.screenshot(path=SCREENSHOTS / f"stored-too-large-{device}.png")
    open_menu(mona, "0. Look at [this]")
    message_by(mona, "0. Look at [this]").get_by_role("button", name="Remove message").click()
    expect(mona.locator("#messages .message.removed")).to_have_count(1)
