"""A room full of what an older version stored, and a frame over daphne's cap, against a real daphne:
the room opens, its page loads, a moderator cleans it up from the page, and nothing loops on 1011.
"""

import asyncio
import http.client
import json
import uuid

import websockets
from django.utils.html import escape
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat.consumers import TOO_LARGE_TO_SEND
from chat.tests.support import HISTORY, NEW_MESSAGE, NOTICE, TOMBSTONE, ws_send_frame
from testsupport.servers import DaphneServer, manage

DAPHNE_CAP = 1024 * 1024
# Five posts of about 259 KB of stored HTML each (what 248 reference links to one long URL made):
# a 1.3 MB history that autobahn refuses to send, so every socket opening the room got 1011.
LEGACY_ROOM = """
import json
from chat.models import Membership, Message, Role, Room
from chat.standing import Account
from testsupport.sessions import session_key_for
room = Room.objects.create(slug="{slug}", name="{slug}")
spammer = Account.objects.create_user(username="{slug}-s")
mona = Account.objects.create_user(username="{slug}-m")
Membership.objects.create(room=room, user=mona, role=Role.MODERATOR)
url = "https://example.com/" + "a" * 975
body = "[x] " * 248 + f"\\n\\n[x]: {{url}}"
ids = [Message.objects.create(room=room, author=spammer, body=body).pk for _ in range(5)]
Message.objects.filter(pk__in=ids).update(body_html="<p>" + f'<a href="{{url}}">x</a> ' * 248 + "</p>")
print(json.dumps({{"ids": ids, "session": session_key_for(mona)}}))
"""
REMOVED = "from chat.models import Message; print(Message.objects.get(pk={pk}).removed_at is not None)"


def room_with_legacy_messages(env: dict[str, str]) -> tuple[str, list[int], str]:
    """A fresh room with five such messages (written with SQL, as an older version stored them), its
    slug, their ids, and a session of the room's moderator."""
    slug = f"legacy-{uuid.uuid4().hex[:8]}"
    made = json.loads(manage(env, "shell", "-c", LEGACY_ROOM.format(slug=slug)).strip().splitlines()[-1])
    return slug, made["ids"], made["session"]


def get(server: DaphneServer, path: str, session: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    headers = {"Host": "127.0.0.1"} | ({"Cookie": f"sessionid={session}"} if session else {})
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    status, body = response.status, response.read().decode()
    connection.close()
    return status, body


async def first_frames(socket: websockets.ClientConnection, marker: str) -> list[str]:
    """Frames up to the first with `marker`; fails if the server closes the socket first."""
    frames: list[str] = []
    while not frames or marker not in frames[-1]:
        try:
            frames.append(str(await asyncio.wait_for(socket.recv(), 10)))
        except ConnectionClosed:
            raise AssertionError(
                f"closed with {socket.close_code} before {marker!r}; got {frames!r}"
            ) from None
    return frames


async def stays_open(socket: websockets.ClientConnection, seconds: float = 2.5) -> bool:
    """daphne sends the 1011 of a crashed consumer on its next check, once a second."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), seconds)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False


def test_a_room_of_messages_an_older_version_stored_too_large_opens_and_its_moderator_cleans_it_up(
    start_daphne, site_env
) -> None:
    manage(site_env, "collectstatic", "--noinput")  # the page links the hashed CSS
    server = start_daphne()
    slug, ids, moderator = room_with_legacy_messages(site_env)
    url = f"{server.url.replace('http', 'ws')}/ws/rooms/{slug}/"

    async def visit_and_clean_up() -> tuple[str, str]:
        origin = Origin(server.url)
        async with (
            websockets.connect(url, origin=origin, max_size=None) as visitor,
            websockets.connect(
                url, origin=origin, max_size=None, additional_headers={"Cookie": f"sessionid={moderator}"}
            ) as mona,
        ):
            history = (await first_frames(visitor, HISTORY))[-1]
            await first_frames(mona, HISTORY)
            assert await stays_open(visitor), f"closed with {visitor.close_code}"
            await mona.send(ws_send_frame(action="remove", message_id=str(ids[0]), reason="spam", slug=slug))
            removal = (await first_frames(visitor, TOMBSTONE))[-1]
            return history, removal

    history, removal = asyncio.run(visit_and_clean_up())
    status, page = get(server, f"/rooms/{slug}/")
    _, menu = get(server, f"/messages/{ids[1]}/menu/", moderator)

    assert len(history.encode()) < DAPHNE_CAP
    assert all(f'id="message-{pk}"' in history for pk in ids), "every message shows"
    assert status == 200 and len(page.encode()) < 256 * 1024, f"the page took {len(page.encode())} bytes"
    assert all(f'id="message-{pk}"' in page for pk in ids)
    assert "[x] [x] [x]" in page, "as typed"
    assert f'id="message-{ids[0]}"' in removal
    assert "Remove message" in menu, "the moderator's menu on the page offers the next one"
    assert manage(site_env, "shell", "-c", REMOVED.format(pk=ids[0])).split()[-1] == "True"
    server.stop()
    assert "Traceback" not in server.log_path.read_text()


def test_a_frame_over_daphnes_cap_is_one_warning_and_a_notice_and_the_socket_stays_open(
    start_daphne, site_env
) -> None:
    """daphne run with a smaller cap than Parley was told: the history no longer fits. The socket
    is told, stays open and gets what comes next; the log says so once, without a traceback."""
    server = start_daphne("--websocket-max-message-size", "8192")
    slug, _, moderator = room_with_legacy_messages(site_env)  # shown as typed: about 3 KB each
    url = f"{server.url.replace('http', 'ws')}/ws/rooms/{slug}/"

    async def visit() -> tuple[list[str], bool, str]:
        async with (
            websockets.connect(url, origin=Origin(server.url)) as visitor,
            websockets.connect(
                url, origin=Origin(server.url), additional_headers={"Cookie": f"sessionid={moderator}"}
            ) as mona,
        ):
            frames = await first_frames(visitor, escape(TOO_LARGE_TO_SEND))
            still_open = await stays_open(visitor)
            await mona.send(ws_send_frame("still here", slug=slug))
            live = (await first_frames(visitor, NEW_MESSAGE))[-1]
            return frames, still_open, live

    frames, still_open, live = asyncio.run(visit())

    assert still_open and NOTICE in frames[-1]
    assert "still here" in live
    server.stop()
    log = server.log_path.read_text()
    assert log.count("exceeding payload limit of 8192 octets") == 2, log[-3000:]  # both sockets, once each
    assert "Traceback" not in log, log[-3000:]
