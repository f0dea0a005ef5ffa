"""The member list as a socket joining a room sees it: itself in it at once, not after the next
announcement (sent at most once per CHAT_MEMBERS_BROADCAST_SECONDS)."""

import pytest

from chat.models import Room
from chat.standing import Account
from chat.tests.support import MEMBERS, SocketOpener, member_names, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_joining_member_is_in_the_member_list_it_gets_on_joining(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, settings
) -> None:
    settings.CHAT_MEMBERS_BROADCAST_SECONDS = 30  # the announcement after bob's is half a minute away
    bob_socket = await open_socket(user=bob, settle=False)
    assert member_names(await receive_until(bob_socket, MEMBERS)) == ["bob"]

    alice_socket = await open_socket(user=alice, settle=False)

    listed = await receive_until(alice_socket, MEMBERS, timeout=2)
    assert member_names(listed) == ["alice", "bob"]
    assert '<span class="count">2</span>' in listed


async def test_a_joining_guest_is_counted_in_the_member_list_it_gets_on_joining(
    open_socket: SocketOpener, lobby: Room, bob: Account, settings
) -> None:
    settings.CHAT_MEMBERS_BROADCAST_SECONDS = 30
    bob_socket = await open_socket(user=bob, settle=False)
    await receive_until(bob_socket, MEMBERS)

    guest = await open_socket(settle=False)

    listed = await receive_until(guest, MEMBERS, timeout=2)
    assert member_names(listed) == ["bob"] and "and 1 guest reading" in listed


async def test_a_second_tab_of_someone_listed_changes_nothing(
    open_socket: SocketOpener, lobby: Room, bob: Account, settings
) -> None:
    settings.CHAT_MEMBERS_BROADCAST_SECONDS = 30
    first_tab = await open_socket(user=bob, settle=False)
    await receive_until(first_tab, MEMBERS)

    second_tab = await open_socket(user=bob, settle=False)

    listed = await receive_until(second_tab, MEMBERS, timeout=2)
    assert member_names(listed) == ["bob"] and '<span class="count">1</span>' in listed
