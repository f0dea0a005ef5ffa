"""Presence and fan-out at room scale: work per join, per heartbeat and per broadcast stays flat.

Counted in renders, queries, rows and layer subscriptions, never in seconds of wall time.
"""

import asyncio
import re
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import broadcast, fragments, queries, services
from chat.hub import hub
from chat.models import Presence, Role, Room, ServerProcess
from chat.standing import Account
from chat.tests.support import (
    HISTORY,
    MEMBERS,
    NEW_MESSAGE,
    SocketOpener,
    present,
    receive_until,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_member_list(settings) -> None:
    """Sockets here settle on their member list; the tests that count intervals set their own."""
    settings.CHAT_MEMBERS_BROADCAST_SECONDS = 0.05


def online_count(html: str) -> int:
    match = re.search(r'<span class="count">(\d+)</span>', html)
    assert match, html
    return int(match.group(1))


async def test_many_joins_render_the_member_list_at_most_once_per_interval_and_end_right(
    open_socket: SocketOpener, lobby: Room, alice: Account, monkeypatch, settings
) -> None:
    settings.CHAT_MEMBERS_BROADCAST_SECONDS = 0.5
    renders: list[int] = []
    real_render = broadcast.members_event

    def counting_render(room: Room) -> list[tuple[str, dict]]:
        renders.append(room.pk)
        return real_render(room)

    monkeypatch.setattr(broadcast, "members_event", counting_render)
    loop = asyncio.get_running_loop()
    started = loop.time()

    first = await open_socket(user=alice, settle=False)
    for _ in range(29):
        await open_socket(settle=False)
    while online_count(await receive_until(first, MEMBERS)) != 30:
        pass

    intervals = (loop.time() - started) / settings.CHAT_MEMBERS_BROADCAST_SECONDS
    assert len(renders) <= intervals + 1, f"{len(renders)} renders in {intervals:.1f} intervals"
    members = await database_sync_to_async(queries.online_members)(lobby)
    assert members.usernames == ["alice"] and members.guests == 29


async def test_one_layer_subscription_per_group_and_process_however_many_sockets(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    sockets = [await open_socket(user=alice), await open_socket(user=bob)]
    sockets += [await open_socket() for _ in range(5)]

    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert len(layer.groups[lobby.group_name]) == 1
    await sockets[0].send_to(text_data=ws_send_frame("to all seven"))
    for socket in sockets:
        assert "to all seven" in await receive_until(socket, NEW_MESSAGE)


async def test_history_is_rendered_once_for_many_connects_and_again_after_a_post(
    open_socket: SocketOpener, lobby: Room, alice: Account, monkeypatch
) -> None:
    renders: list[Role] = []
    real_render = fragments.reconnect_html

    def counting_render(room: Room, role: Role) -> str:
        renders.append(role)
        return real_render(room, role)

    monkeypatch.setattr(fragments, "reconnect_html", counting_render)
    sender = await open_socket(user=alice)
    for _ in range(10):
        await open_socket()
    assert sorted(renders) == ["member", "visitor"]

    await sender.send_to(text_data=ws_send_frame("new since the cache"))
    await receive_until(sender, NEW_MESSAGE)
    late = await open_socket(settle=False)

    assert "new since the cache" in await receive_until(late, HISTORY)


def beat_queries(monkeypatch) -> list[str]:
    """The SQL of every heartbeat from now on, captured in the thread that runs it."""
    captured: list[str] = []
    real_beat = services.beat

    def counting_beat(process_id: int) -> bool:
        with CaptureQueriesContext(connection) as context:
            alive = real_beat(process_id)
        captured.extend(query["sql"] for query in context.captured_queries)
        return alive

    monkeypatch.setattr(services, "beat", counting_beat)
    return captured


async def test_the_heartbeat_writes_once_per_process_not_per_socket(
    open_socket: SocketOpener, lobby: Room, alice: Account, monkeypatch
) -> None:
    for _ in range(8):
        await open_socket()
    await open_socket(user=alice)
    captured = beat_queries(monkeypatch)

    await hub().beat()

    writes = [sql for sql in captured if not sql.lstrip().upper().startswith("SELECT")]
    assert [sql for sql in writes if "chat_presence" in sql] == []
    assert len([sql for sql in writes if sql.startswith("UPDATE") and "chat_serverprocess" in sql]) == 1
    assert await database_sync_to_async(Presence.objects.count)() == 9
    assert await database_sync_to_async(ServerProcess.objects.count)() == 1


def test_a_crashed_process_stops_counting_and_is_reaped_by_a_live_one(
    lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    alive = present(lobby, alice, "alive-tab")
    crashed = present(lobby, bob, "crashed-tab", age_seconds=91)
    present(lobby, None, "crashed-guest", age_seconds=91)

    assert queries.online_members(lobby).usernames == ["alice"]
    assert queries.online_members(lobby).guests == 0

    assert services.beat(alive.process_id)
    assert services.reap_stale_processes() == [lobby]

    assert not ServerProcess.objects.filter(pk=crashed.process_id).exists()
    assert list(Presence.objects.values_list("socket_id", flat=True)) == ["alive-tab"]


async def test_a_process_taken_for_dead_lists_its_sockets_again_on_its_next_beat(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    await open_socket(user=alice)
    await open_socket()
    await database_sync_to_async(ServerProcess.objects.all().delete)()
    assert (await database_sync_to_async(queries.online_members)(lobby)).total == 0

    await hub().beat()

    members = await database_sync_to_async(queries.online_members)(lobby)
    assert members.usernames == ["alice"] and members.guests == 1


def test_a_big_room_lists_the_first_names_and_counts_the_rest(
    lobby: Room, django_user_model, settings
) -> None:
    settings.CHAT_MEMBER_NAMES_SHOWN = 3
    for name in ["erin", "dave", "carol", "bob", "alice"]:
        present(lobby, django_user_model.objects.create_user(username=name), f"{name}-tab")
    present(lobby, None, "guest-tab")

    html = fragments.members_html(lobby)

    assert re.findall(r'<span class="member-name">([^<]*)</span>', html) == ["alice", "bob", "carol"]
    assert "and 2 more" in html and "and 1 guest reading" in html
    assert online_count(html) == 6


async def test_a_live_process_takes_a_crashed_ones_sockets_off_the_open_member_lists(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    watcher = await open_socket(user=alice)
    await database_sync_to_async(present)(lobby, bob, "crashed-tab", age_seconds=91)

    await hub().beat()

    members = await receive_until(watcher, MEMBERS)
    assert online_count(members) == 1 and "bob" not in members
    assert not await database_sync_to_async(Presence.objects.filter(socket_id="crashed-tab").exists)()


async def test_a_socket_that_joins_while_presence_is_being_written_is_written_next(
    lobby: Room, monkeypatch
) -> None:
    real_record = services.record_presence

    def slow_record(*args, **kwargs) -> None:
        time.sleep(0.3)
        real_record(*args, **kwargs)

    monkeypatch.setattr(services, "record_presence", slow_record)
    local_hub = hub()
    local_hub.process_id = await database_sync_to_async(services.register_process)()
    local_hub.arrived(services.SocketPresence(lobby, AnonymousUser(), "first"))
    await asyncio.sleep(0.15)  # the first socket's row is being written now
    local_hub.arrived(services.SocketPresence(lobby, AnonymousUser(), "second"))
    await asyncio.sleep(1.0)

    rows = await database_sync_to_async(
        lambda: sorted(Presence.objects.values_list("socket_id", flat=True))
    )()
    assert rows == ["first", "second"]
