"""Email for missed mentions: who gets one, how often, what it says, the setting that stops it, and
the emailed link that confirms an address before anything else goes to it."""

import re
import time
from collections.abc import Iterator

import pytest
from django.core import mail
from django.test import Client

from chat import accounts, direct, mentionmail, services
from chat.models import MentionEmails, Room
from chat.standing import Account
from chat.tests.support import client_for, make_member, make_user, present, private_room, sign_up

pytestmark = pytest.mark.django_db(transaction=True)  # emails go after the commit


@pytest.fixture(autouse=True)
def empty_outbox() -> Iterator[None]:
    mail.outbox.clear()
    yield
    mail.outbox.clear()


def sent() -> list[mail.EmailMessage]:
    """Emails sent so far: each is a task, run here as it is queued (chat/tests/conftest.py's
    immediate backend); chat/tests/test_worker.py runs them in real workers."""
    return list(mail.outbox)


CONFIRM_SUBJECT = "Confirm your address for Parley's mention emails"


def mention_emails() -> list[mail.EmailMessage]:
    return [email for email in sent() if email.subject != CONFIRM_SUBJECT]


def confirmation_links() -> list[str]:
    """The path of each confirmation link sent so far, oldest first."""
    bodies = [str(email.body) for email in sent() if email.subject == CONFIRM_SUBJECT]
    return [re.findall(r"http://127.0.0.1:8000(/settings/confirm/\S+/)", body)[0] for body in bodies]


def with_email(user: Account, address: str = "") -> Account:
    """The account has an address its owner confirmed (as following the emailed link does)."""
    user.email = address or f"{user.username}@example.com"
    user.save()
    mentionmail.confirm(user)
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
    MentionEmails.objects.filter(user=dave).update(enabled=False)

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
    [link] = confirmation_links()
    client.post(link)
    services.post_message(lobby, alice, {"message": "@bob first"})
    assert [email.to for email in mention_emails()] == [["bob@example.org"]]

    client.post("/settings/", {"email": "bob@example.org"})  # the box unticked
    assert not MentionEmails.objects.get(user=bob).enabled
    services.post_message(Room.objects.create(slug="den", name="Den"), alice, {"message": "@bob second"})
    assert len(mention_emails()) == 1


def test_the_settings_page_refuses_a_bad_address_and_keeps_what_was_stored(bob: Account) -> None:
    with_email(bob)
    answer = client_for(bob).post("/settings/", {"email": "not an address", "enabled": ""})
    assert answer.status_code == 400
    assert "Enter a valid email address." in answer.text
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"
    assert MentionEmails.objects.get(user=bob).enabled  # the unticked box was not saved either
    assert sent() == []


def test_the_settings_page_needs_an_account(db: None) -> None:
    answer = client_for(None).get("/settings/")
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")


# Confirming the address ------------------------------------------------------------------------


def test_an_address_nobody_confirmed_gets_no_mention_email_only_a_link_without_anyones_text(
    lobby: Room, alice: Account, bob: Account
) -> None:
    client = client_for(bob)
    saved = client.post("/settings/", {"email": "stranger@example.net", "enabled": "on"})
    assert "Unconfirmed" in saved.text and "We sent a link to stranger@example.net" in saved.text

    services.post_message(lobby, alice, {"message": "@bob buy cheap watches at spam.example"})

    [email] = sent()
    assert email.to == ["stranger@example.net"] and email.subject == CONFIRM_SUBJECT
    assert "watches" not in email.body and "bob" not in email.body and "alice" not in email.body
    assert "Unconfirmed" in client.get("/settings/").text


def test_following_the_link_asks_then_confirms_and_mentions_are_emailed_from_then_on(
    lobby: Room, alice: Account, bob: Account
) -> None:
    client_for(bob).post("/settings/", {"email": "bob@example.org", "enabled": "on"})
    [link] = confirmation_links()

    owner = Client()  # the mailbox's owner, maybe not signed in where they read their email
    question = owner.get(link)
    assert question.status_code == 200 and "Confirm your address" in question.text
    assert "bob@example.org" in question.text
    services.post_message(lobby, alice, {"message": "@bob not yet"})
    assert mention_emails() == []  # opening the link (as a mail scanner does) confirms nothing

    answer = owner.post(link)
    assert answer.status_code == 200 and "Address confirmed" in answer.text
    assert (
        "<strong>Confirmed</strong>: mention emails go to this address."
        in client_for(bob).get("/settings/").text
    )
    services.post_message(Room.objects.create(slug="den", name="Den"), alice, {"message": "@bob now"})
    assert [email.to for email in mention_emails()] == [["bob@example.org"]]


def test_changing_the_address_however_it_is_changed_needs_a_new_confirmation(
    lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    with_email(bob)
    client = client_for(bob)
    client.post("/settings/", {"email": "bob@elsewhere.example", "enabled": "on"})
    assert [email.to for email in sent()] == [["bob@elsewhere.example"]]  # its link, nothing else
    services.post_message(lobby, alice, {"message": "@bob to the new address?"})
    assert mention_emails() == []

    Account.objects.filter(pk=bob.pk).update(email="bob@example.com")  # back, by the admin or SQL
    services.post_message(other_room, alice, {"message": "@bob to the old one?"})
    assert [email.to for email in mention_emails()] == [["bob@example.com"]]  # was confirmed, still is


def test_a_link_tells_why_it_cannot_be_used(bob: Account, settings) -> None:
    client = client_for(bob)
    client.post("/settings/", {"email": "bob@example.org", "enabled": "on"})
    [link] = confirmation_links()

    tampered = Client().post(link.replace("/confirm/", "/confirm/x"))
    assert tampered.status_code == 400 and "This link isn&#x27;t one we sent" in tampered.text

    Account.objects.filter(pk=bob.pk).update(email="bob@example.net")
    changed = Client().post(link)
    assert changed.status_code == 400 and "an address the account no longer uses" in changed.text

    Account.objects.filter(pk=bob.pk).update(email="bob@example.org")
    settings.CHAT_EMAIL_CONFIRMATION_MAX_AGE_SECONDS = 1
    time.sleep(2.1)
    expired = Client().post(link)
    assert expired.status_code == 400 and "This link has expired" in expired.text
    assert "Unconfirmed" in client.get("/settings/").text


def test_sending_the_link_again_is_limited_per_account_and_per_address(bob: Account, settings) -> None:
    settings.CHAT_CONFIRMATION_RESEND_SECONDS = 1
    client = client_for(bob)
    client.post("/settings/", {"email": "shared@example.org", "enabled": "on"})
    again = client.post("/settings/", {"resend": "1"})
    assert "We sent a link moments ago" in again.text
    assert len(sent()) == 1

    time.sleep(2.1)
    assert "We sent a link to shared@example.org" in client.post("/settings/", {"resend": "1"}).text
    assert len(sent()) == 2

    for name in ("carol", "dave", "erin", "frank"):  # accounts made to flood one mailbox
        client_for(make_user(name)).post("/settings/", {"email": "Shared@Example.org", "enabled": "on"})
    assert len(sent()) == settings.CHAT_CONFIRMATION_EMAILS_PER_ADDRESS == 5


def test_signing_up_with_an_address_sends_its_link(db: None) -> None:
    client = Client()
    passphrase = "a long enough passphrase"
    data = {
        "username": "newcomer",
        "email": "new@example.org",
        "password1": passphrase,
        "password2": passphrase,
    }
    assert client.post("/accounts/signup/", data).status_code == 302
    [email] = sent()
    assert email.to == ["new@example.org"] and email.subject == CONFIRM_SUBJECT
    assert client.post(confirmation_links()[0]).status_code == 200
    assert MentionEmails.objects.get(user__username="newcomer").confirmed_email == "new@example.org"

    sign_up("no-address")  # the address is optional
    assert len(sent()) == 1


# Several accounts on one address, and blocks ------------------------------------------------------


def test_several_accounts_on_one_address_get_one_email_per_room_and_window(
    lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_email(bob, "shared@example.org")
    with_email(carol, "Shared@example.org")
    services.post_message(lobby, alice, {"message": "@bob @carol both of you"})
    services.post_message(other_room, alice, {"message": "@carol just you"})
    services.post_message(other_room, alice, {"message": "@bob and you"})

    assert [email.body.splitlines()[2] for email in mention_emails()] == [
        "@bob @carol both of you",
        "@carol just you",
    ]


def test_someone_blocked_never_emails_the_person_who_blocked_them(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_email(bob)
    with_email(carol)
    direct.block(bob, alice)
    services.post_message(lobby, alice, {"message": "@bob @carol hello both"})
    assert [email.to for email in mention_emails()] == [["carol@example.com"]]


def test_without_the_cache_no_link_goes(bob: Account, unreachable_cache: None) -> None:
    """(The pages answer 503 themselves then; this is the count's own refusal, for any other caller.)"""
    with pytest.raises(accounts.Refused) as refused:
        accounts.start_confirmation_email(bob.pk, "bob@example.org")
    assert refused.value.status == 503 and refused.value.sentence == accounts.CONFIRMATION_STORE_DOWN
