"""The live region's announcements, and pausing live updates (Settings), as the server sends them."""

import re

import pytest
from channels.db import database_sync_to_async

from chat import fragments, services
from chat.models import LiveUpdates, Room
from chat.queries import ShownMessage
from chat.standing import Account
from chat.templatetags.chat_extras import ANNOUNCEMENT_SLOTS
from chat.tests.support import (
    HISTORY,
    NEW_MESSAGE,
    SocketOpener,
    client_for,
    drain,
    get_page,
    message_id,
    receive_until,
    without_announcement,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

PAUSED = 'class="live-mode paused"'
ON = 'class="live-mode"'


def test_the_settings_page_pauses_and_resumes_live_updates(alice: Account) -> None:
    client = client_for(alice)
    assert 'name="paused"' in client.get("/settings/").text

    saved = client.post("/settings/", {"live_updates": "1", "paused": "on"})

    assert saved.status_code == 200 and "Saved." in saved.text
    assert LiveUpdates.objects.get(user=alice).paused
    client.post("/settings/", {"live_updates": "1"})  # the box unticked
    assert not LiveUpdates.objects.get(user=alice).paused


async def test_a_socket_is_told_its_persons_live_mode_on_connect(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await database_sync_to_async(LiveUpdates.objects.create)(user=bob, paused=True)

    bob_first = await receive_until(await open_socket(user=bob, settle=False), HISTORY)
    alice_first = await receive_until(await open_socket(user=alice, settle=False), HISTORY)

    assert PAUSED in bob_first and ON in alice_first


async def test_a_new_message_carries_its_announcement_and_catch_up_resends_the_history(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    author, reader = await open_socket(user=alice), await open_socket(user=bob)

    await author.send_to(text_data=ws_send_frame("Lunch at **noon**?"))
    frame = await receive_until(reader, NEW_MESSAGE)

    # Its line replaces one slot of the live region, the one of its id: the region never grows.
    pk = message_id(frame, "Lunch at")
    line = (
        f'<div id="announcement-{pk % ANNOUNCEMENT_SLOTS}" class="announcement" data-author-id="{alice.pk}"'
    )
    assert f'{line} hx-swap-oob="true">alice: Lunch at noon?</div>' in frame
    await reader.send_to(text_data=ws_send_frame(action="catch_up"))
    assert "Lunch at <strong>noon</strong>?" in await receive_until(reader, HISTORY)


def test_an_announcement_reads_words_not_markup() -> None:
    message = ShownMessage(
        pk=1,
        author_id=1,
        author_name="alice",
        body_html="<p>Fish &amp; chips</p><ul><li>one</li><li>two</li></ul>",
        created_at=None,  # type: ignore[arg-type]  # not read here
        removed_at=None,
    )
    assert fragments.spoken_text(message) == "Fish & chips one two"
    assert "alice: Fish &amp; chips one two" in fragments.announcement_html(message)


def test_the_live_region_has_a_fixed_number_of_empty_slots(lobby: Room, bob: Account) -> None:
    page = get_page(client_for(bob), "/rooms/lobby/").html
    region = re.search(r'<div id="announcements"[^>]*>((?:<div id="announcement-\d+"></div>)*)</div>', page)
    assert region, "no live region of empty slots on the page"
    slots = re.findall(r'id="announcement-(\d+)"', region[1])
    assert slots == [str(slot) for slot in range(ANNOUNCEMENT_SLOTS)]


def pause(user: Account, paused: bool) -> None:
    """Save "Pause live updates" on the settings page, as its form does."""
    fields = {"live_updates": "1"} | ({"paused": "on"} if paused else {})
    assert client_for(user).post("/settings/", fields).status_code == 200


async def test_saving_the_setting_switches_the_persons_open_rooms_at_once(
    open_socket: SocketOpener, lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    bobs = [await open_socket(user=bob), await open_socket(slug=other_room.slug, user=bob)]
    alices = await open_socket(user=alice)
    say = database_sync_to_async(services.post_message)
    await say(lobby, alice, {"message": "seen before pausing"})
    await receive_until(bobs[0], NEW_MESSAGE)
    for socket in (*bobs, alices):
        await drain(socket)

    await database_sync_to_async(pause)(bob, True)

    frames = [await receive_until(socket, PAUSED) for socket in bobs]  # every room of his, still open
    # The history first: what had shown stays in sight, in the history (not held as if new).
    assert all(HISTORY in frame and frame.index(HISTORY) < frame.index(PAUSED) for frame in frames)
    assert "seen before pausing" in frames[0]
    assert all("live-mode" not in frame for frame in await drain(alices))  # his setting, not hers

    await say(lobby, alice, {"message": "held while paused"})
    await database_sync_to_async(pause)(bob, False)

    frame = await receive_until(bobs[0], ON)
    # What was held comes in with the history; the live region is emptied while still hidden (so
    # the held lines are not read out as it shows again), then live updates are on.
    assert "held while paused" in without_announcement(frame)
    emptied = '<div id="announcement-0" hx-swap-oob="true"></div>'
    assert frame.index(HISTORY) < frame.index(emptied) < frame.index(ON)
    assert ON in await receive_until(bobs[1], ON)
