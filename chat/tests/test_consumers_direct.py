"""Direct messages live: real websockets through site_config.asgi.application, sending what htmx sends.

Its two people talk as in a room; a third person, staff and visitors get no socket; a block
closes the form at once on both open pages, and a post sent anyway is refused with a sentence.
"""

from html import unescape

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from chat import direct, moderation
from chat.models import Room
from chat.standing import Account
from chat.tests.support import (
    FORM,
    NOTICE,
    REMOVED_FROM_ROOM,
    SocketOpener,
    drain,
    receive_close,
    receive_message_frame,
    receive_until,
    settle,
    stored_bodies,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE_INPUT = 'name="message"'


@pytest.fixture
def talk(alice: Account, bob: Account) -> Room:
    return direct.start(alice, bob)


async def test_its_two_people_talk_live_and_nobody_else_gets_a_socket(
    open_socket: SocketOpener, talk: Room, alice: Account, bob: Account, carol: Account, staff: Account
) -> None:
    alices, bobs = await open_socket(talk.slug, alice), await open_socket(talk.slug, bob)
    await settle(alices, bobs)

    await alices.send_to(text_data=ws_send_frame("lunch tomorrow?", slug=talk.slug))

    await receive_message_frame(bobs, "lunch tomorrow?")
    await receive_message_frame(alices, "lunch tomorrow?")
    for outsider in (carol, staff, None):
        await open_socket(talk.slug, outsider, refused=True)


async def test_a_block_closes_both_forms_at_once_and_a_post_sent_anyway_is_refused_plainly(
    open_socket: SocketOpener, talk: Room, alice: Account, bob: Account
) -> None:
    alices, bobs = await open_socket(talk.slug, alice), await open_socket(talk.slug, bob)
    await settle(alices, bobs)

    await database_sync_to_async(direct.block)(alice, bob)

    bobs_form = unescape(await receive_until(bobs, FORM))
    assert "You can't send messages to alice: they have blocked you." in bobs_form
    assert MESSAGE_INPUT not in bobs_form
    alices_form = unescape(await receive_until(alices, FORM))
    assert "You have blocked bob." in alices_form and MESSAGE_INPUT not in alices_form
    # The file picker goes with the form, on both pages.
    for form in (bobs_form, alices_form):
        assert 'id="upload-form" hidden hx-swap-oob="true"' in form and "/attachments/" not in form
    await drain(alices)

    # A page that still had its form (sent before the redraw) posts: refused, nothing stored or shown.
    await bobs.send_to(text_data=ws_send_frame("but wait", slug=talk.slug))
    refusal = unescape(await receive_until(bobs, FORM))
    assert "they have blocked you" in refusal and "but wait" in refusal  # the text is kept
    assert await alices.receive_nothing(timeout=0.3)
    assert await stored_bodies() == []

    await database_sync_to_async(direct.unblock)(alice, bob)
    unblocked = await receive_until(bobs, FORM)
    assert MESSAGE_INPUT in unblocked and f'hx-post="/rooms/{talk.slug}/attachments/"' in unblocked
    await bobs.send_to(text_data=ws_send_frame("thanks", slug=talk.slug))
    await receive_message_frame(alices, "thanks")


async def test_a_typing_signal_from_the_blocked_shows_nothing(
    open_socket: SocketOpener, talk: Room, alice: Account, bob: Account
) -> None:
    await database_sync_to_async(direct.block)(alice, bob)
    alices, bobs = await open_socket(talk.slug, alice), await open_socket(talk.slug, bob)
    await settle(alices, bobs)

    await bobs.send_to(text_data=ws_send_frame(action="typing", slug=talk.slug))

    assert await alices.receive_nothing(timeout=0.6)


async def test_turned_off_the_conversation_stays_readable_and_posts_are_refused(
    open_socket: SocketOpener, talk: Room, alice: Account, bob: Account
) -> None:
    with override_settings(CHAT_DIRECT_MESSAGES_ENABLED=False):
        alices = await open_socket(talk.slug, alice)
        await alices.send_to(text_data=ws_send_frame("hello?", slug=talk.slug))
        assert "turned off" in await receive_until(alices, FORM)
    assert await stored_bodies() == []


async def test_a_ban_from_the_moderation_queue_closes_the_banned_persons_socket(
    open_socket: SocketOpener, talk: Room, alice: Account, bob: Account, staff: Account
) -> None:
    bobs = await open_socket(talk.slug, bob)

    await database_sync_to_async(moderation.ban)(staff, talk, bob, "threats")

    frames, code = await receive_close(bobs)
    assert code == REMOVED_FROM_ROOM
    assert any(NOTICE in frame for frame in frames)
    await open_socket(talk.slug, bob, refused=True)
    await open_socket(talk.slug, alice)  # the other one still reads it
