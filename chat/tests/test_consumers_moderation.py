"""Moderation shown live: real websockets through site_config.asgi.application.

Actions are sent as htmx's ws extension sends the page's forms, or called from sync code
as the admin calls them; either way every open socket sees the outcome at once.
"""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat import moderation
from chat.models import AuditEntry, Ban, Report, Role, Room
from chat.standing import Account
from chat.tests.support import (
    FORM,
    HEADER,
    HISTORY,
    MENU,
    NOTICE,
    REMOVED_FROM_ROOM,
    TOMBSTONE,
    SocketOpener,
    client_for,
    drain,
    make_member,
    make_moderator,
    menu_of,
    message_id,
    new_message,
    pending_room,
    receive_close,
    receive_message_frame,
    receive_until,
    settle,
    snapshot,
    stored_bodies,
    stored_message,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE_INPUT = 'name="message"'


# Removing messages ----------------------------------------------------------------------------


async def test_moderator_removes_a_message_and_every_other_socket_gets_the_tombstone(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
) -> None:
    message = await new_message(lobby, bob, "buy cheap watches")
    mod_socket, member, visitor = (
        await open_socket(user=moderator),
        await open_socket(user=alice),
        await open_socket(),
    )
    await settle(mod_socket, member, visitor)

    await mod_socket.send_to(
        text_data=ws_send_frame(action="remove", message_id=str(message.pk), reason="spam")
    )

    assert "Removed a message by bob." in await receive_until(mod_socket, NOTICE)
    for socket in (member, visitor):
        frame = await receive_until(socket, f'id="message-{message.pk}"')
        assert TOMBSTONE in frame and 'hx-swap-oob="true"' in frame
        assert "buy cheap watches" not in frame
    stored = await stored_message(message.pk)
    assert stored.removed_at is not None and stored.body == "buy cheap watches"


async def test_member_cannot_remove_and_nobody_else_hears_of_it(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
) -> None:
    message = await new_message(lobby, bob, "buy cheap watches")
    member, mod_socket, visitor = (
        await open_socket(user=alice),
        await open_socket(user=moderator),
        await open_socket(),
    )
    await settle(member, mod_socket, visitor)

    await member.send_to(
        text_data=ws_send_frame(action="remove", message_id=str(message.pk), reason="I don't like it")
    )

    assert "Only this room&#x27;s moderators can do that." in await receive_until(member, NOTICE)
    assert await mod_socket.receive_nothing(timeout=0.3)
    assert await visitor.receive_nothing(timeout=0.1)
    assert (await stored_message(message.pk)).removed_at is None


async def test_reporting_a_message_twice_says_it_is_already_reported_and_stores_one(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, bob, "you are all idiots")
    member = await open_socket(user=alice)
    frame = ws_send_frame(action="report", message_id=str(message.pk), reason="rude")
    await member.send_to(text_data=frame)
    assert "Thanks for reporting it." in await receive_until(member, NOTICE)

    await member.send_to(text_data=frame)

    notice = await receive_until(member, NOTICE)
    assert "You have already reported this message; a moderator will take a look." in notice
    assert "error" not in notice
    counts = await database_sync_to_async(lambda: (Report.objects.count(), AuditEntry.objects.count()))()
    assert counts == (1, 1)


async def test_reporting_too_fast_is_refused_with_a_notice(
    open_socket: SocketOpener, settings, lobby: Room, alice: Account, bob: Account
) -> None:
    settings.CHAT_REPORTS_PER_USER = 1
    first, second = await new_message(lobby, bob, "one"), await new_message(lobby, bob, "two")
    member = await open_socket(user=alice)
    await member.send_to(text_data=ws_send_frame(action="report", message_id=str(first.pk)))
    await receive_until(member, NOTICE)

    await member.send_to(text_data=ws_send_frame(action="report", message_id=str(second.pk)))

    notice = await receive_until(member, NOTICE)
    assert "You have sent a lot of reports just now: you can report again in 10 minutes." in notice
    assert await database_sync_to_async(Report.objects.count)() == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "lock"},
        {"action": "settings", "description": "mine now", "slow_mode_seconds": "300", "is_public": "on"},
        {"action": "mute", "user_id": "BOB", "minutes": "10", "reason": ""},
        {"action": "ban", "user_id": "BOB", "reason": ""},
        {"action": "invite", "username": "carol"},
    ],
    ids=["lock", "settings", "mute", "ban", "invite"],
)
async def test_members_moderation_actions_are_refused_and_change_nothing(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
    carol: Account,
    fields: dict,
) -> None:
    fields = {name: str(bob.pk) if value == "BOB" else value for name, value in fields.items()}
    member, target, mod_socket = (
        await open_socket(user=alice),
        await open_socket(user=bob),
        await open_socket(user=moderator),
    )
    await settle(member, target, mod_socket)
    before = await database_sync_to_async(snapshot)()

    await member.send_to(text_data=ws_send_frame(**fields))

    assert "Only this room&#x27;s moderators can do that." in await receive_until(member, NOTICE)
    assert await target.receive_nothing(timeout=0.3)
    assert await mod_socket.receive_nothing(timeout=0.1)
    assert await database_sync_to_async(snapshot)() == before


async def test_a_message_from_another_room_cannot_be_removed_from_here(
    open_socket: SocketOpener,
    lobby: Room,
    other_room: Room,
    moderator: Account,
    bob: Account,
) -> None:
    elsewhere = await new_message(other_room, bob, "kitchen talk")
    mod_socket = await open_socket(user=moderator)

    await mod_socket.send_to(text_data=ws_send_frame(action="remove", message_id=str(elsewhere.pk)))

    assert "That message is not in this room." in await receive_until(mod_socket, NOTICE)
    assert (await stored_message(elsewhere.pk)).removed_at is None


async def test_new_messages_carry_controls_for_the_readers_role(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    staff: Account,
    alice: Account,
    bob: Account,
) -> None:
    writer, mod_socket, staff_socket, member, visitor = (
        await open_socket(user=alice),
        await open_socket(user=moderator),
        await open_socket(user=staff),
        await open_socket(user=bob),
        await open_socket(),
    )
    await settle(writer, mod_socket, staff_socket, member, visitor)

    await writer.send_to(text_data=ws_send_frame("hello all"))

    as_moderator = await receive_message_frame(mod_socket, "hello all")
    as_staff = await receive_message_frame(staff_socket, "hello all")
    as_member = await receive_message_frame(member, "hello all")
    as_visitor = await receive_message_frame(visitor, "hello all")
    assert as_staff == as_moderator
    assert MENU in as_moderator and MENU in as_member and MENU not in as_visitor
    hello = message_id(as_member, "hello all")
    as_moderator_menu = await database_sync_to_async(menu_of)(moderator, hello)
    assert "Remove message" in as_moderator_menu and "Ban alice" in as_moderator_menu
    as_member_menu = await database_sync_to_async(menu_of)(bob, hello)
    assert "Remove message" not in as_member_menu and "Report message" in as_member_menu
    assert "Remove message" not in as_visitor and "Report message" not in as_visitor


# Banning --------------------------------------------------------------------------------------


async def test_ban_closes_every_socket_of_the_banned_user_and_keeps_them_out(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
) -> None:
    await new_message(lobby, bob, "buy cheap watches")
    mod_socket, bystander = await open_socket(user=moderator), await open_socket(user=alice)
    banned_tabs = [await open_socket(user=bob), await open_socket(user=bob)]
    await settle(mod_socket, bystander, *banned_tabs)

    await mod_socket.send_to(text_data=ws_send_frame(action="ban", user_id=str(bob.pk), reason="spam"))

    assert "bob is banned from this room." in await receive_until(mod_socket, NOTICE)
    for tab in banned_tabs:
        frames, code = await receive_close(tab)
        assert any("You have been banned from #Lobby." in frame for frame in frames), frames
        assert code == REMOVED_FROM_ROOM
    panel = await receive_until(mod_socket, 'id="moderation-tools"')
    assert "bob" in panel and "Unban" in panel
    await open_socket(user=bob, refused=True)
    await mod_socket.send_to(text_data=ws_send_frame("carry on"))
    await receive_message_frame(bystander, "carry on")


async def test_unbanned_user_can_connect_again(
    open_socket: SocketOpener, lobby: Room, moderator: Account, bob: Account
) -> None:
    await database_sync_to_async(moderation.ban)(moderator, lobby, bob)
    await open_socket(user=bob, refused=True)
    mod_socket = await open_socket(user=moderator)

    await mod_socket.send_to(text_data=ws_send_frame(action="unban", user_id=str(bob.pk)))

    assert "bob is no longer banned." in await receive_until(mod_socket, NOTICE)
    await open_socket(user=bob)


async def test_moderator_cannot_ban_another_moderator(
    open_socket: SocketOpener, lobby: Room, moderator: Account
) -> None:
    co_moderator = await database_sync_to_async(make_moderator)(lobby, "mia")
    mod_socket, other_mod = await open_socket(user=moderator), await open_socket(user=co_moderator)
    await settle(mod_socket, other_mod)

    await mod_socket.send_to(text_data=ws_send_frame(action="ban", user_id=str(co_moderator.pk)))

    assert "mia is a moderator here" in await receive_until(mod_socket, NOTICE)
    assert await other_mod.receive_nothing(timeout=0.3)
    assert not await database_sync_to_async(Ban.objects.exists)()


# Muting ---------------------------------------------------------------------------------------


async def test_mute_closes_the_form_of_the_muted_user_and_refuses_their_posts(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
) -> None:
    await new_message(lobby, bob, "you are all idiots")
    mod_socket, muted, bystander = (
        await open_socket(user=moderator),
        await open_socket(user=bob),
        await open_socket(user=alice),
    )
    await settle(mod_socket, muted, bystander)

    await mod_socket.send_to(
        text_data=ws_send_frame(action="mute", user_id=str(bob.pk), minutes="10", reason="")
    )

    assert "bob is muted until" in await receive_until(mod_socket, NOTICE)
    form = await receive_until(muted, FORM)
    assert "muted in this room until" in form and MESSAGE_INPUT not in form
    await drain(bystander)
    await muted.send_to(text_data=ws_send_frame("let me talk"))
    assert "muted" in await receive_until(muted, FORM)
    assert await bystander.receive_nothing(timeout=0.3)
    assert await stored_bodies() == ["you are all idiots"]


async def test_unmute_gives_the_form_back_and_posts_go_through(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    bob: Account,
) -> None:
    await database_sync_to_async(moderation.mute)(moderator, lobby, bob, 10)
    mod_socket, muted = await open_socket(user=moderator), await open_socket(user=bob)
    await settle(mod_socket, muted)

    await mod_socket.send_to(text_data=ws_send_frame(action="unmute", user_id=str(bob.pk)))

    assert "bob can post again." in await receive_until(mod_socket, NOTICE)
    form = await receive_until(muted, FORM)
    assert MESSAGE_INPUT in form and "muted" not in form
    await muted.send_to(text_data=ws_send_frame("thanks"))
    await receive_message_frame(mod_socket, "thanks")
    assert await stored_bodies() == ["thanks"]


async def test_the_form_comes_back_by_itself_when_a_mute_runs_out(
    open_socket: SocketOpener, lobby: Room, moderator: Account, bob: Account
) -> None:
    muted = await open_socket(user=bob)
    await settle(muted)
    ends = timezone.now() + timedelta(seconds=1)
    await database_sync_to_async(moderation.mute_until)(moderator, lobby, bob, ends)

    assert "muted" in await receive_until(muted, FORM)
    form = await receive_until(muted, FORM, timeout=4)

    assert MESSAGE_INPUT in form and "muted" not in form


# Locking and room settings --------------------------------------------------------------------


async def test_lock_closes_members_forms_and_leaves_moderators_theirs(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
) -> None:
    mod_socket, member = await open_socket(user=moderator), await open_socket(user=alice)
    await settle(mod_socket, member)

    await mod_socket.send_to(text_data=ws_send_frame(action="lock"))

    member_form = await receive_until(member, FORM)
    assert "This room is locked" in member_form and MESSAGE_INPUT not in member_form
    moderator_form = await receive_until(mod_socket, FORM)
    assert MESSAGE_INPUT in moderator_form and "This room is locked" not in moderator_form
    assert "you can post as a moderator" in moderator_form
    await drain(member)
    await drain(mod_socket)

    await member.send_to(text_data=ws_send_frame("can I still talk?"))
    assert "This room is locked" in await receive_until(member, FORM)
    assert await mod_socket.receive_nothing(timeout=0.3)
    await mod_socket.send_to(text_data=ws_send_frame("quiet please"))
    await receive_message_frame(member, "quiet please")
    assert await stored_bodies() == ["quiet please"]


async def test_unlock_gives_members_their_form_back(
    open_socket: SocketOpener, lobby: Room, moderator: Account, alice: Account
) -> None:
    await database_sync_to_async(moderation.update_room)(moderator, lobby, is_locked=True)
    mod_socket, member = await open_socket(user=moderator), await open_socket(user=alice)
    await settle(mod_socket, member)

    await mod_socket.send_to(text_data=ws_send_frame(action="unlock"))

    form = await receive_until(member, FORM)
    assert MESSAGE_INPUT in form and "locked" not in form


async def test_slow_mode_from_the_settings_form_holds_members_back_but_not_moderators(
    open_socket: SocketOpener, lobby: Room, moderator: Account, alice: Account
) -> None:
    mod_socket, member = await open_socket(user=moderator), await open_socket(user=alice)
    await settle(mod_socket, member)

    await mod_socket.send_to(
        text_data=ws_send_frame(action="settings", description="", slow_mode_seconds="30", is_public="on")
    )

    assert "Room settings saved." in await receive_until(mod_socket, NOTICE)
    assert "Slow mode: one message every 30 seconds." in await receive_until(member, FORM)
    await member.send_to(text_data=ws_send_frame("first"))
    await receive_message_frame(member, "first")
    await member.send_to(text_data=ws_send_frame("second"))
    assert "Slow mode is on: you can post again in" in await receive_until(member, FORM)
    for text in ("mod one", "mod two"):
        await mod_socket.send_to(text_data=ws_send_frame(text))
        await receive_message_frame(member, text)
    assert await stored_bodies() == ["first", "mod one", "mod two"]


async def test_making_the_room_private_closes_outsiders_sockets_and_keeps_members(
    open_socket: SocketOpener,
    lobby: Room,
    moderator: Account,
    alice: Account,
    bob: Account,
) -> None:
    await database_sync_to_async(make_member)(lobby, bob)
    mod_socket, member, outsider, visitor = (
        await open_socket(user=moderator),
        await open_socket(user=bob),
        await open_socket(user=alice),
        await open_socket(),
    )
    await settle(mod_socket, member, outsider, visitor)

    # The settings form with "Public" unchecked: htmx leaves the checkbox out.
    await mod_socket.send_to(
        text_data=ws_send_frame(action="settings", description="", slow_mode_seconds="0")
    )

    for socket in (visitor, outsider):
        frames, code = await receive_close(socket)
        assert any("This room is private." in frame for frame in frames), frames
        assert code == REMOVED_FROM_ROOM
    assert "Private" in await receive_until(member, HEADER)
    await mod_socket.send_to(text_data=ws_send_frame("members only now"))
    await receive_message_frame(member, "members only now")
    await open_socket(refused=True)
    await open_socket(user=alice, refused=True)


async def test_invite_lets_a_user_into_a_private_room(
    open_socket: SocketOpener, db: None, carol: Account
) -> None:
    secret = await database_sync_to_async(Room.objects.create)(slug="secret", name="Secret", is_public=False)
    owner = await database_sync_to_async(make_moderator)(secret)
    await open_socket(slug="secret", user=carol, refused=True)
    mod_socket = await open_socket(slug="secret", user=owner)

    await mod_socket.send_to(text_data=ws_send_frame(action="invite", username="carol", slug="secret"))

    assert "carol is a member of this room now." in await receive_until(mod_socket, NOTICE)
    await open_socket(slug="secret", user=carol)


async def test_inviting_someone_who_does_not_exist_says_so(
    open_socket: SocketOpener, lobby: Room, moderator: Account
) -> None:
    mod_socket = await open_socket(user=moderator)

    await mod_socket.send_to(text_data=ws_send_frame(action="invite", username="zed"))

    assert "There is no user called zed." in await receive_until(mod_socket, NOTICE)


async def test_pending_room_socket_opens_for_its_proposer_only(
    open_socket: SocketOpener, db: None, alice: Account, carol: Account
) -> None:
    await database_sync_to_async(pending_room)(carol)

    await open_socket(slug="garden", refused=True)
    await open_socket(slug="garden", user=alice, refused=True)
    await open_socket(slug="garden", user=carol)


async def test_a_proposer_moderates_only_once_staff_approve_the_room(
    open_socket: SocketOpener, db: None, staff: Account, carol: Account
) -> None:
    garden = await database_sync_to_async(pending_room)(carol)
    proposer = await open_socket(slug="garden", user=carol)
    await proposer.send_to(text_data=ws_send_frame("first words"))
    await receive_message_frame(proposer, "first words")
    before = await database_sync_to_async(snapshot)()

    await proposer.send_to(text_data=ws_send_frame(action="lock"))

    assert "Only this room&#x27;s moderators can do that." in await receive_until(proposer, NOTICE)
    assert await database_sync_to_async(snapshot)() == before

    await database_sync_to_async(moderation.review_room)(staff, garden, approve=True)

    history = await receive_until(proposer, HISTORY)
    assert "first words" in history
    assert "Remove message" in await database_sync_to_async(menu_of)(
        carol, message_id(history, "first words")
    )
    await proposer.send_to(text_data=ws_send_frame(action="lock"))
    assert "Locked: only moderators can post now." in await receive_until(proposer, NOTICE)


async def test_moderation_frames_about_strangers_name_nobody_and_do_not_tell_who_is_staff(
    open_socket: SocketOpener, lobby: Room, moderator: Account, staff: Account, bob: Account
) -> None:
    mod_socket = await open_socket(user=moderator)
    refusals = []

    for user_id in (staff.pk, bob.pk, 999999):
        await mod_socket.send_to(text_data=ws_send_frame(action="ban", user_id=str(user_id), reason=""))
        refusals.append(await receive_until(mod_socket, NOTICE))

    assert refusals[0] == refusals[1] == refusals[2]
    assert "someone who has taken part in this room" in refusals[0]
    assert "sam" not in refusals[0] and "bob" not in refusals[0] and "moderator" not in refusals[0]
    assert not await database_sync_to_async(Ban.objects.exists)()


# Reporting ------------------------------------------------------------------------------------


async def test_member_reports_a_message(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    message = await new_message(lobby, bob, "you are all idiots")
    member = await open_socket(user=alice)

    await member.send_to(text_data=ws_send_frame(action="report", message_id=str(message.pk), reason="rude"))

    assert "Thanks for reporting it." in await receive_until(member, NOTICE)
    reports = await database_sync_to_async(lambda: list(Report.objects.values_list("reporter", "reason")))()
    assert reports == [(alice.pk, "rude")]


async def test_reporting_your_own_message_is_refused(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    message = await new_message(lobby, alice, "my own words")
    member = await open_socket(user=alice)

    await member.send_to(text_data=ws_send_frame(action="report", message_id=str(message.pk), reason=""))

    assert "You can&#x27;t report your own message." in await receive_until(member, NOTICE)
    assert not await database_sync_to_async(Report.objects.exists)()


@pytest.mark.parametrize(
    "fields",
    [{"action": "report", "message_id": "1"}, {"action": "lock"}, {"action": "ban", "user_id": "1"}],
    ids=["report", "lock", "ban"],
)
async def test_visitors_are_asked_to_sign_in_before_any_action(
    open_socket: SocketOpener, lobby: Room, fields: dict
) -> None:
    visitor = await open_socket()
    before = await database_sync_to_async(snapshot)()

    await visitor.send_to(text_data=ws_send_frame(**fields))

    assert "Sign in first." in await receive_until(visitor, NOTICE)
    assert await database_sync_to_async(snapshot)() == before


# Actions taken outside the room page ----------------------------------------------------------


async def test_removal_in_the_admin_shows_live(
    open_socket: SocketOpener,
    lobby: Room,
    staff: Account,
    alice: Account,
    bob: Account,
) -> None:
    message = await new_message(lobby, bob, "buy cheap watches")
    member, visitor = await open_socket(user=alice), await open_socket()
    await settle(member, visitor)

    await database_sync_to_async(moderation.remove_message)(staff, message, "spam")

    for socket in (member, visitor):
        assert TOMBSTONE in await receive_until(socket, f'id="message-{message.pk}"')


async def test_deletion_in_the_admin_takes_the_message_off_every_page(
    open_socket: SocketOpener,
    lobby: Room,
    staff: Account,
    alice: Account,
    bob: Account,
) -> None:
    message = await new_message(lobby, bob, "buy cheap watches")
    member, visitor = await open_socket(user=alice), await open_socket()
    await settle(member, visitor)

    message_id = message.pk

    await database_sync_to_async(moderation.delete_message)(staff, message, "illegal")

    for socket in (member, visitor):
        frame = await receive_until(socket, f'id="message-{message_id}"')
        assert 'hx-swap-oob="delete"' in frame


async def test_ban_in_the_admin_closes_the_users_socket(
    open_socket: SocketOpener, lobby: Room, staff: Account, bob: Account
) -> None:
    banned = await open_socket(user=bob)
    client = await database_sync_to_async(client_for)(staff)

    response = await database_sync_to_async(client.post)(
        "/admin/chat/ban/add/", {"room": str(lobby.pk), "user": str(bob.pk), "reason": "spam"}
    )

    assert response.status_code == 302
    _, code = await receive_close(banned)
    assert code == REMOVED_FROM_ROOM


async def test_locking_in_the_admin_shows_live(
    open_socket: SocketOpener, lobby: Room, staff: Account, alice: Account
) -> None:
    member = await open_socket(user=alice)
    client = await database_sync_to_async(client_for)(staff)
    form = {
        "name": lobby.name,
        "slug": lobby.slug,
        "description": lobby.description,
        "is_public": "on",
        "is_locked": "on",
        "slow_mode_seconds": "0",
        "status": lobby.status,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }

    response = await database_sync_to_async(client.post)(f"/admin/chat/room/{lobby.pk}/change/", form)

    assert response.status_code == 302
    assert "This room is locked" in await receive_until(member, FORM)


# Roles changing under an open socket ----------------------------------------------------------


async def test_promoted_member_gets_the_moderation_controls_at_once(
    open_socket: SocketOpener,
    lobby: Room,
    staff: Account,
    alice: Account,
    bob: Account,
) -> None:
    await new_message(lobby, alice, "earlier")
    promoted, writer = await open_socket(user=bob), await open_socket(user=alice)
    await settle(promoted, writer)

    await database_sync_to_async(moderation.set_role)(staff, lobby, bob, Role.MODERATOR)

    history = await receive_until(promoted, HISTORY)
    assert "earlier" in history and MENU in history
    assert "Remove message" in await database_sync_to_async(menu_of)(bob, message_id(history, "earlier"))
    await writer.send_to(text_data=ws_send_frame("after the promotion"))
    after = message_id(await receive_message_frame(promoted, "after the promotion"), "after the promotion")
    assert "Remove message" in await database_sync_to_async(menu_of)(bob, after)


async def test_demoted_moderator_loses_the_controls_at_once(
    open_socket: SocketOpener,
    lobby: Room,
    staff: Account,
    moderator: Account,
    bob: Account,
) -> None:
    await new_message(lobby, bob, "earlier")
    demoted = await open_socket(user=moderator)

    await database_sync_to_async(moderation.set_role)(staff, lobby, moderator, Role.MEMBER)

    history = await receive_until(demoted, HISTORY)
    assert "earlier" in history and "Remove message" not in history
    earlier = message_id(history, "earlier")
    assert "Remove message" not in await database_sync_to_async(menu_of)(moderator, earlier)
    message = await new_message(lobby, bob, "still here")
    await demoted.send_to(text_data=ws_send_frame(action="remove", message_id=str(message.pk)))
    assert "Only this room&#x27;s moderators can do that." in await receive_until(demoted, NOTICE)


async def test_staff_status_taken_away_a_moment_ago_stops_moderating_over_an_open_socket(
    open_socket: SocketOpener, lobby: Room, staff: Account, bob: Account
) -> None:
    message = await new_message(lobby, bob, "buy cheap watches")
    former_staff = await open_socket(user=staff)
    # Another admin unticks "Staff status" (and superuser) for sam while sam's room page stays open.
    await database_sync_to_async(Account.objects.filter(pk=staff.pk).update)(
        is_staff=False, is_superuser=False
    )

    await former_staff.send_to(text_data=ws_send_frame(action="remove", message_id=str(message.pk)))

    assert "Only this room&#x27;s moderators can do that." in await receive_until(former_staff, NOTICE)
    assert (await stored_message(message.pk)).removed_at is None


async def test_member_taken_off_a_private_room_is_shown_out(
    open_socket: SocketOpener, db: None, staff: Account, bob: Account
) -> None:
    secret = await database_sync_to_async(Room.objects.create)(slug="secret", name="Secret", is_public=False)
    await database_sync_to_async(make_member)(secret, bob)
    member = await open_socket(slug="secret", user=bob)

    await database_sync_to_async(moderation.set_role)(staff, secret, bob, None)

    frames, code = await receive_close(member)
    assert any("This room is private." in frame for frame in frames), frames
    assert code == REMOVED_FROM_ROOM
