"""Permalinks: a message's own address opens its room around it, highlighted, paging both ways;
its socket keeps that history; whoever may not read the room gets the room's 404 or 403."""

import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import direct, services
from chat.models import Ban, Message, Room, message_permalink
from chat.standing import Account
from chat.tests.support import (
    HISTORY,
    HOST,
    NEW_MESSAGE,
    ORIGIN,
    add_messages,
    client_for,
    make_member,
    private_room,
    receive_until,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


def shown_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<article class="message[^"]*" id="message-(\d+)"', html)]


def newer_link(html: str) -> str:
    """The 'Load newer messages' button's address, or "" when there is none."""
    match = re.search(r'class="load-newer" hx-get="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else ""


def older_link(html: str) -> str:
    match = re.search(r'class="load-older" hx-get="([^"]+)"', html)
    return match.group(1) if match else ""


def test_a_permalink_opens_the_room_around_its_message_highlighted_and_pages_both_ways(
    lobby: Room, alice: Account, bob: Account
) -> None:
    messages = add_messages(lobby, alice, 160)
    target = messages[60]
    url = message_permalink("lobby", target.pk)
    assert url == f"/rooms/lobby/messages/{target.pk}/#message-{target.pk}"

    page = client_for(bob).get(url.split("#")[0])

    assert page.status_code == 200
    html = page.text
    ids = shown_ids(html)
    assert len(ids) == 50 and ids.index(target.pk) == 25  # in the middle of a page
    assert ids == [message.pk for message in messages[35:85]]
    assert f"#message-{target.pk} {{ --message-accent: var(--permalink-accent);" in html  # highlighted
    assert f'ws-connect="/ws/rooms/lobby/?around={target.pk}"' in html
    assert 'id="message-form"' in html  # the composer works there too

    older = client_for(bob).get(older_link(html)).text
    assert shown_ids(older) == [message.pk for message in messages[:35]]
    assert older_link(older) == "" and "This is the start of #Lobby." in older

    newer_url = newer_link(html)
    assert newer_url == f"/rooms/lobby/messages/newer/?after={messages[84].pk}&until={messages[-1].pk}"
    later = Message.objects.create(room=lobby, author=alice, body="posted after the page was read")
    newer = client_for(bob).get(newer_url).text
    assert shown_ids(newer) == [message.pk for message in messages[85:135]]
    last = client_for(bob).get(newer_link(newer)).text
    assert shown_ids(last) == [message.pk for message in messages[135:]]
    assert newer_link(last) == ""  # later messages come live, after these, never twice
    assert later.pk not in shown_ids(last)


def test_a_permalink_near_the_start_or_end_has_no_button_it_does_not_need(
    lobby: Room, alice: Account, bob: Account
) -> None:
    messages = add_messages(lobby, alice, 10)
    html = client_for(bob).get(f"/rooms/lobby/messages/{messages[-1].pk}/").text
    assert shown_ids(html) == [message.pk for message in messages]
    assert older_link(html) == "" and newer_link(html) == ""


def test_who_may_not_read_the_room_gets_its_usual_answer(
    lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    secret = private_room()
    make_member(secret, alice)
    hidden = Message.objects.create(room=secret, author=alice, body="for members")
    public = Message.objects.create(room=lobby, author=alice, body="for all")

    assert client_for(bob).get(f"/rooms/secret/messages/{hidden.pk}/").status_code == 404
    assert client_for(None).get(f"/rooms/secret/messages/{hidden.pk}/").status_code == 404
    assert client_for(alice).get(f"/rooms/secret/messages/{hidden.pk}/").status_code == 200
    # A message of another room, or none at all, is not in this one.
    assert client_for(bob).get(f"/rooms/kitchen/messages/{public.pk}/").status_code == 404
    assert client_for(bob).get("/rooms/lobby/messages/999999/").status_code == 404
    assert client_for(bob).get(f"/messages/{hidden.pk}/link/").status_code == 404

    Ban.objects.create(room=lobby, user=bob)
    assert client_for(bob).get(f"/rooms/lobby/messages/{public.pk}/").status_code == 403
    assert client_for(bob).get(f"/messages/{public.pk}/link/").status_code == 403
    assert client_for(bob).get(f"/rooms/lobby/messages/newer/?after=0&until={public.pk}").status_code == 403


def test_a_reply_quote_links_to_the_originals_permalink(lobby: Room, alice: Account, bob: Account) -> None:
    original = Message.objects.create(room=lobby, author=alice, body="the original")
    services.post_message(lobby, bob, {"message": "answer", "reply_to": str(original.pk)})

    html = client_for(bob).get("/rooms/lobby/").text
    assert f'<a class="quote" id="quote-{original.pk + 1}" href="/messages/{original.pk}/link/"' in html
    followed = client_for(bob).get(f"/messages/{original.pk}/link/")
    assert followed.status_code == 302
    assert followed["Location"] == message_permalink("lobby", original.pk)


def test_every_messages_menu_offers_its_link_to_share(lobby: Room, alice: Account, bob: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="worth sharing")

    menu = client_for(bob).get(f"/messages/{message.pk}/menu/").text

    assert f'href="/messages/{message.pk}/link/">Link to this message</a>' in menu
    followed = client_for(bob).get(f"/messages/{message.pk}/link/")
    assert followed["Location"] == message_permalink("lobby", message.pk)


def test_a_permalink_page_is_the_room_page_around_its_message(
    lobby: Room, alice: Account, bob: Account
) -> None:
    """The same page as the room's, but for its history: the file picker, and in a direct
    message the other person's name and the Block button."""
    message = Message.objects.create(room=lobby, author=alice, body="in the lobby")
    assert (
        'id="upload-form" class="upload-form"'
        in client_for(bob).get(message_permalink("lobby", message.pk)).text
    )

    conversation = direct.start(alice, bob)
    said = Message.objects.create(room=conversation, author=alice, body="just us")
    page = client_for(bob).get(message_permalink(conversation.slug, said.pk)).text
    assert '<title id="page-title">alice · Parley</title>' in page and "Block alice" in page


def test_paging_newer_needs_numbers(lobby: Room, bob: Account) -> None:
    answer = client_for(bob).get("/rooms/lobby/messages/newer/?after=x")
    assert answer.status_code == 400
    assert "?after=<id>&until=<id>" in answer.text


async def test_a_permalink_pages_socket_keeps_the_history_around_its_message_and_gets_new_ones(
    lobby: Room, alice: Account, bob: Account
) -> None:
    from site_config.asgi import application

    messages = await database_sync_to_async(add_messages)(lobby, alice, 120)
    target = messages[30]
    cookie = await database_sync_to_async(session_cookie)(bob)
    socket = WebsocketCommunicator(
        application,
        f"/ws/rooms/lobby/?around={target.pk}",
        headers=[(b"origin", ORIGIN), (b"host", HOST), (b"cookie", cookie)],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    try:
        history = await receive_until(socket, HISTORY)
        assert shown_ids(history) == [message.pk for message in messages[5:55]]
        assert newer_link(history) != ""

        await database_sync_to_async(services.post_message)(lobby, bob, {"message": "live one"})
        frame = await receive_until(socket, NEW_MESSAGE)
        assert "live one" in frame
    finally:
        await socket.disconnect()


async def test_a_socket_with_a_malformed_around_gets_the_usual_history(lobby: Room, alice: Account) -> None:
    from site_config.asgi import application

    messages = await database_sync_to_async(add_messages)(lobby, alice, 60)
    socket = WebsocketCommunicator(
        application, "/ws/rooms/lobby/?around=%C2%B2", headers=[(b"origin", ORIGIN), (b"host", HOST)]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    try:
        history = await receive_until(socket, HISTORY)
        assert shown_ids(history) == [message.pk for message in messages[10:]]
    finally:
        await socket.disconnect()


def test_with_mentions_unread_the_room_list_opens_the_room_at_the_first_of_them(
    lobby: Room, alice: Account, bob: Account
) -> None:
    from chat.tests.support import get_page

    first = services.post_message(lobby, alice, {"message": "@bob first"}).message
    Message.objects.create(room=lobby, author=alice, body="@bob second")
    assert first is not None

    room_list = get_page(client_for(bob), "/").html
    assert f'href="/rooms/lobby/messages/{first.pk}/#message-{first.pk}"' in room_list
    assert 'href="/rooms/lobby/"' in get_page(client_for(alice), "/").html  # nothing unread: the room

    services.mark_mentions_read(lobby, bob)
    assert 'href="/rooms/lobby/"' in get_page(client_for(bob), "/").html


def test_a_permalink_sockets_skips_broadcasts_of_messages_its_history_or_load_newer_covers() -> None:
    """A message committed just before the history was read, its broadcast arriving just after:
    appended live it would show twice once "Load newer" reaches it."""
    from chat.consumers import RoomConsumer

    socket = RoomConsumer()
    socket.history_until = 100
    assert socket._already_shown({"type": "room.html", "html": "", "message_id": 99})
    assert not socket._already_shown({"type": "room.html", "html": "", "message_id": 101})
    assert not socket._already_shown({"type": "room.html", "html": "<p>an edit</p>"})
