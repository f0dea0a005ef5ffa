"""Replies and mentions over the socket: the quote arrives with the reply, follows its original,
and opening the room reads what named you there."""

import pytest
from channels.db import database_sync_to_async

from chat import moderation, services
from chat.models import Mention, Message, Room
from chat.standing import Account
from chat.tests.support import (
    FORM,
    HISTORY,
    NEW_MESSAGE,
    SocketOpener,
    drain,
    make_staff,
    message_input,
    quote_in,
    quote_link,
    receive_until,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reply_shows_everyone_a_quote_linking_to_the_original(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    original = await database_sync_to_async(Message.objects.create)(
        room=lobby, author=alice, body="Shall we ship **on Friday** or wait?"
    )
    reader, replier = await open_socket(user=alice), await open_socket(user=bob)
    await drain(reader)

    await replier.send_to(text_data=ws_send_frame("Friday!", reply_to=str(original.pk)))

    frame = await receive_until(reader, NEW_MESSAGE)
    reply = await database_sync_to_async(Message.objects.get)(body="Friday!")
    assert quote_in(frame, reply.pk) == "alice Shall we ship on Friday or wait?"
    assert quote_link(frame, reply.pk) == f"/messages/{original.pk}/link/"  # its permalink
    fresh_form = await receive_until(replier, FORM)
    assert "reply_to" not in fresh_form  # the bar is gone once the reply is sent


async def test_a_refused_reply_keeps_its_text_and_its_bar(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    original = await database_sync_to_async(Message.objects.create)(room=lobby, author=alice, body="question")
    replier = await open_socket(user=bob)

    await replier.send_to(text_data=ws_send_frame("x" * 2001, reply_to=str(original.pk)))

    form = await receive_until(replier, FORM)
    assert "form-errors" in form and 'value="' + "x" * 2001 in message_input(form)
    assert f'<input type="hidden" name="reply_to" value="{original.pk}">' in form
    assert "Replying to <strong>alice</strong>" in form


async def test_a_quote_of_a_message_its_author_deleted_says_so_and_shows_none_of_it(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    original = await database_sync_to_async(Message.objects.create)(
        room=lobby, author=alice, body="oops, secret"
    )
    outcome = await database_sync_to_async(services.post_message)(
        lobby, bob, {"message": "what secret?", "reply_to": original.pk}
    )
    assert outcome.message is not None
    reader = await open_socket(user=bob)

    await database_sync_to_async(services.delete_own_message)(alice, original)
    frame = await receive_until(reader, f'id="quote-{outcome.message.pk}"')
    assert quote_in(frame, outcome.message.pk) == "Replying to a deleted message"

    history = await receive_until(await open_socket(user=alice, settle=False), HISTORY)
    assert quote_in(history, outcome.message.pk) == "Replying to a deleted message"
    assert "secret" not in history.replace("what secret?", "")


async def test_quotes_follow_their_original_when_it_is_removed_or_deleted(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    staff = await database_sync_to_async(make_staff)()
    first = await database_sync_to_async(Message.objects.create)(
        room=lobby, author=alice, body="first question"
    )
    second = await database_sync_to_async(Message.objects.create)(
        room=lobby, author=alice, body="second question"
    )
    replies = [
        (
            await database_sync_to_async(services.post_message)(
                lobby, bob, {"message": f"re {n}", "reply_to": n}
            )
        )
        for n in (first.pk, second.pk)
    ]
    to_first, to_second = (outcome.message.pk for outcome in replies if outcome.message)
    reader = await open_socket(user=bob)

    await database_sync_to_async(moderation.remove_message)(staff, first, "spam")
    frame = await receive_until(reader, f'id="quote-{to_first}"')
    assert quote_in(frame, to_first) == "Replying to a message removed by a moderator"

    await database_sync_to_async(moderation.delete_message)(staff, second, "illegal")
    frame = await receive_until(reader, f'id="quote-{to_second}"')
    assert quote_in(frame, to_second) == "Replying to a deleted message"

    history = await receive_until(await open_socket(user=alice, settle=False), HISTORY)
    assert quote_in(history, to_first) == "Replying to a message removed by a moderator"
    assert quote_in(history, to_second) == "Replying to a deleted message"
    assert "question" not in history


async def test_opening_the_room_reads_the_mentions_waiting_there(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    await database_sync_to_async(services.post_message)(lobby, alice, {"message": "@bob ping"})
    unseen = Mention.objects.filter(user=bob, seen=False)
    assert await database_sync_to_async(unseen.count)() == 1

    await open_socket(user=bob)

    assert await database_sync_to_async(unseen.count)() == 0
