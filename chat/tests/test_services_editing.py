"""Editing and deleting your own messages: who may, until when, and what is kept or erased."""

import pytest

from chat import moderation, services
from chat.models import Message, MessageVersion, Report, Room
from chat.standing import Account
from chat.tests.support import make_moderator, mute_for, sent_ago
from testsupport.hostile import REFERENCE_BLOWUP

pytestmark = pytest.mark.django_db


@pytest.fixture
def message(lobby: Room, alice: Account) -> Message:
    return Message.objects.create(room=lobby, author=alice, body="see you at **9**")


def test_an_edit_stores_the_new_text_marks_it_edited_and_keeps_the_old_one(
    message: Message, alice: Account
) -> None:
    assert services.edit_message(alice, message, "see you at **10**")

    stored = Message.objects.get()
    assert stored.body == "see you at **10**" and "<strong>10</strong>" in stored.body_html
    assert stored.edited_at is not None
    [version] = MessageVersion.objects.all()
    assert (version.body, version.written_at) == ("see you at **9**", stored.created_at)


def test_an_edit_that_would_render_too_big_is_refused_and_changes_nothing(
    message: Message, alice: Account
) -> None:
    with pytest.raises(services.Refused, match=r"link definitions \(\[name\]: URL\) at most 20 times"):
        services.edit_message(alice, message, REFERENCE_BLOWUP)

    stored = Message.objects.get()
    assert (stored.body, stored.body_html) == ("see you at **9**", "<p>see you at <strong>9</strong></p>")
    assert stored.edited_at is None and not MessageVersion.objects.exists()


def test_each_edit_keeps_the_text_it_replaced(message: Message, alice: Account) -> None:
    services.edit_message(alice, message, "second")
    services.edit_message(alice, message, "third")

    assert list(message.versions.values_list("body", flat=True)) == ["see you at **9**", "second"]


def test_an_unchanged_text_stores_nothing(message: Message, alice: Account) -> None:
    assert not services.edit_message(alice, message, "see you at **9**")

    assert Message.objects.get().edited_at is None and not MessageVersion.objects.exists()


def test_nobody_edits_or_deletes_another_persons_message(message: Message, lobby: Room, bob: Account) -> None:
    mona = make_moderator(lobby, "mona")
    for user in (bob, mona):
        with pytest.raises(services.Refused, match="You can only change your own messages"):
            services.edit_message(user, message, "hijacked")
        with pytest.raises(services.Refused, match="You can only change your own messages"):
            services.delete_own_message(user, message)
    assert Message.objects.get().body == "see you at **9**"


def test_the_edit_window_closes(message: Message, alice: Account, settings) -> None:
    settings.CHAT_EDIT_WINDOW_SECONDS = 3600
    sent_ago(message, 3601)

    with pytest.raises(services.Refused, match="Messages can only be edited for 1 hour after sending"):
        services.edit_message(alice, message, "too late")


def test_a_window_of_zero_is_no_limit(message: Message, alice: Account, settings) -> None:
    settings.CHAT_EDIT_WINDOW_SECONDS = 0
    sent_ago(message, 10 * 365 * 86400)

    assert services.edit_message(alice, message, "still mine")


def test_muted_and_locked_out_authors_cannot_edit(message: Message, lobby: Room, alice: Account) -> None:
    mute_for(lobby, alice)
    with pytest.raises(services.Refused, match=r"You're muted in this room until .*, so you can't edit"):
        services.edit_message(alice, message, "sneaky")
    lobby.mutes.all().delete()
    lobby.is_locked = True
    lobby.save()
    with pytest.raises(services.Refused, match="This room is locked: only moderators can edit"):
        services.edit_message(alice, message, "sneaky")
    assert Message.objects.get().body == "see you at **9**"


def test_edits_are_rate_limited_per_user(message: Message, alice: Account, settings) -> None:
    settings.CHAT_EDITS_PER_USER = 2
    services.edit_message(alice, message, "one")
    services.edit_message(alice, message, "two")

    with pytest.raises(
        services.Refused, match=r"You're editing messages too fast: you can edit again in \d+"
    ):
        services.edit_message(alice, message, "three")


def test_deleting_erases_the_text_and_every_version_but_reports_keep_theirs(
    message: Message, alice: Account, bob: Account
) -> None:
    report = moderation.report_message(bob, message, "rude")
    services.edit_message(alice, message, "edited after the report")

    services.delete_own_message(alice, message)

    stored = Message.objects.get()
    assert (stored.body, stored.body_html) == ("", "") and stored.deleted_at is not None
    assert not MessageVersion.objects.exists()
    report = Report.objects.get(pk=report.pk)
    assert report.reported_body == "see you at **9**" and report.resolved_at is None


def test_a_removed_or_deleted_message_cannot_be_changed(
    message: Message, lobby: Room, alice: Account
) -> None:
    moderation.remove_message(make_moderator(lobby, "mona"), message)
    message.refresh_from_db()
    with pytest.raises(services.Refused, match="deleted or removed"):
        services.edit_message(alice, message, "back again")
    with pytest.raises(services.Refused, match="deleted or removed"):
        services.delete_own_message(alice, message)
    assert Message.objects.get().body == "see you at **9**"  # a removal keeps it for the audit


def test_a_muted_author_may_still_delete(message: Message, lobby: Room, alice: Account) -> None:
    mute_for(lobby, alice)

    services.delete_own_message(alice, message)

    assert Message.objects.get().deleted_at is not None
