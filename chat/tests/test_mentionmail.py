"""Email for missed mentions: who gets one, how often, what it says, and the setting that stops it."""

import time
from collections.abc import Iterator

import pytest
from django.core import mail

from chat import mentionmail, services
from chat.models import MentionEmails, Room
from chat.standing import Account
from chat.tests.support import client_for, make_member, make_user, present, private_room

pytestmark = pytest.mark.django_db(transaction=True)  # emails go after the commit


@pytest.fixture(autouse=True)
def empty_outbox() -> Iterator[None]:
    mail.outbox.clear()
    yield
    mentionmail.wait_until_sent()
    mail.outbox.clear()


def sent() -> list[mail.EmailMessage]:
    mentionmail.wait_until_sent()
    return list(mail.outbox)


def with_email(user: Account) -> Account:
    user.email = f"{user.username}@example.com"
    user.save()
    return user


def test_someone_named_while_away_gets_the_text_and_its_permalink(
    lobby: Room, alice: Account, bob: Account
) -> None:
    with_email(bob)
    message = services.post_message(lobby, alice, {"message": "@bob the <b>deploy</b> is done"}).message
    assert message is not None

    [email] = sent()
    assert email.to == ["bob@example.com"]
    assert email.subject == "alice mentioned you in #Lobby"
    assert "@bob the <b>deploy</b> is done" in email.body  # the text as typed, in a plain-text email
    assert f"http://127.0.0.1:8000/rooms/lobby/messages/{message.pk}/#message-{message.pk}" in email.body
    assert "http://127.0.0.1:8000/settings/" in email.body


def test_at_most_one_email_per_room_per_window_each_room_counted_apart(
    lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_email(bob)
    services.post_message(lobby, alice, {"message": "@bob one"})
    services.post_message(lobby, carol, {"message": "@bob two"})
    services.post_message(other_room, alice, {"message": "@bob elsewhere"})

    assert [email.body.splitlines()[2] for email in sent()] == ["@bob one", "@bob elsewhere"]


def test_the_window_is_a_setting(lobby: Room, alice: Account, bob: Account, settings) -> None:
    settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS = 0.5
    with_email(bob)
    services.post_message(lobby, alice, {"message": "@bob one"})
    assert len(sent()) == 1
    time.sleep(1.1)
    services.post_message(lobby, alice, {"message": "@bob two"})
    assert len(sent()) == 2


def test_nobody_with_the_room_open_without_an_address_or_who_turned_it_off_is_emailed(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_email(bob)
    present(lobby, bob, "bobs-tab")
    dave = with_email(make_user("dave"))
    make_user("erin")  # no address
    MentionEmails.objects.create(user=dave, enabled=False)

    services.post_message(lobby, alice, {"message": "@bob @carol @dave @erin hello"})

    assert sent() == []


def test_nobody_who_may_not_read_the_room_is_emailed(alice: Account, bob: Account) -> None:
    with_email(bob)
    secret = private_room()
    make_member(secret, alice)
    services.post_message(secret, alice, {"message": "@bob you can't see this"})
    assert sent() == []


def test_a_refused_post_sends_nothing(lobby: Room, alice: Account, bob: Account) -> None:
    with_email(bob)
    lobby.is_locked = True
    lobby.save()
    assert services.post_message(lobby, alice, {"message": "@bob locked out"}).message is None
    assert sent() == []


def test_the_settings_page_turns_the_emails_off_and_sets_the_address(
    lobby: Room, alice: Account, bob: Account
) -> None:
    client = client_for(bob)
    page = client.get("/settings/")
    assert page.status_code == 200
    assert "Email me when I&#x27;m mentioned while away" in page.text
    assert 'name="enabled" id="id_enabled" checked' in page.text  # on unless turned off

    saved = client.post("/settings/", {"email": "bob@example.org", "enabled": "on"})
    assert saved.status_code == 200 and "Saved." in saved.text
    services.post_message(lobby, alice, {"message": "@bob first"})
    assert [email.to for email in sent()] == [["bob@example.org"]]

    client.post("/settings/", {"email": "bob@example.org"})  # the box unticked
    assert not MentionEmails.objects.get(user=bob).enabled
    services.post_message(Room.objects.create(slug="den", name="Den"), alice, {"message": "@bob second"})
    assert len(sent()) == 1


def test_the_settings_page_refuses_a_bad_address_and_keeps_what_was_stored(bob: Account) -> None:
    with_email(bob)
    answer = client_for(bob).post("/settings/", {"email": "not an address", "enabled": ""})
    assert answer.status_code == 400
    assert "Enter a valid email address." in answer.text
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"
    assert not MentionEmails.objects.filter(user=bob).exists()


def test_the_settings_page_needs_an_account(db: None) -> None:
    answer = client_for(None).get("/settings/")
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")
