"""Any frame, whatever its shape, gets an answer and leaves the socket open (property test)."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.models import Room
from chat.payloads import UNREADABLE
from chat.standing import Account
from chat.tests.support import FRAMES, HISTORY, HOST, ORIGIN, receive_until, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

Frame = tuple[str | None, bytes | None]


async def exchange(cookie: bytes, frames: list[Frame]) -> None:
    """Send the frames over a fresh socket, then one unreadable frame that must still be answered:
    replies come in order, so that answer means every frame before it was handled without a close."""
    from site_config.asgi import application

    headers = [(b"origin", ORIGIN), (b"host", HOST), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await receive_until(socket, HISTORY)
    for text, data in frames:
        # As daphne hands them over (send_to refuses empty frames, which a client may send).
        content = {"text": text} if text is not None else {"bytes": data}
        await socket.send_input({"type": "websocket.receive", **content})
    # receive_until fails on a close and re-raises whatever crashed the consumer.
    await receive_until(socket, UNREADABLE, timeout=10)
    await socket.disconnect()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_a_moderators_socket_answers_every_frame_and_stays_open(
    frames: list[Frame], lobby: Room, moderator: Account
) -> None:
    """A moderator reaches every action's form; a visitor only the refusals."""
    async_to_sync(exchange)(session_cookie(moderator), [*frames, ("not json", None)])
