"""Two daphne processes sharing one real Redis and one database, as an operator scales out."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from e2e.conftest import grant, open_room, prepare_site, send
from testsupport.servers import DaphneServer, RedisServer


@pytest.fixture
def two_servers(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DaphneServer, DaphneServer]]:
    folder: Path = tmp_path_factory.mktemp("scaled")
    env = prepare_site(folder, REDIS_URL=redis_server.url)
    first = DaphneServer(env, folder / "first.log")
    second = DaphneServer(env, folder / "second.log")
    yield first, second
    first.stop()
    second.stop()


def test_users_on_different_processes_talk_through_redis(two_servers, new_user):
    first, second = two_servers
    alice = new_user(first.url, "alice")
    bob = new_user(second.url, "bob")
    open_room(alice, first.url)
    open_room(bob, second.url)
    # Presence is shared too: each sees the other online.
    expect(alice.locator("#members")).to_contain_text(bob.username)
    expect(bob.locator("#members")).to_contain_text(alice.username)

    send(alice, "Across processes from Alice")
    expect(bob.locator("#messages")).to_contain_text("Across processes from Alice")
    send(bob, "And back from Bob")
    expect(alice.locator("#messages")).to_contain_text("And back from Bob")


def test_a_browser_whose_process_restarts_gets_what_it_missed(two_servers, new_user):
    first, second = two_servers
    alice = new_user(first.url, "alice")
    bob = new_user(second.url, "bob")
    open_room(alice, first.url)
    open_room(bob, second.url)

    second.stop()
    send(alice, "Posted while Bob's server was down")
    expect(alice.locator("#messages")).to_contain_text("Posted while Bob's server was down")
    second.start()

    expect(bob.locator("#messages")).to_contain_text("Posted while Bob's server was down", timeout=20_000)
    expect(bob.locator("#messages .message", has_text="Posted while Bob's server was down")).to_have_count(1)


def test_moderation_on_one_process_shows_on_the_other(two_servers, new_user):
    first, second = two_servers
    moderator = new_user(first.url, "mod")
    grant(first.env, moderator.username, moderator_of="lobby")
    member = new_user(second.url, "member")
    open_room(moderator, first.url)
    open_room(member, second.url)
    send(member, "Remove me across processes")

    message = moderator.locator("#messages .message", has_text="Remove me across processes")
    message.hover()
    message.locator(".message-actions summary").click()
    message.get_by_role("button", name="Remove message").click()

    expect(member.locator("#messages")).not_to_contain_text("Remove me across processes")
    expect(member.locator("#messages")).to_contain_text("Message removed by a moderator")


def test_signing_out_on_one_process_closes_the_socket_open_on_the_other(two_servers, new_user):
    first, second = two_servers
    alice = new_user(first.url, "alice")
    # The session cookie is for 127.0.0.1 whatever the port: the same browser, on the other process.
    open_room(alice, second.url)

    other_tab = alice.context.new_page()
    other_tab.goto(f"{first.url}/")
    other_tab.get_by_role("button", name="Log out").click()

    expect(alice.locator("#chat-notice")).to_have_text("You have signed out. Sign in again to go on.")
    expect(alice.locator("#message-form input[name=message]")).to_have_count(0)


def test_deactivating_in_the_admin_on_one_process_closes_the_socket_open_on_the_other(two_servers, new_user):
    first, second = two_servers
    staff = new_user(first.url, "staff")
    grant(first.env, staff.username, staff=True)
    bob = new_user(second.url, "bob")
    open_room(bob, second.url)

    staff.goto(f"{first.url}/admin/auth/user/?q={bob.username}")
    staff.get_by_role("link", name=bob.username, exact=True).click()
    staff.locator("#id_is_active").uncheck()
    staff.locator("input[name=_save]").click()
    expect(staff.locator(".messagelist")).to_contain_text("was changed successfully")

    expect(bob.locator("#chat-notice")).to_have_text("This account is disabled.")
    expect(bob.locator("#message-form input[name=message]")).to_have_count(0)
