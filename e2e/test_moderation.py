"""Moderation as people see it: live in every open browser, no reloads, no script of ours."""

import itertools

import pytest
from playwright.sync_api import WebSocket, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, grant, message_by, open_menu, open_room, send

_rooms = itertools.count(1)


@pytest.fixture
def room(site_env: dict[str, str]) -> str:
    """A room of its own per test, so members of other tests don't show up."""
    slug = f"moderated-{next(_rooms)}"
    create_rooms(site_env, {slug: "Town Square"})
    return slug


def test_moderator_removes_a_message_and_everyone_sees_the_tombstone(server, new_user, site_env, room):
    moderator = new_user(server.url, "mod")
    grant(site_env, moderator.username, moderator_of=room)
    alice = new_user(server.url, "alice")
    bob = new_user(server.url, "bob")
    for page in (moderator, alice, bob):
        open_room(page, server.url, room)

    send(alice, "Buy cheap watches now")
    expect(message_by(moderator, "Buy cheap watches now")).to_be_visible()
    # Members get no moderation controls; the moderator does.
    expect(
        message_by(bob, "Buy cheap watches now").get_by_role("button", name="Remove message")
    ).to_have_count(0)
    open_menu(moderator, "Buy cheap watches now")
    message_by(moderator, "Buy cheap watches now").get_by_placeholder("Reason (optional)").first.fill("spam")
    message_by(moderator, "Buy cheap watches now").get_by_role("button", name="Remove message").click()

    for page in (alice, bob, moderator):
        expect(page.locator("#messages")).to_contain_text("Message removed by a moderator")
        expect(page.locator("#messages")).not_to_contain_text("Buy cheap watches now")
    expect(moderator.locator("#chat-notice")).to_contain_text("Removed a message by")


def test_banned_user_sees_why_and_their_socket_closes(server, new_user, site_env, room):
    moderator = new_user(server.url, "mod")
    grant(site_env, moderator.username, moderator_of=room)
    troll = new_user(server.url, "troll")
    sockets: list[WebSocket] = []
    troll.on("websocket", lambda socket: sockets.append(socket))
    open_room(moderator, server.url, room)
    open_room(troll, server.url, room)
    send(troll, "I will be trouble")

    open_menu(moderator, "I will be trouble")
    message_by(moderator, "I will be trouble").get_by_role("button", name=f"Ban {troll.username}").click()

    expect(troll.locator("#message-form")).to_contain_text("You have been banned from #Town Square.")
    expect(troll.locator("#message-form input[name=message]")).to_have_count(0)
    troll.wait_for_timeout(500)
    assert sockets and sockets[-1].is_closed()
    # Nothing said afterwards reaches them, and a reload shows the ban, not the room.
    send(moderator, "The room is calm again")
    expect(message_by(moderator, "The room is calm again")).to_be_visible()
    expect(troll.locator("#messages")).not_to_contain_text("The room is calm again")
    expect(moderator.locator("#members")).not_to_contain_text(troll.username)
    response = troll.goto(f"{server.url}/rooms/{room}/")
    assert response.status == 403
    expect(troll.locator("body")).to_contain_text("You have been banned from #Town Square.")


def test_locking_hides_the_form_for_members_but_not_the_moderator(server, new_user, site_env, room):
    moderator = new_user(server.url, "mod")
    grant(site_env, moderator.username, moderator_of=room)
    member = new_user(server.url, "member")
    open_room(moderator, server.url, room)
    open_room(member, server.url, room)

    moderator.locator(".moderation summary").click()
    moderator.get_by_role("button", name="Lock room").click()

    expect(member.locator("#message-form")).to_contain_text("This room is locked")
    expect(member.locator("#message-form input[name=message]")).to_have_count(0)
    expect(member.locator("#room-header")).to_contain_text("Locked")
    expect(moderator.locator("#message-form input[name=message]")).to_be_visible()
    send(moderator, "Announcement while locked")
    expect(message_by(member, "Announcement while locked")).to_be_visible()

    moderator.get_by_role("button", name="Unlock room").click()
    expect(member.locator("#message-form input[name=message]")).to_be_visible()
    send(member, "Thanks for unlocking")
    expect(message_by(moderator, "Thanks for unlocking")).to_be_visible()


def test_a_report_lands_in_the_admin_queue_and_is_worked_from_there(server, new_user, site_env, room):
    rude = new_user(server.url, "rude")
    reporter = new_user(server.url, "reporter")
    staff = new_user(server.url, "staff")
    grant(site_env, staff.username, staff=True)
    open_room(rude, server.url, room)
    open_room(reporter, server.url, room)
    send(rude, "You are all idiots")

    open_menu(reporter, "You are all idiots")
    message_by(reporter, "You are all idiots").get_by_text("Report…").click()  # folded at the menu's end
    message_by(reporter, "You are all idiots").get_by_placeholder("What's wrong? (optional)").fill(
        "insulting"
    )
    message_by(reporter, "You are all idiots").get_by_role("button", name="Report message").click()
    expect(reporter.locator("#chat-notice")).to_contain_text("Thanks for reporting it")

    staff.goto(f"{server.url}/admin/chat/report/")
    row = staff.locator("#result_list tr", has_text="You are all idiots")
    expect(row).to_contain_text("insulting")
    expect(row).to_contain_text(reporter.username)
    staff.set_viewport_size({"width": 1400, "height": 800})
    staff.screenshot(path=SCREENSHOTS / "admin-moderation-queue.png", full_page=True)

    row.get_by_role("button", name="Remove message").click()
    expect(staff.locator(".messagelist")).to_contain_text("remove message done")
    expect(reporter.locator("#messages")).to_contain_text("Message removed by a moderator")
    # Gone from the open queue (other tests' reports may still be open in it).
    expect(staff.locator("#result_list tr", has_text="You are all idiots")).to_have_count(0)


def test_a_proposed_room_appears_only_after_approval(server, new_user, site_env):
    proposer = new_user(server.url, "proposer")
    other = new_user(server.url, "other")
    staff = new_user(server.url, "staff")
    grant(site_env, staff.username, staff=True)
    name = f"Book Club {proposer.username}"

    proposer.goto(server.url)
    proposer.get_by_role("link", name="Propose a room").click()
    proposer.fill("#id_name", name)
    proposer.fill("#id_description", "One chapter a week")
    proposer.get_by_role("button", name="Send for approval").click()
    expect(proposer.locator(".proposals")).to_contain_text(name)
    expect(proposer.locator(".proposals")).to_contain_text("Waiting for approval")
    expect(proposer.locator(".room-list")).not_to_contain_text(name)
    SCREENSHOTS.mkdir(exist_ok=True)
    proposer.screenshot(path=SCREENSHOTS / "rooms-with-a-proposal.png")
    other.goto(server.url)
    expect(other.locator(".room-list")).not_to_contain_text(name)

    staff.goto(f"{server.url}/admin/chat/room/?status__exact=pending")
    staff.locator("#result_list tr", has_text=name).locator("input[name=_selected_action]").check()
    staff.select_option("select[name=action]", "approve")
    staff.get_by_role("button", name="Run").click()
    expect(staff.locator(".messagelist")).to_contain_text("Approved 1 room")

    other.reload()
    expect(other.locator(".room-list")).to_contain_text(name)
    proposer.reload()
    expect(proposer.locator(".proposals")).to_contain_text("Approved")
    proposer.locator(".room-list a", has_text=name).click()
    expect(proposer.locator(".moderation summary")).to_have_text("Moderate")


@pytest.mark.parametrize(
    ("device", "scheme"), [("desktop", "light"), ("phone", "light"), ("desktop", "dark")]
)
def test_room_page_as_moderator_and_member_looks_right(server, new_user, site_env, room, device, scheme):
    SCREENSHOTS.mkdir(exist_ok=True)
    viewport = VIEWPORTS[device]
    moderator = new_user(server.url, "mod", viewport=viewport)
    grant(site_env, moderator.username, moderator_of=room)
    member = new_user(server.url, "member", viewport=viewport)
    for page in (moderator, member):
        page.emulate_media(color_scheme=scheme)
    open_room(moderator, server.url, room)
    open_room(member, server.url, room)
    send(member, "Could we get a channel for announcements?")
    send(moderator, "Good idea, I'll set one up.")
    send(member, "This one will be removed")
    expect(message_by(moderator, "This one will be removed")).to_be_visible()
    open_menu(moderator, "This one will be removed")
    message_by(moderator, "This one will be removed").get_by_role("button", name="Remove message").click()
    expect(member.locator("#messages")).to_contain_text("Message removed by a moderator")

    open_menu(moderator, "Could we get a channel")
    moderator.screenshot(path=SCREENSHOTS / f"room-moderator-menu-{device}-{scheme}.png")
    moderator.keyboard.press("Escape")
    moderator.locator(".moderation summary").click()
    expect(moderator.locator("#moderation-tools")).to_be_visible()
    moderator.screenshot(path=SCREENSHOTS / f"room-moderator-panel-{device}-{scheme}.png")

    open_menu(member, "Good idea")
    expect(member.get_by_text("Report…")).to_be_visible()
    member.screenshot(path=SCREENSHOTS / f"room-member-{device}-{scheme}.png")
