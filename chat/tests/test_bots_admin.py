"""Staff make bots in the admin: the key is shown once and kept only as a hash, a reset ends the
old key at once, rooms given are memberships, and a deleted bot's account stays disabled."""

import hashlib
import re

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django.test import Client

from chat import bots
from chat.models import Bot, Membership, Message, Room
from chat.standing import Account, standing
from chat.tests.support import client_for, make_staff

KEY = re.compile(r"parley_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


def create_in_admin(staff_client: Client, name: str, rooms: list[Room], webhook_url: str = "") -> str:
    answer = staff_client.post(
        "/admin/chat/bot/add/",
        {"name": name, "initial": "c", "rooms": [room.pk for room in rooms], "webhook_url": webhook_url},
    )
    assert answer.status_code == 200, answer.content
    assert "no-store" in answer["Cache-Control"]
    found = KEY.search(answer.content.decode())
    assert found, answer.content
    return found.group(0)


def test_staff_create_a_bot_and_see_its_key_once(lobby: Room, other_room: Room) -> None:
    staff = client_for(make_staff())
    private = Room.objects.create(slug="ops", name="Ops", is_public=False)

    key = create_in_admin(staff, "ci", [lobby, private], "https://hooks.example.com/ci")

    bot = Bot.objects.select_related("account").get()
    _, key_id, secret = key.split("_", 2)
    assert bot.key_id == key_id and bot.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(Bot.objects.values()))  # only the hash is stored
    assert not bot.account.has_usable_password() and bot.initial == "C"
    assert bot.webhook_url == "https://hooks.example.com/ci" and len(bot.webhook_secret) == 64
    assert set(Membership.objects.filter(user=bot.account).values_list("room__slug", flat=True)) == {
        "lobby",
        "ops",
    }
    assert bots.authenticate(f"Bearer {key}") == bot
    # The list shows it, its rooms and the start of its key, never the secret again.
    listing = staff.get("/admin/chat/bot/").content.decode()
    assert "ci" in listing and "#lobby, #ops" in listing and f"parley_{key_id}_…" in listing
    assert (
        secret not in listing
        and secret not in staff.get(f"/admin/chat/bot/{bot.pk}/change/").content.decode()
    )


def test_a_bots_name_follows_the_rules_for_peoples_names(alice: Account) -> None:
    staff = client_for(make_staff())

    for name in ("Alice", "a1ice", "ci bot", "ünicode"):
        answer = staff.post("/admin/chat/bot/add/", {"name": name, "initial": "x"})
        assert answer.status_code == 200 and b"parley_" not in answer.content, name
    assert not Bot.objects.exists()


def test_resetting_a_key_in_the_admin_ends_the_old_one_at_once(lobby: Room) -> None:
    staff = client_for(make_staff())
    old = create_in_admin(staff, "ci", [lobby])
    bot = Bot.objects.get()

    answer = staff.post(
        "/admin/chat/bot/", {"action": "reset_keys", "_selected_action": [bot.pk], "index": 0}, follow=True
    )

    new = KEY.search(answer.content.decode())
    assert new and new.group(0) != old
    assert bots.authenticate(f"Bearer {old}") is None
    assert bots.authenticate(f"Bearer {new.group(0)}") == bot


def test_taking_a_room_away_in_the_admin_ends_the_membership(lobby: Room, other_room: Room) -> None:
    staff = client_for(make_staff())
    create_in_admin(staff, "ci", [lobby, other_room])
    bot = Bot.objects.get()

    answer = staff.post(
        f"/admin/chat/bot/{bot.pk}/change/", {"name": "ci", "initial": "C", "rooms": [other_room.pk]}
    )

    assert answer.status_code == 302, answer.content
    assert list(Membership.objects.filter(user=bot.account).values_list("room__slug", flat=True)) == [
        "kitchen"
    ]


def test_a_deleted_bot_keeps_its_messages_and_its_account_stays_disabled(lobby: Room) -> None:
    bot, key = bots.create("ci")
    bots.set_rooms(bot, [lobby])
    posted = bots.post(lobby, bot, standing(lobby, bot.account), "last words")
    assert isinstance(posted, Message)

    bots.retire(bot)

    account = Account.objects.get(username="ci")
    assert not account.is_active and Message.objects.filter(author=account).count() == 1
    assert bots.authenticate(f"Bearer {key}") is None


def test_no_session_can_be_made_for_a_bot_even_bypassing_the_login_form(lobby: Room) -> None:
    bot, _ = bots.create("ci")
    bot.account.set_password("correct horse battery")
    bot.account.save()
    client = Client()

    with pytest.raises(PermissionDenied):
        client.login(username="ci", password="correct horse battery")  # the right password
    with pytest.raises(PermissionDenied):
        client.force_login(bot.account)  # what any code calling django.contrib.auth.login does
    assert not Session.objects.exists()
    assert client.get("/settings/").status_code == 302  # still signed out: sent to the login page


def test_a_bots_post_asks_the_database_what_a_persons_post_asks(lobby: Room, alice: Account) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import services

    bot, key = bots.create("ci")
    bots.set_rooms(bot, [lobby])
    services.post_message(lobby, alice, {"message": "warm up"})  # first-use lookups out of the way
    person_standing = standing(lobby, alice)
    with CaptureQueriesContext(connection) as person:
        services.post_message(lobby, alice, {"message": "a person's post"}, viewer=person_standing)
    found = bots.authenticate(f"Bearer {key}")
    assert found is not None
    where = bots.room_for(found, "lobby")
    assert not isinstance(where, bots.Refusal)
    room, viewer = where
    with CaptureQueriesContext(connection) as bot_post:
        posted = bots.post(room, found, viewer, "a bot's post")

    assert isinstance(posted, Message)
    # The same queries as a person's post: slow mode and the flood limit are post_message's to
    # count. Finding the bot (key) and its room cost what a page's room-and-standing read costs,
    # plus one query each (outside this count).
    assert len(bot_post) == len(person), [query["sql"] for query in bot_post]


def test_a_bots_name_carries_its_badge_in_quotes_of_it_and_in_search_hits(
    lobby: Room, alice: Account
) -> None:
    from chat import fragments, services
    from chat.standing import Role

    bot, _ = bots.create("ci")
    bots.set_rooms(bot, [lobby])
    posted = bots.post_in(lobby, bot, "Build 7 passed")
    assert isinstance(posted, Message)
    services.post_message(lobby, alice, {"message": "thanks, merging", "reply_to": str(posted.pk)})
    reply = Message.objects.get(body="thanks, merging")
    badge = '<span class="bot-badge">bot</span>'
    quote = re.compile(r'<a class="quote".*?</a>', re.S)

    live = quote.search(fragments.message_html(reply))  # as the post is broadcast
    assert live and "ci" in live.group(0) and badge in live.group(0)
    replayed = quote.search(fragments.history_html(lobby, Role.MEMBER))  # as a page or reconnect shows it
    assert replayed and badge in replayed.group(0)
    hits = client_for(alice).get("/search/", {"q": "build"}).content.decode()
    assert "Build 7 passed" in hits.replace("<mark>", "").replace("</mark>", "") and badge in hits
    person_hits = client_for(alice).get("/search/", {"q": "merging"}).content.decode()
    assert "merging" in person_hits and badge not in person_hits
