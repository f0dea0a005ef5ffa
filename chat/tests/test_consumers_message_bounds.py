"""What one message may render to, over real sockets: a post or an edit that would multiply the
text is refused with a sentence, nothing of it is stored, and the room opens for everyone."""

import asyncio
import time

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import (
    FORM,
    HISTORY,
    MEMBERS,
    NEW_MESSAGE,
    NOTICE,
    SocketOpener,
    new_message,
    receive_until,
    settle,
    signed_in_session_in,
    stored_message,
    ws_send_frame,
)
from testsupport.hostile import REFERENCE_BLOWUP
from testsupport.servers import manage

pytestmark = pytest.mark.django_db(transaction=True)

REFUSAL = "A message can use link definitions ([name]: URL) at most 20 times; this one uses them 248 times."
CREATE_ROOM = "from chat.models import Room; Room.objects.create(slug='bounds', name='Bounds')"
SEVERAL_LINKS = "**Agenda**: [notes](https://example.com/notes), www.example.org and `code`"


async def read_until(socket: ClientConnection, marker: str) -> str:
    while marker not in (frame := str(await asyncio.wait_for(socket.recv(), 10))):
        pass
    return frame


def test_the_attackers_posts_are_refused_with_a_sentence_and_the_room_still_opens(start_daphne) -> None:
    """The issue's attack: five 2,000-character posts of 248 reference links, within the flood limit,
    made the history frame 1.3 MB and every socket opening the room closed with 1011."""
    server = start_daphne(CHAT_FLOOD_MESSAGES="6")  # five refused, then one that is not
    manage(server.env, "shell", "-c", CREATE_ROOM)
    session = signed_in_session_in(server.env, "mallory")
    url = server.url.replace("http", "ws") + "/ws/rooms/bounds/"
    origin = Origin(server.url)

    async def attack_then_open() -> tuple[list[str], str, str]:
        cookie = {"Cookie": f"sessionid={session}"}
        async with websockets.connect(url, origin=origin, additional_headers=cookie) as attacker:
            await read_until(attacker, MEMBERS)
            answers = []
            for _ in range(5):
                await attacker.send(ws_send_frame(REFERENCE_BLOWUP, slug="bounds"))
                answers.append(await read_until(attacker, FORM))
            async with websockets.connect(url, origin=origin) as visitor:
                history = await read_until(visitor, HISTORY)
                await read_until(visitor, MEMBERS)
                await attacker.send(ws_send_frame(SEVERAL_LINKS, slug="bounds"))
                shown = await read_until(visitor, NEW_MESSAGE)
        return answers, history, shown

    answers, history, shown = asyncio.run(attack_then_open())

    for form in answers:
        assert REFUSAL in form, form[:3000]
        assert "[x] [x] [x]" in form  # the text stays in the form, to be shortened
    assert '<article class="message' not in history and len(history) < 20_000
    assert "<strong>Agenda</strong>" in shown and shown.count("<a href=") == 2
    time.sleep(0.5)
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "exceeding payload limit" not in log, log[-3000:]


async def test_an_edit_that_would_render_too_big_gets_the_sentence_in_the_notice(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, alice, "see the [docs][d]\n\n[d]: https://example.com/docs")
    author, reader = await open_socket(user=alice), await open_socket(user=bob)
    await settle(author, reader)

    await author.send_to(text_data=ws_send_frame(REFERENCE_BLOWUP, action="edit", message_id=str(message.pk)))

    notice = await receive_until(author, NOTICE)
    assert "at most 20 times; this one uses them 248 times." in notice
    stored: Message = await stored_message(message.pk)
    assert stored.body.startswith("see the [docs][d]") and stored.edited_at is None
    assert await reader.receive_nothing(timeout=0.3)  # nothing changed for the room
