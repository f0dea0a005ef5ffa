"""Two people chatting in real Chromium against a real daphne process."""

from playwright.sync_api import expect

from e2e.conftest import create_rooms, open_room, send
from testsupport.servers import manage

ARCHIVE_OF_120_MESSAGES = """
from django.contrib.auth.models import User
from chat.models import Message, Room
room = Room.objects.get(slug="archive")
author, _ = User.objects.get_or_create(username="historian")
if not room.messages.exists():
    Message.objects.bulk_create(
        Message(room=room, author=author, body=f"Old note {n:03}") for n in range(1, 121)
    )
"""


def test_two_users_see_each_others_messages_and_other_rooms_do_not(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    carol = new_user(server.url, "carol")
    open_room(alice, server.url)
    open_room(bob, server.url)
    open_room(carol, server.url, "garden")

    send(alice, "Hello from Alice")
    expect(bob.locator("#messages .message").last).to_contain_text("Hello from Alice")
    expect(alice.locator("#messages .message").last).to_contain_text("Hello from Alice")
    send(bob, "Hi Alice, Bob here")
    expect(alice.locator("#messages .message").last).to_contain_text("Hi Alice, Bob here")

    expect(carol.locator("#messages")).not_to_contain_text("Hello from Alice")
    expect(carol.locator("#messages")).not_to_contain_text("Hi Alice")


def test_input_clears_and_keeps_focus_after_sending(server, new_user):
    alice = new_user(server.url, "alice")
    open_room(alice, server.url)
    send(alice, "Clear me")
    expect(alice.locator("#messages .message").last).to_contain_text("Clear me")
    field = alice.locator("#message-form input[name=message]")
    expect(field).to_have_value("")
    expect(field).to_be_focused()
    alice.keyboard.type("typed straight on")
    expect(field).to_have_value("typed straight on")


def test_history_survives_a_reload(server, new_user):
    alice = new_user(server.url, "alice")
    open_room(alice, server.url)
    send(alice, "Remember me after reload")
    expect(alice.locator("#messages .message").last).to_contain_text("Remember me after reload")
    alice.reload()
    expect(alice.locator("#messages .message").last).to_contain_text("Remember me after reload")
    expect(alice.locator("#messages")).to_contain_text("Remember me after reload")


def test_html_in_a_message_shows_as_text(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    open_room(alice, server.url)
    open_room(bob, server.url)
    send(alice, "<b>bold?</b> <img src=x>")
    last = bob.locator("#messages .message").last
    expect(last.locator(".body")).to_have_text("<b>bold?</b> <img src=x>")
    expect(last.locator("b, img")).to_have_count(0)


def test_member_list_updates_when_someone_leaves(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    open_room(alice, server.url)
    open_room(bob, server.url)
    expect(alice.locator("#members")).to_contain_text(bob.username)
    # A second tab of Bob's lists him once.
    bob_second_tab = bob.context.new_page()
    bob_second_tab.username = bob.username
    open_room(bob_second_tab, server.url)
    expect(alice.locator("#members .member-name", has_text=bob.username)).to_have_count(1)

    bob_second_tab.close()
    bob.close()
    expect(alice.locator("#members")).not_to_contain_text(bob.username)
    expect(alice.locator("#members")).to_contain_text(alice.username)


def test_reconnect_after_server_restart_loses_nothing(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    open_room(alice, server.url)
    open_room(bob, server.url)
    send(alice, "Before the restart")
    expect(bob.locator("#messages")).to_contain_text("Before the restart")

    server.stop()
    # Typed while the server is down: htmx queues it and sends it on reconnect.
    send(alice, "Sent while the server was down", answered=False)
    server.start()

    expect(bob.locator("#messages")).to_contain_text("Sent while the server was down", timeout=20_000)
    expect(alice.locator("#messages")).to_contain_text("Sent while the server was down")
    for page in (alice, bob):
        expect(page.locator("#messages .message", has_text="Before the restart")).to_have_count(1)
        expect(page.locator("#messages .message", has_text="Sent while the server was down")).to_have_count(1)


def test_visitor_reads_live_but_is_asked_to_sign_in(server, new_user, browser):
    alice = new_user(server.url, "alice")
    open_room(alice, server.url)
    visitor = browser.new_context().new_page()
    visitor.goto(f"{server.url}/rooms/lobby/")
    expect(visitor.locator("#members")).to_contain_text("guest")
    expect(visitor.locator("#message-form")).to_contain_text("Sign in to post messages.")
    expect(visitor.locator("#message-form input")).to_have_count(0)

    send(alice, "Visitors can read this live")
    expect(visitor.locator("#messages")).to_contain_text("Visitors can read this live")
    visitor.context.close()


def test_the_browser_runs_only_htmx_and_reports_no_policy_violations(server, new_user):
    alice = new_user(server.url, "alice")
    problems: list[str] = []
    alice.on("console", lambda msg: problems.extend([msg.text] if msg.type == "error" else []))
    alice.on("pageerror", lambda error: problems.append(str(error)))
    open_room(alice, server.url)
    send(alice, "Checking the policy")
    expect(alice.locator("#messages")).to_contain_text("Checking the policy")

    scripts = alice.eval_on_selector_all("script", "nodes => nodes.map(n => [n.src, n.textContent.trim()])")
    assert scripts, "htmx should be loaded"
    for source, body in scripts:
        assert "/static/django_htmx/" in source and body == ""
    assert problems == []


def test_load_older_messages_pages_back_without_gaps_or_duplicates(server, new_user, site_env):
    create_rooms(site_env, {"archive": "Archive"})
    manage(site_env, "shell", "-c", ARCHIVE_OF_120_MESSAGES)
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, "archive")
    bodies = alice.locator("#messages .message .body")
    expect(bodies).to_have_count(50)
    expect(bodies.first).to_have_text("Old note 071")

    alice.click("text=Load older messages")
    expect(bodies).to_have_count(100)
    alice.click("text=Load older messages")
    expect(bodies).to_have_count(120)
    expect(alice.locator("#messages")).to_contain_text("This is the start of #Archive.")
    assert bodies.all_text_contents() == [f"Old note {n:03}" for n in range(1, 121)]


def test_logging_out_in_one_tab_closes_the_room_in_the_other(server, new_user):
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    open_room(alice, server.url)
    open_room(bob, server.url)
    send(alice, "Before signing out")
    expect(bob.locator("#messages")).to_contain_text("Before signing out")
    messages_before = bob.locator("#messages .message").count()
    sockets_opened: list[str] = []
    alice.on("websocket", lambda socket: sockets_opened.append(socket.url))

    other_tab = alice.context.new_page()
    other_tab.goto(f"{server.url}/")
    other_tab.get_by_role("button", name="Log out").click()
    expect(other_tab.locator(".account")).to_contain_text("Log in")

    expect(alice.locator("#chat-notice")).to_have_text("You have signed out. Sign in again to go on.")
    expect(alice.locator("#message-form")).to_have_text("You have signed out. Sign in again to go on.")
    expect(alice.locator("#message-form input[name=message]")).to_have_count(0)
    # Closed for good: the page does not reconnect (and so cannot post) in a loop.
    alice.wait_for_timeout(2_000)
    assert sockets_opened == []
    expect(bob.locator("#messages .message")).to_have_count(messages_before)
