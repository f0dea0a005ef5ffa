"""The live region's announcements, and pausing live updates (Settings), as the server sends them."""

import pytest
from channels.db import database_sync_to_async

from chat import fragments
from chat.models import LiveUpdates, Room
from chat.queries import ShownMessage
from chat.standing import Account
from chat.tests.support import HISTORY, NEW_MESSAGE, SocketOpener, client_for, receive_until, ws_send_frame

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

    assert 'hx-swap-oob="beforeend:#announcements"' in frame
    assert f'data-author-id="{alice.pk}">alice: Lunch at noon?</div>' in frame
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
