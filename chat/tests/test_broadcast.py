"""Broadcasts: rendered once per event, and carried between sockets by a real Redis channel layer."""

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from chat import fragments
from chat.models import Message, Room
from chat.standing import ACCOUNT_DISABLED, Account
from chat.tests.support import (
    MENU,
    NEW_MESSAGE,
    SESSION_ENDED,
    TYPING,
    TYPING_FRAME,
    ListOpener,
    SocketOpener,
    drain,
    receive_close,
    receive_until,
    typing_text,
    ws_send_frame,
)
from testsupport.servers import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_one_post_is_rendered_once_for_every_socket_in_the_room(
    open_socket: SocketOpener,
    lobby: Room,
    alice: Account,
    bob: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sockets = [
        await open_socket(user=alice),
        await open_socket(user=alice),
        await open_socket(user=bob),
        await open_socket(),
    ]
    for socket in sockets:
        await drain(socket)
    renders: list[str] = []
    real_render = fragments._partial

    def counting_render(template: str, name: str, context: dict) -> str:
        renders.append(name)
        return real_render(template, name, context)

    monkeypatch.setattr(fragments, "_partial", counting_render)

    await sockets[0].send_to(text_data=ws_send_frame("render me once"))

    received = [await receive_until(socket, NEW_MESSAGE) for socket in sockets]
    # One render for every look (signed-in readers' with the menu; visitors' is that without it,
    # see fragments._message_look_html), not one per socket nor per role: members and moderators
    # get the same message.
    assert renders.count("message") == 1
    assert "render me once" in received[0]
    alice_tab_1, alice_tab_2, bob_tab, guest_tab = received
    assert alice_tab_1 == alice_tab_2 == bob_tab
    assert MENU in bob_tab and MENU not in guest_tab


REDIS_LAYERS: dict[str, dict[str, Any]] = {
    "core": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"capacity": 10000, "group_expiry": 86400 * 2},
    },
    "pubsub": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {}},
}


@pytest.fixture(params=sorted(REDIS_LAYERS))
def redis_channel_layer(request: pytest.FixtureRequest, redis_server: RedisServer, settings) -> str:
    """Both channels-redis layers: the pub/sub one (the default) and the core one."""
    layer = REDIS_LAYERS[request.param]
    settings.CHANNEL_LAYERS = {"default": layer | {"CONFIG": layer["CONFIG"] | {"hosts": [redis_server.url]}}}
    channel_layers.backends = {}
    return redis_server.url


async def test_sockets_on_two_server_processes_exchange_messages_through_redis(
    redis_channel_layer: str,
    open_socket: SocketOpener,
    lobby: Room,
    alice: Account,
    bob: Account,
) -> None:
    """Each socket gets its own Redis layer, as two daphne processes would: only Redis joins them."""
    first_process = get_channel_layer()
    sender = await open_socket(user=alice)
    channel_layers.backends = {}
    second_process = get_channel_layer()
    reader = await open_socket(user=bob)
    assert isinstance(first_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert isinstance(second_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert first_process is not second_process
    try:
        assert "bob" in await receive_until(sender, 'member-name">bob')
        await drain(reader)

        await sender.send_to(text_data=ws_send_frame("via redis"))

        received = await receive_until(reader, NEW_MESSAGE)
        stored = await database_sync_to_async(Message.objects.get)()
        assert f'id="message-{stored.pk}"' in received
        assert "via redis" in received
    finally:
        await sender.disconnect()
        await reader.disconnect()
        await first_process.flush()
        await second_process.flush()


async def test_every_part_of_a_post_reaches_the_other_process_whatever_its_sockets_are_through_redis(
    redis_channel_layer: str,
    open_socket: SocketOpener,
    open_list: ListOpener,
    lobby: Room,
    alice: Account,
    bob: Account,
) -> None:
    """A post travels to the other processes as one event (chat.broadcast.BUNDLE); a process with
    only a visitor in the room and only a room list still gets the visitor's look, the typing
    stopped and the unread count, exactly as each came alone before."""
    first_process = get_channel_layer()
    sender = await open_socket(user=alice)
    channel_layers.backends = {}
    second_process = get_channel_layer()
    assert isinstance(first_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert isinstance(second_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert first_process is not second_process
    visitor, bobs_list = await open_socket(), await open_list(bob)
    try:
        await drain(bobs_list)
        await drain(visitor)
        await sender.send_to(text_data=TYPING_FRAME)
        assert typing_text(await receive_until(visitor, TYPING)) == "alice is typing…"

        await sender.send_to(text_data=ws_send_frame("one event"))

        seen = await receive_until(visitor, NEW_MESSAGE)
        assert "one event" in seen and MENU not in seen
        assert typing_text(await receive_until(visitor, TYPING)) == ""
        counted = await receive_until(bobs_list, f'id="unread-{lobby.pk}"')
        assert "(1) Rooms" in counted
    finally:
        await first_process.flush()
        await second_process.flush()


async def test_an_account_change_made_in_another_process_closes_the_users_sockets_through_redis(
    redis_channel_layer: str, open_socket: SocketOpener, lobby: Room, other_room: Room, alice: Account
) -> None:
    """The sockets' process and the one deactivating the user (the admin's, a shell) share only Redis."""
    sockets_process = get_channel_layer()
    sockets = [await open_socket(user=alice), await open_socket(slug=other_room.slug, user=alice)]
    channel_layers.backends = {}
    admins_process = get_channel_layer()
    assert isinstance(sockets_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert isinstance(admins_process, RedisChannelLayer | RedisPubSubChannelLayer)
    assert admins_process is not sockets_process
    try:
        await database_sync_to_async(deactivate)(alice)

        for socket in sockets:
            frames, code = await receive_close(socket)
            assert any(ACCOUNT_DISABLED in frame for frame in frames), frames
            assert code == SESSION_ENDED
    finally:
        await sockets_process.flush()
        await admins_process.flush()


def deactivate(user: Account) -> None:
    stored = Account.objects.get(pk=user.pk)
    stored.is_active = False
    stored.save()
