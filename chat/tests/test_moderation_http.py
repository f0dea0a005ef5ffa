"""Moderation over HTTP: who may open which room page, the room list, proposals, and the admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import timezone

from chat import moderation
from chat.models import AuditEntry, Ban, Membership, Message, Mute, Report, Role, Room
from chat.tests.menus import MENU, menu_of
from chat.tests.moderation_support import (
    FAST_HASHERS,
    TOMBSTONE,
    audit_rows,
    make_member,
    make_moderator,
    make_staff,
    pending_room,
    private_room,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = FAST_HASHERS


def client_for(user: AbstractBaseUser | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def staff() -> AbstractBaseUser:
    return make_staff()


@pytest.fixture
def staff_client(staff: AbstractBaseUser) -> Client:
    return client_for(staff)


# Room pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["visitor", "outsider"])
def test_private_room_is_not_found_for_non_members(alice: AbstractBaseUser, who: str) -> None:
    secret = private_room()
    Message.objects.create(room=secret, author=make_moderator(secret), body="our plans")

    response = client_for(alice if who == "outsider" else None).get("/rooms/secret/")

    assert response.status_code == 404
    assert b"our plans" not in response.content


@pytest.mark.parametrize("who", ["member", "moderator", "staff"])
def test_private_room_opens_for_members_moderators_and_staff(alice: AbstractBaseUser, who: str) -> None:
    secret = private_room()
    Message.objects.create(room=secret, author=alice, body="our plans")
    make_people = {
        "member": lambda: make_member(secret, alice),
        "moderator": lambda: make_moderator(secret),
        "staff": make_staff,
    }
    user = make_people[who]()

    response = client_for(user).get("/rooms/secret/")

    assert response.status_code == 200
    assert "our plans" in response.text


def test_private_rooms_older_messages_are_not_found_for_outsiders(alice: AbstractBaseUser) -> None:
    secret = private_room()
    message = Message.objects.create(room=secret, author=make_moderator(secret), body="our plans")

    response = client_for(alice).get(f"/rooms/secret/messages/?before={message.pk + 1}")

    assert response.status_code == 404


def test_banned_user_gets_403_saying_they_are_banned(lobby: Room, alice: AbstractBaseUser) -> None:
    Ban.objects.create(room=lobby, user=alice, reason="spam")

    response = client_for(alice).get("/rooms/lobby/")

    assert response.status_code == 403
    assert "You have been banned from #Lobby." in response.text


def test_banned_user_may_still_open_other_rooms(
    lobby: Room, other_room: Room, alice: AbstractBaseUser
) -> None:
    Ban.objects.create(room=lobby, user=alice)

    assert client_for(alice).get(f"/rooms/{other_room.slug}/").status_code == 200


@pytest.mark.parametrize("who", ["visitor", "member"])
def test_pending_room_page_is_not_found_for_others(
    carol: AbstractBaseUser, alice: AbstractBaseUser, who: str
) -> None:
    pending_room(carol)

    response = client_for(alice if who == "member" else None).get("/rooms/garden/")

    assert response.status_code == 404


@pytest.mark.parametrize("who", ["proposer", "staff"])
def test_pending_room_page_opens_for_its_proposer_and_staff(carol: AbstractBaseUser, who: str) -> None:
    pending_room(carol)

    response = client_for(carol if who == "proposer" else make_staff()).get("/rooms/garden/")

    assert response.status_code == 200
    assert "Waiting for approval" in response.text


def test_moderators_page_has_the_moderation_tools_and_members_page_does_not(
    lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser
) -> None:
    hello = Message.objects.create(room=lobby, author=bob, body="hello")
    moderator = make_moderator(lobby)

    as_moderator = client_for(moderator).get("/rooms/lobby/").text
    as_member = client_for(alice).get("/rooms/lobby/").text
    as_visitor = client_for(None).get("/rooms/lobby/").text

    # Message controls come in each message's menu, loaded when the reader opens it.
    assert "Lock room" in as_moderator and "Remove message" in menu_of(moderator, hello.pk)
    assert "Lock room" not in as_member and "Remove message" not in as_member + menu_of(alice, hello.pk)
    assert MENU in as_member and "Report message" in menu_of(alice, hello.pk)
    assert MENU not in as_visitor and menu_of(None, hello.pk) == ""


def test_removed_message_shows_a_tombstone_on_the_page(lobby: Room, bob: AbstractBaseUser) -> None:
    Message.objects.create(room=lobby, author=bob, body="buy cheap watches", removed_at=timezone.now())

    page = client_for(None).get("/rooms/lobby/").text

    assert TOMBSTONE in page
    assert "buy cheap watches" not in page


def test_muted_member_sees_until_when_on_the_page(lobby: Room, alice: AbstractBaseUser) -> None:
    until = timezone.now() + timedelta(minutes=10)
    Mute.objects.create(room=lobby, user=alice, until=until)

    page = client_for(alice).get("/rooms/lobby/").text

    assert f"You're muted in this room until {timezone.localtime(until):%H:%M}" in page
    assert 'name="message"' not in page


def test_locked_room_page_tells_members_and_keeps_the_form_for_moderators(
    lobby: Room, alice: AbstractBaseUser
) -> None:
    Room.objects.filter(pk=lobby.pk).update(is_locked=True)

    as_member = client_for(alice).get("/rooms/lobby/").text
    as_moderator = client_for(make_moderator(lobby)).get("/rooms/lobby/").text

    assert "This room is locked" in as_member and 'name="message"' not in as_member
    assert 'name="message"' in as_moderator


# The room list --------------------------------------------------------------------------------


def room_links(client: Client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize(("who", "listed"), [("visitor", False), ("outsider", False), ("member", True)])
def test_room_list_shows_private_rooms_to_their_members_only(
    lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser, who: str, listed: bool
) -> None:
    secret = private_room()
    make_member(secret, bob)
    user = {"visitor": None, "outsider": alice, "member": bob}[who]

    page = room_links(client_for(user))

    assert 'href="/rooms/lobby/"' in page
    assert ('href="/rooms/secret/"' in page) is listed


def test_room_list_shows_private_rooms_to_staff(lobby: Room) -> None:
    private_room()

    assert 'href="/rooms/secret/"' in room_links(client_for(make_staff()))


@pytest.mark.parametrize("who", ["visitor", "member", "proposer", "staff"])
def test_room_list_hides_pending_rooms_from_everyone(
    lobby: Room, alice: AbstractBaseUser, carol: AbstractBaseUser, who: str
) -> None:
    pending_room(carol)
    user = {"visitor": None, "member": alice, "proposer": carol, "staff": make_staff()}[who]

    assert 'href="/rooms/garden/"' not in room_links(client_for(user))


def test_proposer_sees_their_proposals_with_their_status(
    lobby: Room, alice: AbstractBaseUser, carol: AbstractBaseUser
) -> None:
    pending_room(carol, slug="garden", name="Garden")
    Room.objects.create(slug="kiln", name="Kiln", status=Room.Status.REJECTED, proposed_by=carol)
    Room.objects.create(slug="orchard", name="Orchard", proposed_by=carol)

    as_proposer = room_links(client_for(carol))
    as_someone_else = room_links(client_for(alice))

    proposals = as_proposer.split("Your proposals", 1)[1]
    assert "# Garden" in proposals and "Waiting for approval" in proposals
    assert "# Kiln" in proposals and "Rejected" in proposals
    assert "# Orchard" in proposals and 'href="/rooms/orchard/"' in proposals
    assert "Your proposals" not in as_someone_else


# Proposing a room -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_proposing_a_room_requires_signing_in(lobby: Room, method: str) -> None:
    client = client_for(None)
    response = (
        client.post("/rooms/propose/", {"name": "Book Club"})
        if method == "post"
        else client.get("/rooms/propose/")
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/rooms/propose/"
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


def test_proposing_a_room_keeps_it_hidden_and_shows_it_under_your_proposals(
    lobby: Room, alice: AbstractBaseUser
) -> None:
    client = client_for(alice)

    response = client.post(
        "/rooms/propose/", {"name": "Book Club", "description": "Monthly reads", "is_public": "on"}
    )

    assert response.status_code == 302 and response["Location"] == "/"
    room = Room.objects.get(slug="book-club")
    assert (room.status, room.is_public, room.proposed_by) == (Room.Status.PENDING, True, alice)
    assert Membership.objects.get(room=room, user=alice).role == Role.MODERATOR
    page = room_links(client)
    assert "Your proposals" in page and "Waiting for approval" in page
    assert 'href="/rooms/book-club/"' not in page
    assert 'href="/rooms/book-club/"' not in room_links(client_for(None))


def test_proposal_without_a_name_is_sent_back(lobby: Room, alice: AbstractBaseUser) -> None:
    response = client_for(alice).post("/rooms/propose/", {"name": "  "})

    assert response.status_code == 200
    assert "This field is required." in response.text
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


def test_room_proposed_as_propose_does_not_hide_the_proposal_page(alice: AbstractBaseUser) -> None:
    client = client_for(alice)

    client.post("/rooms/propose/", {"name": "Propose", "is_public": "on"})

    assert Room.objects.get(proposed_by=alice).slug != "propose"
    assert "Send for approval" in client.get("/rooms/propose/").text


# The admin: moderation queue ------------------------------------------------------------------


@pytest.fixture
def reported(lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser) -> Report:
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")
    return Report.objects.create(message=message, reporter=alice, reason="spam")


def test_queue_lists_open_reports_with_the_message_and_three_buttons(
    staff_client: Client, reported: Report
) -> None:
    response = staff_client.get("/admin/chat/report/")

    assert response.status_code == 200
    page = response.text
    assert "buy cheap watches" in page
    for action, label in [("resolve", "Resolve"), ("remove", "Remove message"), ("ban", "Ban author")]:
        assert f'formaction="/admin/chat/report/{reported.pk}/{action}/"' in page
        assert f">{label}</button>" in page


def test_queue_leaves_resolved_reports_out_by_default(staff_client: Client, reported: Report) -> None:
    Report.objects.filter(pk=reported.pk).update(resolved_at=timezone.now(), resolution="no action")

    assert "buy cheap watches" not in staff_client.get("/admin/chat/report/").text
    assert "buy cheap watches" in staff_client.get("/admin/chat/report/?status=resolved").text


def test_queue_remove_leaves_a_tombstone_resolves_and_is_logged(
    staff_client: Client, reported: Report
) -> None:
    response = staff_client.post(f"/admin/chat/report/{reported.pk}/remove/")

    assert response.status_code == 302
    message = Message.objects.get(pk=reported.message_id)
    assert message.removed_at is not None and message.body == "buy cheap watches"
    reported.refresh_from_db()
    assert reported.resolved_at is not None and reported.resolution == "message removed"
    assert [(row[0], row[1], row[3]) for row in audit_rows()] == [
        ("sam", "remove message", "bob"),
        ("sam", "resolve report", None),
    ]
    page = client_for(None).get("/rooms/lobby/").text
    assert TOMBSTONE in page and "buy cheap watches" not in page


def test_queue_ban_bans_the_author_and_resolves(staff_client: Client, reported: Report) -> None:
    response = staff_client.post(f"/admin/chat/report/{reported.pk}/ban/")

    assert response.status_code == 302
    assert Ban.objects.filter(room__slug="lobby", user__username="bob").exists()
    reported.refresh_from_db()
    assert reported.resolved_at is not None and reported.resolution == "author banned"
    assert ("sam", "ban", "lobby", "bob") in [row[:4] for row in audit_rows()]
    assert Message.objects.get(pk=reported.message_id).removed_at is None


def test_queue_resolve_only_resolves(staff_client: Client, reported: Report) -> None:
    response = staff_client.post(f"/admin/chat/report/{reported.pk}/resolve/")

    assert response.status_code == 302
    reported.refresh_from_db()
    assert reported.resolved_at is not None and reported.resolution == "no action needed"
    assert Message.objects.get(pk=reported.message_id).removed_at is None
    assert not Ban.objects.exists()
    assert [row[1] for row in audit_rows()] == ["resolve report"]


def test_queue_remove_clears_a_late_report_on_an_already_removed_message(
    staff_client: Client, lobby: Room, alice: AbstractBaseUser, bob: AbstractBaseUser
) -> None:
    """A report that arrives after a moderator removed the message (e.g. from a page that was
    reconnecting) must not stay in the queue once staff click "Remove message" on it."""
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")
    moderation.remove_message(make_moderator(lobby), message, "spam")
    late = moderation.report_message(alice, message, "spam")

    response = staff_client.post(f"/admin/chat/report/{late.pk}/remove/")

    assert response.status_code == 302
    late.refresh_from_db()
    assert late.resolved_at is not None
    assert "buy cheap watches" not in staff_client.get("/admin/chat/report/").text


@pytest.mark.parametrize("action", ["resolve", "remove", "ban"])
def test_queue_buttons_only_take_posts(staff_client: Client, reported: Report, action: str) -> None:
    response = staff_client.get(f"/admin/chat/report/{reported.pk}/{action}/")

    assert response.status_code == 405
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("action", ["resolve", "remove", "ban"])
@pytest.mark.parametrize("who", ["visitor", "member", "room moderator"])
def test_queue_actions_send_non_staff_to_the_admin_login(
    reported: Report, alice: AbstractBaseUser, action: str, who: str
) -> None:
    user = {"visitor": None, "member": alice, "room moderator": make_moderator(reported.message.room)}[who]

    response = client_for(user).post(f"/admin/chat/report/{reported.pk}/{action}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    reported.refresh_from_db()
    assert reported.resolved_at is None
    assert Message.objects.get(pk=reported.message_id).removed_at is None
    assert not Ban.objects.exists()
    assert not AuditEntry.objects.exists()


# The admin: rooms -----------------------------------------------------------------------------


def test_approving_a_pending_room_in_the_admin_opens_it(
    staff_client: Client, lobby: Room, carol: AbstractBaseUser
) -> None:
    garden = pending_room(carol)

    response = staff_client.post("/admin/chat/room/", {"action": "approve", "_selected_action": [garden.pk]})

    assert response.status_code == 302
    assert Room.objects.get(pk=garden.pk).status == Room.Status.APPROVED
    assert 'href="/rooms/garden/"' in room_links(client_for(None))
    assert audit_rows() == [("sam", "approve room", "garden", None, None, "", "")]


def test_rejecting_a_pending_room_in_the_admin_keeps_it_hidden(
    staff_client: Client, lobby: Room, carol: AbstractBaseUser
) -> None:
    garden = pending_room(carol)

    staff_client.post("/admin/chat/room/", {"action": "reject", "_selected_action": [garden.pk]})

    assert Room.objects.get(pk=garden.pk).status == Room.Status.REJECTED
    assert 'href="/rooms/garden/"' not in room_links(client_for(None))
    assert "Rejected" in room_links(client_for(carol))


def room_change_form(room: Room, **overrides: object) -> dict:
    """What the admin's Room change page posts, with no inline memberships changed."""
    data = {
        "name": room.name,
        "slug": room.slug,
        "description": room.description,
        "slow_mode_seconds": str(room.slow_mode_seconds),
        "status": room.status,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    if room.is_public:
        data["is_public"] = "on"
    if room.is_locked:
        data["is_locked"] = "on"
    data.update(overrides)
    return data


def test_locking_a_room_in_the_admin_is_logged(staff_client: Client, lobby: Room) -> None:
    response = staff_client.post(
        f"/admin/chat/room/{lobby.pk}/change/", room_change_form(lobby, is_locked="on")
    )

    assert response.status_code == 302
    assert Room.objects.get(pk=lobby.pk).is_locked is True
    assert audit_rows() == [
        ("sam", "lock room", "lobby", None, None, "changed in the admin", "is_locked=True")
    ]


def test_promoting_a_member_in_the_admin_inline_goes_through_the_role_service(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    data = room_change_form(
        lobby,
        **{
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-id": "",
            "memberships-0-room": str(lobby.pk),
            "memberships-0-user": str(bob.pk),
            "memberships-0-role": "moderator",
        },
    )

    response = staff_client.post(f"/admin/chat/room/{lobby.pk}/change/", data)

    assert response.status_code == 302
    assert Membership.objects.get(room=lobby, user=bob).role == Role.MODERATOR
    assert audit_rows() == [("sam", "set role", "lobby", "bob", None, "", "moderator")]


def test_adding_a_moderator_in_the_membership_admin_goes_through_the_role_service(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    response = staff_client.post(
        "/admin/chat/membership/add/", {"room": str(lobby.pk), "user": str(bob.pk), "role": "moderator"}
    )

    assert response.status_code == 302
    assert Membership.objects.get(room=lobby, user=bob).role == Role.MODERATOR
    assert audit_rows() == [("sam", "set role", "lobby", "bob", None, "", "moderator")]


# The admin: messages, sanctions and the audit log ---------------------------------------------


def test_remove_action_on_messages_leaves_tombstones_and_is_logged(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")

    response = staff_client.post(
        "/admin/chat/message/", {"action": "remove", "_selected_action": [message.pk]}
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.removed_at is not None and message.body == "buy cheap watches"
    assert audit_rows() == [("sam", "remove message", "lobby", "bob", message.pk, "removed in the admin", "")]


def test_deleting_a_message_in_the_admin_is_logged_with_its_text(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")

    response = staff_client.post(f"/admin/chat/message/{message.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Message.objects.exists()
    assert audit_rows() == [
        ("sam", "delete message", "lobby", "bob", None, "deleted in the admin", "buy cheap watches")
    ]


def test_banning_in_the_admin_goes_through_the_ban_service(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    response = staff_client.post(
        "/admin/chat/ban/add/", {"room": str(lobby.pk), "user": str(bob.pk), "reason": "spam"}
    )

    assert response.status_code == 302
    assert Ban.objects.get().reason == "spam"
    assert audit_rows() == [("sam", "ban", "lobby", "bob", None, "spam", "")]


def test_muting_in_the_admin_goes_through_the_mute_service(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    until = timezone.localtime(timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    response = staff_client.post(
        "/admin/chat/mute/add/",
        {
            "room": str(lobby.pk),
            "user": str(bob.pk),
            "until_0": until.strftime("%Y-%m-%d"),
            "until_1": until.strftime("%H:%M:%S"),
            "reason": "shouting",
        },
    )

    assert response.status_code == 302
    assert Mute.objects.get().until == until
    assert [row[:4] for row in audit_rows()] == [("sam", "mute", "lobby", "bob")]


def test_audit_log_can_be_read_but_not_added_to_changed_or_deleted(
    staff_client: Client, lobby: Room, bob: AbstractBaseUser
) -> None:
    entry = AuditEntry.objects.create(actor=bob, action="ban", room=lobby, reason="spam")

    assert staff_client.get("/admin/chat/auditentry/").status_code == 200
    assert staff_client.get("/admin/chat/auditentry/add/").status_code == 403
    assert staff_client.post("/admin/chat/auditentry/add/", {"action": "forged"}).status_code == 403
    change_page = staff_client.get(f"/admin/chat/auditentry/{entry.pk}/change/")
    assert change_page.status_code == 200 and 'name="_save"' not in change_page.text
    assert staff_client.post(f"/admin/chat/auditentry/{entry.pk}/change/", {"reason": "x"}).status_code == 403
    assert staff_client.post(f"/admin/chat/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert list(AuditEntry.objects.values_list("action", "reason")) == [("ban", "spam")]


def test_room_list_leaves_out_rooms_the_user_is_banned_from(lobby: Room, alice: AbstractBaseUser) -> None:
    Room.objects.create(slug="garden", name="Garden")
    Ban.objects.create(room=lobby, user=alice)

    page = room_links(client_for(alice))

    assert 'href="/rooms/lobby/"' not in page
    assert 'href="/rooms/garden/"' in page


def test_a_rejected_room_is_closed_to_its_proposer_too(carol: AbstractBaseUser) -> None:
    room = pending_room(carol)
    moderation.review_room(make_staff(), room, approve=False)

    assert client_for(carol).get("/rooms/garden/").status_code == 404
    assert "Rejected" in room_links(client_for(carol))


def test_the_admin_refuses_a_room_slug_the_site_uses_itself(staff_client: Client) -> None:
    response = staff_client.post(
        "/admin/chat/room/add/",
        {
            "name": "Propose",
            "slug": "propose",
            "status": "approved",
            "slow_mode_seconds": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "is used by the site itself" in response.text
    assert not Room.objects.filter(slug="propose").exists()
