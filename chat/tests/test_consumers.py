"""The room socket through the real ASGI stack: origin check, session auth, routing, consumer."""

import asyncio
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import broadcast, fragments, queries, services
from chat.models import Message, Role, Room
from chat.standing import Account
from chat.tests.support import (
    FORM,
    HISTORY,
    HOST,
    MEMBERS,
    NEW_MESSAGE,
    NOTICE,
    SocketOpener,
    drain,
    member_names,
    message_ids,
    message_input,
    new_message,
    receive_text,
    receive_until,
    stored_bodies,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


# Connecting -------------------------------------------------------------------------------


async def test_connecting_sends_history_then_the_member_list_and_leaves_the_form_alone(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    earlier = await database_sync_to_async(Message.objects.create)(room=lobby, author=alice, body="earlier")
    socket = await open_socket(user=alice, settle=False)

    first = await receive_text(socket)
    second = await receive_text(socket)

    assert 'id="messages"' in first and 'hx-swap-oob="true"' in first
    assert f'id="message-{earlier.pk}"' in first
    # Replacing the form on a reconnect would wipe what the user was typing meanwhile.
    assert 'id="message-form"' not in first + second
    assert '<aside id="members"' in second and 'hx-swap-oob="true"' in second
    assert member_names(second) == ["alice"]


async def test_connecting_to_a_busy_room_sends_the_last_page_and_a_way_back(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    await database_sync_to_async(Message.objects.bulk_create)(
        [Message(room=lobby, author=alice, body=f"old {n}") for n in range(60)]
    )
    stored = await database_sync_to_async(lambda: list(Message.objects.order_by("pk")))()
    socket = await open_socket(settle=False)

    history = await receive_until(socket, HISTORY)

    assert message_ids(history) == [m.pk for m in stored[10:]]
    assert f'hx-get="/rooms/lobby/messages/?before={stored[10].pk}"' in history


async def test_foreign_origin_is_refused_at_handshake(lobby: Room) -> None:
    from site_config.asgi import application

    socket = WebsocketCommunicator(
        application, "/ws/rooms/lobby/", headers=[(b"origin", b"http://evil.example"), (b"host", HOST)]
    )

    connected, _ = await socket.connect()

    assert connected is False
    await socket.disconnect()


async def test_unknown_room_is_refused_at_handshake(open_socket: SocketOpener, db: None) -> None:
    await open_socket(slug="nowhere", refused=True)


# Posting ----------------------------------------------------------------------------------


async def test_message_reaches_everyone_in_the_room_and_nobody_elsewhere(
    open_socket: SocketOpener,
    lobby: Room,
    other_room: Room,
    alice: Account,
    bob: Account,
    carol: Account,
) -> None:
    sender = await open_socket(user=alice)
    reader = await open_socket(user=bob)
    elsewhere = await open_socket(slug=other_room.slug, user=carol)
    for socket in (sender, reader, elsewhere):
        await drain(socket)

    await sender.send_to(text_data=ws_send_frame("hello lobby"))

    received = await receive_until(reader, NEW_MESSAGE)
    stored = await database_sync_to_async(Message.objects.get)()
    assert stored.body == "hello lobby" and stored.room_id == lobby.pk
    assert message_ids(received) == [stored.pk]
    assert re.match(rf'\s*<div {NEW_MESSAGE}>\s*<article class="message" id="message-{stored.pk}"', received)
    assert "hello lobby" in received
    assert await receive_until(sender, NEW_MESSAGE) == received
    assert await elsewhere.receive_nothing(timeout=0.3)


async def test_sender_gets_a_fresh_empty_focused_form_after_posting(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    sender = await open_socket(user=alice)

    await sender.send_to(text_data=ws_send_frame("  spaced out  "))

    reply = await receive_until(sender, FORM)
    assert 'hx-swap-oob="true"' in reply
    assert 'value=""' in message_input(reply)
    assert "autofocus" in message_input(reply)
    assert "form-errors" not in reply
    assert await stored_bodies() == ["spaced out"]


async def test_empty_message_is_refused_and_nobody_else_hears_of_it(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    sender = await open_socket(user=alice)
    reader = await open_socket(user=bob)
    await drain(sender)
    await drain(reader)

    await sender.send_to(text_data=ws_send_frame("   "))

    reply = await receive_until(sender, FORM)
    assert "Write something before sending." in reply
    assert await reader.receive_nothing(timeout=0.3)
    assert await stored_bodies() == []


async def test_too_long_message_is_refused_and_its_text_kept(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    sender = await open_socket(user=alice)
    text = "y" * 2001

    await sender.send_to(text_data=ws_send_frame(text))

    reply = await receive_until(sender, FORM)
    assert "Messages can be at most 2000 characters (this one has 2001)." in reply
    assert f'value="{text}"' in message_input(reply)
    assert await stored_bodies() == []


async def test_flooding_is_refused_with_the_text_kept(
    open_socket: SocketOpener, lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 2
    settings.CHAT_FLOOD_WINDOW_SECONDS = 60
    sender = await open_socket(user=alice)
    for text in ("one", "two"):
        await sender.send_to(text_data=ws_send_frame(text))
        await receive_until(sender, NEW_MESSAGE)

    await sender.send_to(text_data=ws_send_frame("three"))

    reply = await receive_until(sender, FORM)
    assert "You&#x27;re sending messages too fast." in reply
    assert 'value="three"' in message_input(reply)
    assert await stored_bodies() == ["one", "two"]


async def test_html_in_a_message_arrives_escaped(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    sender = await open_socket(user=alice)

    await sender.send_to(text_data=ws_send_frame('<script>alert("x")</script>'))

    received = await receive_until(sender, NEW_MESSAGE)
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in received
    assert "<script" not in received


async def test_unknown_extra_fields_are_ignored(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    sender = await open_socket(user=alice)

    await sender.send_to(
        text_data=ws_send_frame("plain", author="bob", room="kitchen", is_staff="true", tags=["a"])
    )

    received = await receive_until(sender, NEW_MESSAGE)
    stored = await database_sync_to_async(Message.objects.select_related("author", "room").get)()
    assert (stored.body, stored.author.username, stored.room.slug) == ("plain", "alice", "lobby")
    assert f'data-author-id="{alice.pk}"' in received


NOT_READABLE = "That could not be read as a chat message. Nothing was posted."
ONLY_TEXT = "Only text messages can be sent here."
# What a hand-made client can send: valid JSON, 16,000 bytes, nested deeper than Python's json can parse.
DEEPLY_NESTED = "[" * 8000 + "]" * 8000


@pytest.mark.parametrize(
    ("frame", "sentence"),
    [
        pytest.param({"text_data": "hello?"}, NOT_READABLE, id="not-json"),
        pytest.param({"text_data": '["hi"]'}, NOT_READABLE, id="json-array"),
        pytest.param({"text_data": '"hi"'}, NOT_READABLE, id="json-string"),
        pytest.param({"bytes_data": b'{"message": "hi"}'}, ONLY_TEXT, id="binary"),
        pytest.param(
            {"text_data": ws_send_frame("z" * 16 * 1024)},
            "That was too large to send. Nothing was posted.",
            id="oversized",
        ),
        pytest.param({"text_data": DEEPLY_NESTED}, NOT_READABLE, id="deeply-nested-json"),
    ],
)
async def test_unusable_frame_gets_a_notice_and_the_socket_stays_usable(
    open_socket: SocketOpener, lobby: Room, alice: Account, frame: dict, sentence: str
) -> None:
    sender = await open_socket(user=alice)

    await sender.send_to(**frame)

    notice = await receive_until(sender, NOTICE)
    assert sentence in notice
    assert await stored_bodies() == []
    await sender.send_to(text_data=ws_send_frame("still here"))
    assert "still here" in await receive_until(sender, NEW_MESSAGE)


async def test_frame_size_limit_follows_the_setting(
    open_socket: SocketOpener, lobby: Room, alice: Account, settings
) -> None:
    settings.CHAT_MAX_FRAME_BYTES = 200
    sender = await open_socket(user=alice)

    await sender.send_to(text_data=ws_send_frame("w" * 200))

    assert "That was too large to send." in await receive_until(sender, NOTICE)
    assert await stored_bodies() == []


async def test_text_that_cannot_be_stored_is_refused_and_the_socket_stays_usable(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    """JSON.stringify sends a lone UTF-16 surrogate (half an emoji, cut by a paste) as \\ud83d."""
    sender = await open_socket(user=alice)

    await sender.send_to(text_data='{"message": "half an emoji \\ud83d", "HEADERS": {}}')

    assert "broken character in it (half an emoji?)" in await receive_until(sender, NOTICE)
    assert await stored_bodies() == []
    await sender.send_to(text_data=ws_send_frame("still here"))
    assert "still here" in await receive_until(sender, NEW_MESSAGE)


async def test_anonymous_socket_reads_but_cannot_post(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    writer = await open_socket(user=alice)
    guest = await open_socket(settle=False)
    await receive_until(guest, HISTORY)
    await drain(guest)

    await writer.send_to(text_data=ws_send_frame("for everyone"))
    assert "for everyone" in await receive_until(guest, NEW_MESSAGE)
    await guest.send_to(text_data=ws_send_frame("let me in"))

    reply = await receive_until(guest, FORM)
    assert "Sign in to post messages." in reply
    assert await stored_bodies() == ["for everyone"]


# Reconnecting -----------------------------------------------------------------------------


async def test_reconnecting_socket_gets_everything_it_missed_exactly_once(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    sender = await open_socket(user=alice)
    reader = await open_socket(user=bob)
    await sender.send_to(text_data=ws_send_frame("before the drop"))
    await receive_until(reader, NEW_MESSAGE)
    await reader.disconnect()

    for text in ("while away 1", "while away 2"):
        await sender.send_to(text_data=ws_send_frame(text))
        await receive_until(sender, NEW_MESSAGE)
    back = await open_socket(user=bob, settle=False)

    history = await receive_until(back, HISTORY)
    stored = await database_sync_to_async(lambda: list(Message.objects.order_by("pk")))()
    assert [m.body for m in stored] == ["before the drop", "while away 1", "while away 2"]
    assert message_ids(history) == [m.pk for m in stored]


async def test_a_message_posted_while_a_socket_connects_is_shown_once(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posted after the socket joined the room but before its history was read: the history has
    it, and its broadcast (held while connecting) must not append it a second time."""
    render_history = fragments.reconnect_html

    def post_then_render(room: Room, role: Role) -> str:
        services.post_message(room, alice, {"message": "just in time"})
        return render_history(room, role)

    monkeypatch.setattr(fragments, "reconnect_html", post_then_render)
    reader = await open_socket(user=bob, settle=False)
    frames = "".join(await drain(reader, quiet=0.5))

    assert frames.count("just in time") == 1
    assert await stored_bodies() == ["just in time"]


async def test_a_broadcast_that_arrives_after_the_history_showing_its_message_adds_nothing(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    """Committed before the history was read, broadcast after it was sent: shown once."""
    message = await new_message(lobby, alice, "late news")
    reader = await open_socket(user=bob)

    await database_sync_to_async(broadcast.new_message)(message)  # its broadcast, arriving late
    await database_sync_to_async(services.post_message)(lobby, alice, {"message": "later"})
    frames = "".join(await drain(reader, quiet=0.5))

    assert "late news" not in frames
    assert "later" in frames


# Members ----------------------------------------------------------------------------------


async def test_second_tab_of_a_user_is_not_listed_twice(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    first_tab = await open_socket(user=alice)
    await open_socket(user=bob)
    await drain(first_tab)

    await open_socket(user=alice)

    members = await receive_until(first_tab, MEMBERS)
    assert member_names(members) == ["alice", "bob"]
    assert '<span class="count">2</span>' in members


async def test_guests_are_counted_not_named(open_socket: SocketOpener, lobby: Room, alice: Account) -> None:
    tab = await open_socket(user=alice)
    await drain(tab)

    await open_socket()

    members = await receive_until(tab, MEMBERS)
    assert member_names(members) == ["alice"]
    assert "and 1 guest reading" in members


async def test_user_leaves_the_list_when_their_last_socket_closes(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    staying = await open_socket(user=alice)
    bob_tab_1 = await open_socket(user=bob)
    bob_tab_2 = await open_socket(user=bob)
    await drain(staying)

    await bob_tab_1.disconnect()
    assert member_names(await receive_until(staying, MEMBERS)) == ["alice", "bob"]
    await bob_tab_2.disconnect()

    members = await receive_until(staying, MEMBERS)
    assert member_names(members) == ["alice"]
    assert '<span class="count">1</span>' in members


async def test_socket_that_ended_without_goodbye_drops_off_the_member_list(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    """However a connection ends, its presence goes with it. (The rows of a process that died
    without saying goodbye expire instead: test_services and test_presence_scale.)"""
    await open_socket(user=alice)
    leaving = await open_socket(user=bob)

    # A frame the consumer may fail on; afterwards the connection ends, as the server ends it.
    await leaving.send_to(text_data=DEEPLY_NESTED)
    await asyncio.sleep(0.3)
    if leaving.future.done():
        leaving.future.exception()  # the consumer failed: the server logs it and drops the connection
    else:
        await leaving.disconnect()
    await asyncio.sleep(1.0)

    members = await database_sync_to_async(queries.online_members)(lobby)
    assert members.usernames == ["alice"]
