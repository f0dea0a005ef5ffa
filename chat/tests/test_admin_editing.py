"""What staff see of edits and deletions: earlier versions, and reports with the text as reported."""

import pytest

from chat import moderation, services
from chat.models import Message, Report, Room
from chat.standing import Account
from chat.tests.support import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def reported(lobby: Room, alice: Account, bob: Account) -> Report:
    message = Message.objects.create(room=lobby, author=bob, body="you are all idiots")
    return moderation.report_message(alice, message, "rude")


def test_staff_see_the_earlier_versions_of_an_edited_message(
    lobby: Room, alice: Account, staff: Account
) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="first draft")
    services.edit_message(alice, message, "second draft")
    services.edit_message(alice, message, "final text")

    page = client_for(staff).get(f"/admin/chat/message/{message.pk}/change/").text

    assert "final text" in page
    assert page.index("first draft") < page.index("second draft")


def test_the_queue_shows_the_text_as_reported_after_an_edit(
    reported: Report, bob: Account, staff: Account
) -> None:
    services.edit_message(bob, reported.message, "have a nice day")

    page = client_for(staff).get("/admin/chat/report/").text

    assert "you are all idiots (since edited by its author)" in page


def test_a_report_on_a_deleted_message_stays_answerable(
    reported: Report, bob: Account, staff: Account
) -> None:
    services.delete_own_message(bob, reported.message)
    staff_client = client_for(staff)

    queue = staff_client.get("/admin/chat/report/").text
    assert "you are all idiots (since deleted by its author)" in queue
    detail = staff_client.get(f"/admin/chat/report/{reported.pk}/change/").text
    assert "you are all idiots" in detail and "(deleted by its author)" in detail

    response = staff_client.post(f"/admin/chat/report/{reported.pk}/resolve/")
    assert response.status_code == 302
    assert Report.objects.get(pk=reported.pk).resolution
