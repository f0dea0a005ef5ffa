"""Editing and deleting your own messages over the socket, as htmx's ws extension sends the forms.

Refusals are tested with crafted frames: the page hides the buttons, the server decides.
"""

from html import unescape

import pytest
from channels.db import database_sync_to_async as database_sync

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import (
    DELETED,
    EDITED,
    NOTICE,
    SocketOpener,
    drain,
    make_moderator,
    mute_for,
    new_message,
    receive_until,
    sent_ago,
    settle,
    snapshot,
    stored_message,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


def edit_frame(message: Message, text: str) -> str:
    return ws_send_frame(text, action="edit", message_id=str(message.pk))


async def test_an_edit_shows_live_for_every_role_marked_edited(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "lunch at noon")
    author, member, visitor = await open_socket(user=alice), await open_socket(user=bob), await open_socket()
    moderator = await open_socket(user=await database_moderator(lobby))
    await settle(author, member, visitor, moderator)

    await author.send_to(text_data=edit_frame(message, "lunch at *one*"))

    for socket in (author, member, visitor, moderator):
        frame = await receive_until(socket, f'id="message-{message.pk}"')
        assert "lunch at <em>one</em>" in frame and EDITED in frame and 'hx-swap-oob="true"' in frame
        assert "noon" not in frame
    assert (await stored_message(message.pk)).body == "lunch at *one*"


async def test_a_delete_leaves_a_tombstone_for_everyone(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "oops, wrong room")
    author, member = await open_socket(user=alice), await open_socket(user=bob)
    await settle(author, member)

    await author.send_to(text_data=ws_send_frame(action="delete", message_id=str(message.pk)))

    assert "Message deleted." in await receive_until(author, NOTICE)
    frame = await receive_until(member, f'id="message-{message.pk}"')
    assert DELETED in frame and "wrong room" not in frame
    stored = await stored_message(message.pk)
    assert (stored.body, stored.body_html) == ("", "")


@pytest.mark.parametrize("action", ["edit", "delete"])
async def test_a_crafted_frame_for_someone_elses_message_is_refused_in_a_sentence(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, action: str
) -> None:
    message = await new_message(lobby, alice, "mine, not yours")
    intruder, author = await open_socket(user=bob), await open_socket(user=alice)
    await settle(intruder, author)
    before = await database_snapshot()

    await intruder.send_to(text_data=ws_send_frame("hijacked", action=action, message_id=str(message.pk)))

    assert "You can only change your own messages." in await receive_until(intruder, NOTICE)
    assert await database_snapshot() == before
    assert await drain(author) == []  # nobody else hears of it


async def test_a_muted_author_is_refused_an_edit_and_nothing_changes(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "before the mute")
    await database_mute(lobby, alice)
    author, member = await open_socket(user=alice), await open_socket(user=bob)
    await settle(author, member)

    await author.send_to(text_data=edit_frame(message, "after the mute"))

    assert "so you can't edit messages." in unescape(await receive_until(author, NOTICE))
    assert (await stored_message(message.pk)).body == "before the mute"
    assert await drain(member) == []


async def test_past_the_window_an_edit_is_refused(
    open_socket: SocketOpener, lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_EDIT_WINDOW_SECONDS = 60
    message = await new_message(lobby, alice, "old news")
    await database_sync(sent_ago)(message, 61)
    author = await open_socket(user=alice)

    await author.send_to(text_data=edit_frame(message, "new news"))

    assert "Messages can only be edited for 1 minute after sending." in await receive_until(author, NOTICE)
    assert (await stored_message(message.pk)).body == "old news"


@pytest.mark.parametrize(
    ("text", "sentence"),
    [("   ", "Write something before sending."), ("x" * 2001, "Messages can be at most 2000 characters")],
)
async def test_bad_text_gets_a_sentence_and_the_old_text_stays(
    open_socket: SocketOpener, lobby: Room, alice: Account, text: str, sentence: str
) -> None:
    message = await new_message(lobby, alice, "keep me")
    author = await open_socket(user=alice)

    await author.send_to(text_data=edit_frame(message, text))

    frame = await receive_until(author, NOTICE)
    assert sentence in frame and f'id="message-{message.pk}"' not in frame  # the form stays as typed
    assert (await stored_message(message.pk)).body == "keep me"


async def test_an_unchanged_edit_just_closes_the_form(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    message = await new_message(lobby, alice, "same as before")
    author = await open_socket(user=alice)

    await author.send_to(text_data=edit_frame(message, "same as before"))

    frame = await receive_until(author, f'id="message-{message.pk}"')
    assert "same as before" in frame and EDITED not in frame


# Sync helpers, run in the database thread ------------------------------------------------------

database_moderator = database_sync(lambda room: make_moderator(room, "mona"))
database_mute = database_sync(mute_for)
database_snapshot = database_sync(snapshot)
