"""The pages a browser loads: room list, room page, older history, accounts."""

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from chat.models import Message, Room
from chat.standing import Account
from chat.tests.support import add_messages, message_ids, present

pytestmark = pytest.mark.django_db


def messages_block(html: str) -> str:
    """The inside of <div id="messages">, which ends where the message composer area begins."""
    start = html.index('id="messages"')
    return html[start : html.index('id="chat-notice"')]


def room_card(html: str, slug: str) -> str:
    match = re.search(rf'<a class="card room-card" href="/rooms/{slug}/">(.*?)</a>', html, re.S)
    assert match, f"no card for {slug}"
    return match.group(1)


# Room list --------------------------------------------------------------------------------


def test_room_list_shows_each_room_with_how_many_are_online(
    client: Client, lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    present(lobby, alice, "a1")
    present(lobby, alice, "a2")
    present(lobby, None, "g1")
    present(other_room, bob, "b1", age_seconds=3600)

    html = client.get("/").content.decode()

    assert "# Lobby" in room_card(html, "lobby")
    assert "2 online" in room_card(html, "lobby")
    assert "# Kitchen" in room_card(html, "kitchen")
    assert "0 online" in room_card(html, "kitchen")


# Room page --------------------------------------------------------------------------------


def test_room_page_shows_the_last_50_messages_oldest_at_top(
    client: Client, lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 60)

    response = client.get("/rooms/lobby/")

    assert response.status_code == 200
    assert message_ids(messages_block(response.content.decode())) == [m.pk for m in stored[10:]]


def test_room_page_offers_older_messages_and_the_link_returns_the_next_page(
    client: Client, lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 60)
    html = client.get("/rooms/lobby/").content.decode()
    link = re.search(r'<a[^>]*hx-get="([^"]+)"[^>]*>Load older messages</a>', html)
    assert link, "no 'Load older messages' control on the page"
    assert link.group(1) == f"/rooms/lobby/messages/?before={stored[10].pk}"

    older = client.get(link.group(1))

    assert older.status_code == 200
    older_ids = message_ids(older.content.decode())
    assert older_ids == [m.pk for m in stored[:10]]
    assert not set(older_ids) & set(message_ids(html))
    assert "This is the start of #Lobby." in older.content.decode()
    assert "Load older messages" not in older.content.decode()


def test_older_messages_page_links_further_back_when_there_is_more(
    client: Client, lobby: Room, alice: Account
) -> None:
    stored = add_messages(lobby, alice, 120)

    older = client.get(f"/rooms/lobby/messages/?before={stored[70].pk}").content.decode()

    assert message_ids(older) == [m.pk for m in stored[20:70]]
    assert f'hx-get="/rooms/lobby/messages/?before={stored[20].pk}"' in older


def test_room_with_few_messages_says_it_is_the_start(client: Client, lobby: Room) -> None:
    html = client.get("/rooms/lobby/").content.decode()

    assert "This is the start of #Lobby." in html
    assert "Load older messages" not in html


@pytest.mark.parametrize("query", ["", "?before=", "?before=abc", "?before=1.5"])
def test_older_messages_without_a_usable_before_is_a_bad_request(
    client: Client, lobby: Room, query: str
) -> None:
    response = client.get(f"/rooms/lobby/messages/{query}")

    assert response.status_code == 400
    assert "?before=<id>" in response.content.decode()


@pytest.mark.parametrize("path", ["/rooms/nowhere/", "/rooms/nowhere/messages/?before=5"])
def test_unknown_room_is_not_found(client: Client, db: None, path: str) -> None:
    assert client.get(path).status_code == 404


def test_anonymous_visitor_reads_but_is_asked_to_sign_in_to_post(
    client: Client, lobby: Room, alice: Account
) -> None:
    Message.objects.create(room=lobby, author=alice, body="welcome, reader")

    html = client.get("/rooms/lobby/").content.decode()

    assert "welcome, reader" in html
    assert "Sign in to post" in html
    assert 'href="/accounts/login/?next=/rooms/lobby/"' in html
    assert "ws-send" not in html
    assert '<input type="text" name="message"' not in html


def test_signed_in_user_gets_the_websocket_message_form(client: Client, lobby: Room, alice: Account) -> None:
    client.force_login(alice)

    html = client.get("/rooms/lobby/").content.decode()

    form = re.search(r'<form id="message-form"[^>]*>(.*?)</form>', html, re.S)
    assert form, "no message form on the page"
    assert "ws-send" in form.group(0).split(">", 1)[0]
    assert 'name="message"' in form.group(1)
    assert 'ws-connect="/ws/rooms/lobby/"' in html
    assert "Sign in to post" not in html


def test_html_in_a_message_is_shown_as_text(client: Client, lobby: Room, alice: Account) -> None:
    Message.objects.create(room=lobby, author=alice, body='<script>alert("hi")</script><b>bold</b>')

    html = client.get("/rooms/lobby/").content.decode()

    # Quotes need no escaping in text: the sanitizer escapes only what could start markup.
    assert '&lt;script&gt;alert("hi")&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;' in html
    assert "<b>bold</b>" not in html


def test_room_page_lists_who_is_online(client: Client, lobby: Room, alice: Account) -> None:
    present(lobby, alice, "a1")
    present(lobby, None, "g1")

    html = client.get("/rooms/lobby/").content.decode()

    members = html[html.index('<aside id="members"') : html.index("</aside>")]
    assert '<span class="member-name">alice</span>' in members
    assert "and 1 guest reading" in members


# Accounts ---------------------------------------------------------------------------------


def test_signup_creates_an_account_and_signs_in(client: Client, django_user_model, lobby: Room) -> None:
    response = client.post(
        "/accounts/signup/?next=/rooms/lobby/",
        {
            "username": "dora",
            "password1": "a long enough passphrase",
            "password2": "a long enough passphrase",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/rooms/lobby/"
    assert django_user_model.objects.filter(username="dora").exists()
    page = client.get("/rooms/lobby/").content.decode()
    assert '<span class="whoami">dora</span>' in page
    assert '<form id="message-form"' in page


def test_signup_does_not_redirect_to_another_site(client: Client, db: None) -> None:
    response = client.post(
        "/accounts/signup/?next=https://evil.example/",
        {
            "username": "dora",
            "password1": "a long enough passphrase",
            "password2": "a long enough passphrase",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_signup_with_mismatched_passwords_shows_the_form_again(
    client: Client, django_user_model, db: None
) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "a long enough passphrase", "password2": "something else"},
    )

    assert response.status_code == 200
    assert "Create an account" in response.content.decode()
    assert not django_user_model.objects.filter(username="dora").exists()


def test_login_with_username_and_password(client: Client, alice: Account, lobby: Room) -> None:
    assert client.get("/accounts/login/").status_code == 200

    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "correct horse battery", "next": "/rooms/lobby/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/rooms/lobby/"
    assert '<span class="whoami">alice</span>' in client.get("/").content.decode()


def test_login_with_a_wrong_password_is_refused(client: Client, alice: Account) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "whoami" not in client.get("/").content.decode()


def test_logout_needs_a_post(client: Client, alice: Account) -> None:
    client.force_login(alice)

    assert client.get("/accounts/logout/").status_code == 405
    assert '<span class="whoami">alice</span>' in client.get("/").content.decode()

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert "whoami" not in client.get("/").content.decode()


def test_page_offers_logout_as_a_post_form(client: Client, alice: Account) -> None:
    client.force_login(alice)

    html = client.get("/").content.decode()

    assert '<form method="post" action="/accounts/logout/">' in html


@pytest.mark.django_db(transaction=True)
def test_migrations_create_the_lobby() -> None:
    """Migration 0002 creates the Lobby on a fresh database (replayed here from 0001)."""
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", "0001_initial")])
    executor.loader.project_state(("chat", "0001_initial")).apps.get_model(
        "chat", "Room"
    ).objects.all().delete()
    executor.loader.build_graph()

    executor.migrate([("chat", "0002_lobby")])

    historical_room = executor.loader.project_state(("chat", "0002_lobby")).apps.get_model("chat", "Room")
    lobby = historical_room.objects.get(slug="lobby")
    assert lobby.name == "Lobby"
    assert lobby.description == "Say hello. Everyone starts here."
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
