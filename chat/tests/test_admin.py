"""The Django admin: the moderation queue, rooms, memberships, sanctions and the audit log.

Every change made here goes through chat/moderation.py, like the room page's."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat import moderation
from chat.models import AuditEntry, Ban, Membership, Message, Mute, Report, Role, Room
from chat.standing import Account
from chat.tests.support import (
    TOMBSTONE,
    audit_rows,
    client_for,
    make_moderator,
    pending_room,
    room_links,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff: Account) -> Client:
    return client_for(staff)


# The admin: moderation queue ------------------------------------------------------------------


@pytest.fixture
def reported(lobby: Room, alice: Account, bob: Account) -> Report:
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
    staff_client: Client, lobby: Room, alice: Account, bob: Account
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
    reported: Report, alice: Account, action: str, who: str
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
    staff_client: Client, lobby: Room, carol: Account
) -> None:
    garden = pending_room(carol)

    response = staff_client.post("/admin/chat/room/", {"action": "approve", "_selected_action": [garden.pk]})

    assert response.status_code == 302
    assert Room.objects.get(pk=garden.pk).status == Room.Status.APPROVED
    assert 'href="/rooms/garden/"' in room_links(client_for(None))
    assert audit_rows() == [("sam", "approve room", "garden", None, None, "", "")]


def test_rejecting_a_pending_room_in_the_admin_keeps_it_hidden(
    staff_client: Client, lobby: Room, carol: Account
) -> None:
    garden = pending_room(carol)

    staff_client.post("/admin/chat/room/", {"action": "reject", "_selected_action": [garden.pk]})

    assert Room.objects.get(pk=garden.pk).status == Room.Status.REJECTED
    assert 'href="/rooms/garden/"' not in room_links(client_for(None))
    assert "Rejected" in room_links(client_for(carol))


def room_change_form(room: Room, **overrides: str) -> dict[str, str]:
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
    staff_client: Client, lobby: Room, bob: Account
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
    staff_client: Client, lobby: Room, bob: Account
) -> None:
    response = staff_client.post(
        "/admin/chat/membership/add/", {"room": str(lobby.pk), "user": str(bob.pk), "role": "moderator"}
    )

    assert response.status_code == 302
    assert Membership.objects.get(room=lobby, user=bob).role == Role.MODERATOR
    assert audit_rows() == [("sam", "set role", "lobby", "bob", None, "", "moderator")]


# The admin: messages, sanctions and the audit log ---------------------------------------------


def test_remove_action_on_messages_leaves_tombstones_and_is_logged(
    staff_client: Client, lobby: Room, bob: Account
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
    staff_client: Client, lobby: Room, bob: Account
) -> None:
    message = Message.objects.create(room=lobby, author=bob, body="buy cheap watches")

    response = staff_client.post(f"/admin/chat/message/{message.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Message.objects.exists()
    assert audit_rows() == [
        ("sam", "delete message", "lobby", "bob", None, "deleted in the admin", "buy cheap watches")
    ]


def test_banning_in_the_admin_goes_through_the_ban_service(
    staff_client: Client, lobby: Room, bob: Account
) -> None:
    response = staff_client.post(
        "/admin/chat/ban/add/", {"room": str(lobby.pk), "user": str(bob.pk), "reason": "spam"}
    )

    assert response.status_code == 302
    assert Ban.objects.get().reason == "spam"
    assert audit_rows() == [("sam", "ban", "lobby", "bob", None, "spam", "")]


def test_muting_in_the_admin_goes_through_the_mute_service(
    staff_client: Client, lobby: Room, bob: Account
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
    staff_client: Client, lobby: Room, bob: Account
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


# Review fixes: the admin cannot sidestep the moderation service -------------------------------


def test_changing_a_bans_user_in_the_admin_cannot_move_the_ban_to_someone_else(
    staff_client: Client, staff: Account, lobby: Room, bob: Account, carol: Account
) -> None:
    moderation.ban(staff, lobby, bob, "spam")
    ban = Ban.objects.get()

    staff_client.post(
        f"/admin/chat/ban/{ban.pk}/change/", {"room": str(lobby.pk), "user": str(carol.pk), "reason": "x"}
    )

    assert list(Ban.objects.values_list("user__username", flat=True)) == ["bob"]


def test_changing_a_mutes_user_in_the_admin_cannot_move_the_mute_to_someone_else(
    staff_client: Client, staff: Account, lobby: Room, bob: Account, carol: Account
) -> None:
    until = timezone.now() + timedelta(hours=1)
    moderation.mute_until(staff, lobby, bob, until, "shouting")
    mute = Mute.objects.get()
    form = {"room": str(lobby.pk), "user": str(carol.pk), "reason": "x"}
    form |= {"until_0": until.strftime("%Y-%m-%d"), "until_1": until.strftime("%H:%M:%S")}

    staff_client.post(f"/admin/chat/mute/{mute.pk}/change/", form)

    assert list(Mute.objects.values_list("user__username", flat=True)) == ["bob"]


def test_a_pending_room_cannot_be_approved_by_editing_its_status_field(
    staff_client: Client, carol: Account
) -> None:
    garden = pending_room(carol)

    page = staff_client.get(f"/admin/chat/room/{garden.pk}/change/").text
    staff_client.post(f"/admin/chat/room/{garden.pk}/change/", room_change_form(garden, status="approved"))

    assert 'name="status"' not in page
    assert Room.objects.get(pk=garden.pk).status == Room.Status.PENDING
    assert 'href="/rooms/garden/"' not in room_links(client_for(None))


def test_the_queue_returns_to_the_page_it_was_on_but_never_to_another_site(
    staff_client: Client, reported: Report
) -> None:
    queue = "/admin/chat/report/?resolved=no"
    resolve = f"/admin/chat/report/{reported.pk}/resolve/"

    back_home = staff_client.post(resolve, HTTP_REFERER=f"http://testserver{queue}")
    away = staff_client.post(resolve, HTTP_REFERER="https://evil.example/phish")

    assert back_home.headers["Location"] == f"http://testserver{queue}"
    assert away.headers["Location"] == "/admin/chat/report/"


def test_the_admin_the_queue_and_the_audit_log_show_what_was_typed_never_formatted_html(
    staff_client: Client, lobby: Room, alice: Account, bob: Account
) -> None:
    typed = "**buy** [watches](https://spam.example)"
    message = Message.objects.create(room=lobby, author=bob, body=typed)
    Report.objects.create(message=message, reporter=alice, reason="spam")

    pages = [
        staff_client.get("/admin/chat/message/").text,
        staff_client.get(f"/admin/chat/message/{message.pk}/change/").text,
        staff_client.get("/admin/chat/report/").text,
    ]
    staff_client.post(f"/admin/chat/message/{message.pk}/delete/", {"post": "yes"})

    for page in pages:
        assert typed in page
        assert "<strong>buy</strong>" not in page and 'href="https://spam.example"' not in page
    assert audit_rows()[-1][-1] == typed
