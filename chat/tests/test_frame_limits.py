"""Frames and pages bounded in bytes: however large the messages stored, the room page, its socket's
history, "Load older" and "Load newer" stay under CHAT_HISTORY_MAX_BYTES (and so under daphne's 1 MiB
cap), paging by size; stored HTML too large to show (an older version stored such) is shown as the
text typed; and settings that would let a frame outgrow the transport are refused at start.

Through the full ASGI stack here; against a real daphne in test_frame_limits_daphne.py.
"""

import os
import re
import subprocess
import sys

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from chat import broadcast
from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import HISTORY, SocketOpener, client_for, message_ids, receive_until
from testsupport.servers import REPO

pytestmark = pytest.mark.django_db(transaction=True)

# Large but allowed: each under the HTML a message may show; a page of 50 (1.2 MB) would not go
# through daphne (1 MiB).
BIG_HTML = "<p>" + "lorem ipsum " * 2000 + "</p>"  # about 24 KB
COUNT = 60
DAPHNE_CAP = 1024 * 1024


def big_messages(room: Room, author: Account) -> list[int]:
    """COUNT messages stored with about 20 KB of HTML each (bulk_create keeps the HTML given)."""
    Message.objects.bulk_create(
        Message(room=room, author=author, body=f"big {n}", body_html=f"<p>big {n}</p>{BIG_HTML}")
        for n in range(COUNT)
    )
    broadcast.bump(room)
    return list(room.messages.order_by("pk").values_list("pk", flat=True))


def size(html: str) -> int:
    return len(html.encode())


def frame_limit() -> int:
    """The largest frame the settings allow: a history and its header."""
    return settings.CHAT_HISTORY_MAX_BYTES + settings.CHAT_FRAME_CHROME_BYTES


def link(html: str, kind: str) -> str:
    """The address of the 'Load older' or 'Load newer' button, or "" when there is none."""
    match = re.search(rf'class="load-{kind}" hx-get="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else ""


def page_back(client: Client, html: str) -> list[int]:
    """Press 'Load older' until the start of the room: the ids shown, oldest first, each page in bounds."""
    shown = message_ids(html)
    while older := link(html, "older"):
        html = client.get(older).text
        assert size(html) <= settings.CHAT_HISTORY_MAX_BYTES, f"{older}: {size(html)} bytes"
        shown = message_ids(html) + shown
    return shown


async def test_the_history_on_connect_and_the_page_are_paged_by_size_and_load_older_finds_every_message(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    ids = await database_sync_to_async(big_messages)(lobby, alice)

    socket = await open_socket(settle=False)
    frame = await receive_until(socket, HISTORY)
    client = await database_sync_to_async(client_for)(alice)
    page = (await database_sync_to_async(client.get)("/rooms/lobby/")).text

    assert size(frame) < DAPHNE_CAP, f"the history frame took {size(frame)} bytes"
    assert size(frame) <= frame_limit()
    assert size(page) <= settings.CHAT_HISTORY_MAX_BYTES + 64 * 1024, f"the page took {size(page)} bytes"
    shown = message_ids(frame)
    assert shown == message_ids(page) and shown == ids[-len(shown) :], "the newest messages, in order"
    assert 1 < len(shown) < COUNT
    assert link(frame, "older") == f"/rooms/lobby/messages/?before={shown[0]}"
    assert await database_sync_to_async(page_back)(client, page) == ids, "every message once, in order"


def test_a_permalink_and_load_newer_are_paged_by_size_around_the_message(lobby: Room, alice: Account) -> None:
    ids = big_messages(lobby, alice)
    target = ids[COUNT // 2]
    client = client_for(alice)

    page = client.get(f"/rooms/lobby/messages/{target}/").text

    shown = message_ids(page)
    assert target in shown and 1 < len(shown) < COUNT
    assert size(page) < DAPHNE_CAP, f"the page took {size(page)} bytes"
    assert size(page) <= settings.CHAT_HISTORY_MAX_BYTES + 64 * 1024
    html, later_ids = page, []
    while newer := link(html, "newer"):
        html = client.get(newer).text
        assert size(html) <= settings.CHAT_HISTORY_MAX_BYTES, f"{newer}: {size(html)} bytes"
        later_ids += message_ids(html)
    assert page_back(client, page) + later_ids == ids, "every message once, in order"


LEGACY_BODY = 'see <b>this</b> & "that"\nsecond line'


def store_as_an_older_version_did(room: Room, author: Account) -> Message:
    """A message whose stored HTML is 340 KB, as an older version could store (written with SQL)."""
    Message.objects.create(room=room, author=author, body="before")
    legacy = Message.objects.create(room=room, author=author, body=LEGACY_BODY)
    Message.objects.filter(pk=legacy.pk).update(body_html="<p>" + "<a href='x'>x</a>" * 20_000 + "</p>")
    broadcast.bump(room)
    return legacy


async def test_stored_html_too_large_to_show_is_shown_as_typed_on_the_page_and_the_socket_alike(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    legacy = await database_sync_to_async(store_as_an_older_version_did)(lobby, alice)

    page = (await database_sync_to_async(client_for(None).get)("/rooms/lobby/")).text
    frame = await receive_until(await open_socket(settle=False), HISTORY)

    for html in (page, frame):
        assert size(html) < 64 * 1024
        assert message_ids(html)[-2:] == [legacy.pk - 1, legacy.pk], "both messages show"
        assert "see &lt;b&gt;this&lt;/b&gt; &amp; &quot;that&quot;<br>second line" in html
        assert "Shown as typed: its formatting was too large to show." in html
        assert "<a href='x'>" not in html


def settings_refusal(**env: str) -> str:
    """What importing the settings with this environment says on stderr ("" when accepted)."""
    result = subprocess.run(
        [sys.executable, "-c", "import site_config.settings"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stderr.strip().splitlines()[-1] if result.returncode else ""


def test_settings_that_would_let_a_frame_outgrow_daphnes_cap_or_the_send_buffer_are_refused() -> None:
    assert settings_refusal() == ""
    over_the_cap = settings_refusal(CHAT_HISTORY_MAX_BYTES=str(1024 * 1024))
    assert "CHAT_HISTORY_MAX_BYTES" in over_the_cap and "--websocket-max-message-size" in over_the_cap
    under_a_frame = settings_refusal(CHAT_SOCKET_SEND_BUFFER_BYTES=str(64 * 1024))
    assert "CHAT_SOCKET_SEND_BUFFER_BYTES (65536) must hold the largest frame" in under_a_frame
    assert settings_refusal(CHAT_SOCKET_SEND_BUFFER_BYTES="65536", CHAT_HISTORY_MAX_BYTES="32768") == ""
    smaller_cap = settings_refusal(CHAT_WEBSOCKET_MAX_MESSAGE_BYTES=str(128 * 1024))
    assert "CHAT_WEBSOCKET_MAX_MESSAGE_BYTES (131072" in smaller_cap
