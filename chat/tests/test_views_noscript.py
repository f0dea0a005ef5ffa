"""Every view a page without script (docs/no-script.md): history pages behind "Load older" and
"Load newer", a message's actions and edit form as pages, Reply as a link, and the room's newest
messages in a frame that reloads itself and keeps the reading position."""

import re

import pytest
from django.test import Client

from chat.models import LastRead, Message, Room
from chat.standing import Account
from chat.tests.support import add_messages, message_ids

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def href(html: str, css_class: str) -> str:
    match = re.search(rf'<a class="{css_class}"[^>]* href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else ""


def test_load_older_is_a_link_to_a_page_of_history_that_links_on_both_ways(
    client: Client, lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 120)
    latest = client.get("/rooms/lobby/").content.decode()
    older_url = href(latest, "load-older")
    assert older_url == f"/rooms/lobby/?before={stored[70].pk}"

    older = client.get(older_url).content.decode()

    assert message_ids(older) == [m.pk for m in stored[20:70]]
    assert href(older, "load-older") == f"/rooms/lobby/?before={stored[20].pk}"
    newer_url = href(older, "load-newer")
    assert newer_url == f"/rooms/lobby/?after={stored[69].pk}"
    assert "live-frame" not in older, "a page of history does not reload itself"

    newer = client.get(newer_url).content.decode()

    assert message_ids(newer) == [m.pk for m in stored[70:]]
    assert href(newer, "load-older") == f"/rooms/lobby/?before={stored[70].pk}"
    assert href(newer, "load-newer") == "/rooms/lobby/", "the newest reached: back to the room"


def test_a_page_of_history_names_a_message_by_its_number(client: Client, lobby: Room) -> None:
    assert client.get("/rooms/lobby/?before=abc").status_code == 400


def test_the_message_menu_opens_as_a_page_without_script_and_as_a_fragment_with_it(
    client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="Lunch at noon?")
    client.force_login(bob)
    room = client.get("/rooms/lobby/").content.decode()
    assert f'</summary><a href="/messages/{message.pk}/menu/">Open the actions page</a></details>' in room

    page = client.get(f"/messages/{message.pk}/menu/")

    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    assert "Lunch at noon?" in html
    assert f'href="/rooms/lobby/?reply={message.pk}#message-form">Reply</a>' in html
    assert "Report message" in html and "Edit</a>" not in html  # a member's, not the author's
    assert f'href="/rooms/lobby/messages/{message.pk}/#message-{message.pk}">Back to the room' in html
    fragment = client.get(f"/messages/{message.pk}/menu/", headers=HTMX).content.decode()
    assert "<html" not in fragment and ">Reply</button>" in fragment


def test_the_author_edits_on_a_page_of_its_own(client: Client, lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="Meet at 10")
    client.force_login(alice)
    menu = client.get(f"/messages/{message.pk}/menu/").content.decode()
    assert f'href="/messages/{message.pk}/edit/">Edit</a>' in menu and "Yes, delete it" in menu

    edit = client.get(f"/messages/{message.pk}/edit/").content.decode()

    assert "<html" in edit and 'value="Meet at 10"' in edit and "Back to the room" in edit


def test_someone_else_may_not_open_the_edit_page(
    client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="Meet at 10")
    client.force_login(bob)

    assert client.get(f"/messages/{message.pk}/edit/").status_code == 403


def test_reply_link_opens_the_room_with_the_reply_bar_set(
    client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="Lunch at noon?")
    client.force_login(bob)

    html = client.get(f"/rooms/lobby/?reply={message.pk}").content.decode()

    assert f'<input type="hidden" name="reply_to" value="{message.pk}">' in html
    assert "Replying to <strong>" in html


def test_the_room_page_frames_its_newest_messages_for_browsers_without_script(
    client: Client, lobby: Room, settings
) -> None:
    html = client.get("/rooms/lobby/").content.decode()

    slot = re.search(r"<noscript class=\"live-frame-slot\"><iframe[^>]*src=\"([^\"]+)\"", html)
    assert slot and slot.group(1) == "/rooms/lobby/frame/"
    frame = client.get(slot.group(1))
    assert frame.status_code == 200
    refresh = f'<meta http-equiv="refresh" content="{settings.CHAT_NOSCRIPT_REFRESH_SECONDS}">'
    assert refresh in frame.content.decode()
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in client.get("/rooms/lobby/").headers["Content-Security-Policy"]


def test_each_load_of_the_frame_reads_the_room_and_marks_what_came_since(
    client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    first = Message.objects.create(room=lobby, author=alice, body="before bob looked")
    client.force_login(bob)
    client.get("/rooms/lobby/frame/")  # the first look: nothing was read before, no divider
    assert LastRead.objects.get(user=bob, room=lobby).message_id == first.pk
    new = Message.objects.create(room=lobby, author=alice, body="after bob looked")

    reloaded = client.get("/rooms/lobby/frame/").content.decode()

    assert reloaded.index('id="new-messages"') < reloaded.index(f'id="message-{new.pk}"')
    assert reloaded.index(f'id="message-{first.pk}"') < reloaded.index('id="new-messages"')
    assert LastRead.objects.get(user=bob, room=lobby).message_id == new.pk
    again = client.get("/rooms/lobby/frame/").content.decode()
    assert 'id="new-messages"' not in again, "read once shown"


def test_viewing_the_room_page_itself_writes_no_reading_position(
    client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    Message.objects.create(room=lobby, author=alice, body="hello")
    client.force_login(bob)

    client.get("/rooms/lobby/")

    assert not LastRead.objects.filter(user=bob).exists()
