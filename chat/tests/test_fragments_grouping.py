"""Consecutive messages by one person read as one block: the later ones show no avatar or name.

The decision for a message depends only on the room's message before it (chat.fragments.continues),
so a live message, rendered once for everyone when it is posted, and every history page agree.
"""

import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat import fragments, moderation, services
from chat.models import Message, Role, Room
from chat.standing import Account
from chat.tests.support import (
    NEW_MESSAGE,
    SocketOpener,
    client_for,
    drain,
    make_staff,
    receive_message_frame,
    receive_until,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db


def post(room: Room, author: Account, text: str, reply_to: Message | None = None) -> Message:
    """Stored as a post stores it (without the flood limit, which these tests are not about)."""
    return Message.objects.create(room=room, author=author, body=text, reply_to=reply_to)


def article(html: str, message: Message) -> str:
    """One message's <article> as the HTML shows it (from its opening tag to its closing one)."""
    found = re.search(rf'<article class="[^"]*" id="message-{message.pk}".*?</article>', html, re.S)
    assert found, f"message {message.pk} is not in {html[:300]!r}"
    return found[0]


def is_continued(html: str, message: Message) -> bool:
    shown = article(html, message)
    continued = 'class="message continued"' in shown
    # A continued message carries neither avatar nor name; a full one both.
    assert continued == ('class="author"' not in shown) == ('class="avatar' not in shown)
    return continued


def room_page(user: Account) -> str:
    return client_for(user).get("/rooms/lobby/").text


def test_a_persons_consecutive_messages_show_their_avatar_and_name_once(
    lobby: Room, alice: Account, bob: Account
) -> None:
    first, second, third = (post(lobby, alice, text) for text in ("Morning!", "Coffee?", "Anyone?"))
    answer = post(lobby, bob, "Yes please")
    again = post(lobby, alice, "Great")

    page = room_page(bob)

    assert [is_continued(page, message) for message in (first, second, third, answer, again)] == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert page.count('<span class="author">alice</span>') == 2


def test_a_reply_a_pause_a_day_break_or_a_tombstone_before_it_shows_a_message_in_full(
    lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    first = post(lobby, alice, "Here's the plan")
    reply = post(lobby, alice, "And to my own point", reply_to=first)
    later = post(lobby, alice, "Back after lunch")
    Message.objects.filter(pk=later.pk).update(created_at=reply.created_at + timedelta(minutes=6))
    removed = post(lobby, alice, "something rude")
    Message.objects.filter(pk=removed.pk).update(created_at=reply.created_at + timedelta(minutes=6))
    moderation.remove_message(moderator, removed)
    after_removed = post(lobby, alice, "sorry")
    Message.objects.filter(pk=after_removed.pk).update(created_at=reply.created_at + timedelta(minutes=6))
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    before_midnight, after_midnight = post(lobby, bob, "late"), post(lobby, bob, "very late")
    Message.objects.filter(pk=before_midnight.pk).update(created_at=midnight - timedelta(minutes=1))
    Message.objects.filter(pk=after_midnight.pk).update(created_at=midnight + timedelta(minutes=1))

    page = room_page(bob)

    assert not is_continued(page, reply)  # its quote needs the name above it
    assert not is_continued(page, later)  # 6 minutes later
    assert "Message removed by a moderator" in article(page, removed)
    assert not is_continued(page, after_removed)  # under a tombstone, not under alice's words
    assert not is_continued(page, after_midnight)  # two minutes apart, but another day


def test_the_first_message_of_an_older_page_shows_in_full(lobby: Room, alice: Account, settings) -> None:
    settings.CHAT_HISTORY_PAGE_SIZE = 3
    messages = [post(lobby, alice, f"note {n}") for n in range(6)]

    page = room_page(alice)
    older = client_for(alice).get(f"/rooms/lobby/messages/?before={messages[3].pk}").text

    # The top of a page can't know the message before it, which is not loaded.
    assert [is_continued(page, message) for message in messages[3:]] == [False, True, True]
    assert [is_continued(older, message) for message in messages[:3]] == [False, True, True]


def test_fifty_messages_in_bursts_make_a_smaller_page(lobby: Room, alice: Account, bob: Account) -> None:
    """Runs of 1 to 4 messages by one person, as people chat: each continued one drops its
    avatar and name, about 160 bytes."""
    runs = [1, 3, 2, 4, 1, 2, 3, 1, 4, 2] * 2 + [1, 2, 1]  # 50 messages, 23 runs
    for run, length in enumerate(runs):
        for n in range(length):
            post(lobby, (alice, bob)[run % 2], f"message {n} of a run, about as long as people write")

    page = room_page(alice)

    assert page.count("message continued") == 50 - len(runs)
    assert page.count('class="author"') == len(runs)


@pytest.mark.django_db(transaction=True)
async def test_a_live_message_is_shown_exactly_as_the_history_shows_it(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    alice_socket = await open_socket(user=alice)
    bob_socket = await open_socket(user=bob)
    await drain(alice_socket)
    await drain(bob_socket)
    live: dict[str, str] = {}
    for author, text in [
        (alice_socket, "Morning!"),
        (alice_socket, "Coffee, anyone?"),
        (bob_socket, "Yes please"),
    ]:
        await author.send_to(text_data=ws_send_frame(text))
        live[text] = await receive_message_frame(bob_socket, text)

    history = await database_sync_to_async(fragments.history_html)(lobby, Role.MEMBER)
    stored = await database_sync_to_async(lambda: list(lobby.messages.order_by("pk")))()

    assert ["continued" in article(live[m.body], m) for m in stored] == [False, True, False]
    for message in stored:
        assert article(live[message.body], message) == article(history, message)


@pytest.mark.django_db(transaction=True)
async def test_removing_a_message_shows_the_next_one_of_its_author_in_full_at_once(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    first = await database_sync_to_async(post)(lobby, alice, "I think you're all wrong")
    second = await database_sync_to_async(post)(lobby, alice, "and here's why")
    reader = await open_socket(user=bob)
    await drain(reader)
    staff = await database_sync_to_async(make_staff)()

    await database_sync_to_async(moderation.remove_message)(staff, first)

    redrawn = await receive_until(reader, f'id="message-{second.pk}"')
    assert not is_continued(redrawn, second)
    assert "and here's why" in redrawn
    history = await database_sync_to_async(fragments.history_html)(lobby, Role.MEMBER)
    assert article(redrawn, second).replace(' hx-swap-oob="true"', "") == article(history, second)


@pytest.mark.django_db(transaction=True)
async def test_a_new_message_after_a_deleted_one_of_its_author_shows_in_full_and_the_next_under_it(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    first = await database_sync_to_async(post)(lobby, alice, "oops, wrong room")
    await database_sync_to_async(services.delete_own_message)(alice, first)
    reader = await open_socket(user=bob)
    await drain(reader)

    shown = []
    for text in ("as I was saying", "it's in the other room"):
        posted = await database_sync_to_async(services.post_message)(lobby, alice, {"message": text})
        assert posted.message is not None
        shown.append(is_continued(await receive_until(reader, NEW_MESSAGE), posted.message))

    assert shown == [False, True]
