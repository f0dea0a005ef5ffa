"""Notification levels per room and snooze (chat/involvement.py): what each level counts on the room
list and in its title, first render and live; who is emailed; the control on the list and in the
room's header; and what a post and a list socket cost."""

import asyncio
import http.client
import re
from datetime import timedelta

import pytest
import websockets
from channels.db import database_sync_to_async
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from chat import involvement, mentionmail, services
from chat.models import Involvement, MentionEmails, Room
from chat.standing import Account
from chat.tests.support import (
    HISTORY,
    ListOpener,
    SocketOpener,
    client_for,
    drain,
    get_page,
    make_member,
    mention_counts,
    private_room,
    receive_until,
    signed_in_session_in,
    unread_counts,
)
from chat.tests.test_consumers_unread import badge, title
from testsupport.servers import DaphneServer, manage

Level = Involvement.Level


def post(room: Room, author: Account, text: str) -> None:
    assert services.post_message(room, author, {"message": text}).message is not None


def control_level(html: str, room: Room) -> str:
    """The level a room's control shows: its data-level, and the one button pressed agrees."""
    found = re.search(rf'<div id="level-{room.pk}" class="level-control" data-level="([a-z]+)"', html)
    assert found, f"no level control for {room} in the page"
    control = html[found.start() : html.index("</details>", found.start())]
    pressed = re.findall(r'value="([a-z]+)" aria-pressed="true"', control)
    assert pressed == [found[1]], f"pressed {pressed}, shown {found[1]}"
    return found[1]


def tab_id(frame: str) -> str:
    """The id a page's socket gives its page on connect, which the level control posts."""
    found = re.search(
        r'<input type="hidden" id="tab-id" name="tab" value="([0-9a-f]+)" hx-swap-oob="true">', frame
    )
    assert found, f"no tab id in {frame!r}"
    return found[1]


def page_title(html: str) -> str:
    found = re.search(r'<title id="page-title">([^<]*)</title>', html)
    assert found
    return found[1]


# Counts on the room list, first render ----------------------------------------------------------


def test_each_level_counts_what_it_says_on_the_list_and_in_the_title(
    lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account, settings
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 100  # eight posts in a moment
    third = Room.objects.create(slug="third", name="Third")
    fourth = Room.objects.create(slug="fourth", name="Fourth")
    for room in (lobby, other_room, third, fourth):
        post(room, alice, "plain news")
        post(room, alice, "@bob news for you")
    involvement.set_level(bob, other_room, Level.MENTIONS)
    involvement.set_level(bob, third, Level.NOTHING)
    involvement.set_level(bob, fourth, Level.HIDDEN)

    page = get_page(client_for(bob), "/").html

    assert unread_counts(page) == {"Lobby": "2 new"}  # Everything, the default
    assert mention_counts(page) == {"Lobby": "1 mention", other_room.name: "1 mention", "Fourth": "1 mention"}
    assert page_title(page) == "(4) Rooms · Parley"  # 2 in the lobby, a mention in each of two more
    assert [control_level(page, room) for room in (lobby, other_room, third, fourth)] == [
        "everything",
        "mentions",
        "nothing",
        "hidden",
    ]
    # Others' lists are theirs: carol still counts everything everywhere.
    assert unread_counts(get_page(client_for(carol), "/").html) == {
        name: "2 new" for name in ("Lobby", other_room.name, "Third", "Fourth")
    }


def test_the_default_is_everything_for_rooms_and_direct_messages(lobby: Room, alice: Account) -> None:
    assert involvement.level_of(alice, lobby) == Level.EVERYTHING
    assert involvement.levels_by_room(alice) == {}
    involvement.set_level(alice, lobby, Level.NOTHING)
    involvement.set_level(alice, lobby, Level.HIDDEN)  # one row per person and room, replaced
    assert involvement.level_of(alice, lobby) == Level.HIDDEN
    assert involvement.levels_by_room(alice) == {lobby.pk: Level.HIDDEN}


def test_choosing_a_level_from_the_list_stores_it_and_shows_it_at_once(
    lobby: Room, alice: Account, bob: Account
) -> None:
    post(lobby, alice, "one")
    bobs = client_for(bob)
    assert unread_counts(get_page(bobs, "/").html) == {"Lobby": "1 new"}
    assert get_page(bobs, "/").cached

    plain = bobs.post("/rooms/lobby/notifications/", {"level": "nothing"}, headers={"Referer": "/"})
    assert plain.status_code == 302 and plain["Location"] == "/"
    page = get_page(bobs, "/")
    assert not page.cached and unread_counts(page.html) == {} and control_level(page.html, lobby) == "nothing"

    htmx = bobs.post("/rooms/lobby/notifications/", {"level": "mentions"}, headers={"HX-Request": "true"})
    answer = htmx.content.decode()
    assert htmx.status_code == 200 and control_level(answer, lobby) == "mentions"
    assert '<details class="level-menu" open>' in answer  # stays open on the button just pressed
    assert 'name="csrfmiddlewaretoken"' in answer  # a real form, also without htmx


def test_the_level_control_refuses_what_it_should(lobby: Room, alice: Account, bob: Account) -> None:
    secret = private_room()
    assert client_for(bob).post("/rooms/lobby/notifications/", {"level": "loud"}).status_code == 400
    assert client_for(bob).post("/rooms/secret/notifications/", {"level": "nothing"}).status_code == 404
    assert client_for(bob).get("/rooms/lobby/notifications/").status_code == 405
    visitor = client_for(None).post("/rooms/lobby/notifications/", {"level": "nothing"})
    assert visitor.status_code == 302 and "/accounts/login/" in visitor["Location"]
    assert not Involvement.objects.exists()
    make_member(secret, bob)
    assert client_for(bob).post("/rooms/secret/notifications/", {"level": "nothing"}).status_code == 302


# Live: the list socket and the room socket -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_list_socket_counts_by_level_and_follows_a_change_live(
    open_list: ListOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    set_level = database_sync_to_async(involvement.set_level)
    send = database_sync_to_async(post)
    await send(lobby, alice, "before")
    await set_level(bob, lobby, Level.MENTIONS)
    tabs = [await open_list(bob), await open_list(bob)]
    first_frames = [await receive_until(tab, "page-title") for tab in tabs]
    assert all(f"unread-{lobby.pk}" not in frame for frame in first_frames)  # nothing counted
    first_tab = tab_id(first_frames[0])

    await send(lobby, alice, "not for bob")
    assert await drain(tabs[0]) == []  # at Mentions a plain message changes nothing shown: no frame
    await send(lobby, alice, "@bob for bob")
    frame = await receive_until(tabs[0], f"unread-{lobby.pk}")
    assert badge(frame, lobby) == "1 mention" and title(frame) == "(1) Rooms · Parley"

    await set_level(bob, lobby, Level.EVERYTHING)  # from a third tab, or the room's header
    for tab in tabs:
        frame = await receive_until(tab, f'id="level-{lobby.pk}"')
        assert control_level(frame, lobby) == "everything"
        # The socket kept every count: all three messages show at once, no query asked.
        assert badge(frame, lobby) == "3 new1 mention" and title(frame) == "(3) Rooms · Parley"

    # Chosen on the first tab: it has the answer to its post, so only the other gets the control.
    await set_level(bob, lobby, Level.MENTIONS, from_tab=first_tab)
    own, other = [await receive_until(tab, f"unread-{lobby.pk}") for tab in tabs]
    assert f'id="level-{lobby.pk}"' not in own and control_level(other, lobby) == "mentions"
    assert badge(own, lobby) == badge(other, lobby) == "1 mention"

    await set_level(bob, lobby, Level.NOTHING)
    frame = await receive_until(tabs[1], f'id="level-{lobby.pk}"')
    assert badge(frame, lobby) == "" and title(frame) == "Rooms · Parley"


@pytest.mark.django_db(transaction=True)
async def test_the_room_header_gets_the_viewers_control_on_connect_and_live(
    open_socket: SocketOpener, lobby: Room, bob: Account, alice: Account
) -> None:
    await database_sync_to_async(involvement.set_level)(bob, lobby, Level.HIDDEN)
    bobs = await open_socket(user=bob, settle=False)
    history = await receive_until(bobs, HISTORY)
    assert control_level(history, lobby) == "hidden"
    this_tab = tab_id(history)
    alices = await open_socket(user=alice, settle=False)
    assert control_level(await receive_until(alices, HISTORY), lobby) == "everything"
    await drain(bobs)
    await drain(alices)

    await database_sync_to_async(involvement.set_level)(bob, lobby, Level.MENTIONS)

    assert control_level(await receive_until(bobs, f'id="level-{lobby.pk}"'), lobby) == "mentions"
    assert await drain(alices) == []  # one person's level is theirs alone

    # Chosen in this page's header: its answer shows it; the socket sends no second copy.
    await database_sync_to_async(involvement.set_level)(bob, lobby, Level.NOTHING, this_tab)
    assert await drain(bobs) == []
    assert await database_sync_to_async(involvement.level_of)(bob, lobby) == Level.NOTHING


def test_the_room_page_itself_is_the_same_for_everyone(lobby: Room, alice: Account, bob: Account) -> None:
    """The room page is cached per role: the control comes by socket into an empty slot."""
    involvement.set_level(bob, lobby, Level.NOTHING)
    alices, bobs = get_page(client_for(alice), "/rooms/lobby/"), get_page(client_for(bob), "/rooms/lobby/")
    slot = f'<div id="level-{lobby.pk}" class="level-control"></div>'
    assert slot in alices.html and slot in bobs.html and bobs.cached


# Emails -----------------------------------------------------------------------------------------


def with_confirmed_email(user: Account) -> Account:
    user.email = f"{user.username}@example.com"
    user.save()
    mentionmail.confirm(user)
    return user


def mention_emails_to(room: Room, author: Account, named: Account) -> list[str]:
    mail.outbox.clear()
    post(room, author, f"@{named.username} look")
    return [address for email in mail.outbox for address in email.to]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("level", "emailed"),
    [(Level.EVERYTHING, True), (Level.MENTIONS, True), (Level.NOTHING, False), (Level.HIDDEN, False)],
)
def test_mention_emails_follow_the_level(
    lobby: Room, alice: Account, bob: Account, level: str, emailed: bool, settings
) -> None:
    settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS = 1  # each post may email again
    with_confirmed_email(bob)
    involvement.set_level(bob, lobby, level)
    assert mention_emails_to(lobby, alice, bob) == (["bob@example.com"] if emailed else [])


@pytest.mark.django_db(transaction=True)
def test_snoozed_people_get_no_email_until_it_ends_by_itself(
    lobby: Room, other_room: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_confirmed_email(bob)
    with_confirmed_email(carol)
    involvement.snooze(bob, timezone.now() + timedelta(hours=1))

    assert mention_emails_to(lobby, alice, bob) == []
    assert mention_emails_to(lobby, alice, carol) == ["carol@example.com"]  # only bob snoozed

    # An hour later (the stored time passed): emails again, with no job having run.
    MentionEmails.objects.filter(user=bob).update(snoozed_until=timezone.now() - timedelta(seconds=1))
    assert involvement.snoozed_until(bob) is None
    assert mention_emails_to(other_room, alice, bob) == ["bob@example.com"]


@pytest.mark.django_db(transaction=True)
def test_a_post_costs_no_more_queries_whatever_the_levels_and_snoozes(
    lobby: Room, alice: Account, bob: Account, carol: Account
) -> None:
    with_confirmed_email(bob)
    with_confirmed_email(carol)

    def queries_of_a_post(text: str = "@bob @carol look") -> int:
        with CaptureQueriesContext(connection) as captured:
            post(lobby, alice, text)
        return len(captured)

    queries_of_a_post()  # both emailed: the next post within the window emails nobody either way
    before = queries_of_a_post()
    assert queries_of_a_post("@bob alone") == before  # not one query per person named
    involvement.set_level(bob, lobby, Level.HIDDEN)
    involvement.snooze(carol, timezone.now() + timedelta(hours=1))
    assert queries_of_a_post() == before


# Snooze on the settings page and the room list ---------------------------------------------------


def test_snoozing_from_settings_shows_on_the_list_with_resume(lobby: Room, bob: Account) -> None:
    bobs = client_for(bob)
    assert "Do not disturb" in bobs.get("/settings/").content.decode()
    assert "Notifications snoozed" not in get_page(bobs, "/").html

    answer = bobs.post("/settings/snooze/", {"snooze": "hour"})
    assert answer.status_code == 302 and answer["Location"] == "/settings/"
    until = involvement.snoozed_until(bob)
    assert until is not None and timedelta(minutes=59) < until - timezone.now() <= timedelta(hours=1)
    shown = timezone.localtime(until).strftime("%H:%M")
    assert f"Notifications snoozed until {shown}" in get_page(bobs, "/").html
    assert "<strong>Snoozed</strong>" in bobs.get("/settings/").content.decode()

    resumed = bobs.post("/settings/snooze/", {"resume": "1", "next": "/"})
    assert resumed.status_code == 302 and resumed["Location"] == "/"
    assert involvement.snoozed_until(bob) is None
    assert "Notifications snoozed" not in get_page(bobs, "/").html


def test_snooze_until_tomorrow_morning_or_a_chosen_time(bob: Account) -> None:
    bobs = client_for(bob)
    bobs.post("/settings/snooze/", {"snooze": "morning"})
    stored = involvement.snoozed_until(bob)
    assert stored is not None
    until = timezone.localtime(stored)
    assert (until.hour, until.minute) == (8, 0)
    assert until.date() == timezone.localtime().date() + timedelta(days=1)

    chosen = timezone.localtime() + timedelta(days=2)
    bobs.post("/settings/snooze/", {"snooze": "until", "until": chosen.strftime("%Y-%m-%dT%H:%M")})
    assert involvement.snoozed_until(bob) == chosen.replace(second=0, microsecond=0)

    past = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = bobs.post("/settings/snooze/", {"snooze": "until", "until": past})
    assert refused.status_code == 400 and "Choose a time in the future." in refused.content.decode()
    empty = bobs.post("/settings/snooze/", {"snooze": "until", "until": ""})
    assert empty.status_code == 400 and "Choose the date and time" in empty.content.decode()
    assert involvement.snoozed_until(bob) == chosen.replace(second=0, microsecond=0)  # unchanged


# Snooze, live on the open room lists -------------------------------------------------------------

LINE = '<form id="snooze-line"'
SNOOZED = "Notifications snoozed until"


def snooze_from_settings(user: Account, fields: dict[str, str]) -> None:
    """Press a snooze button (or Resume) on the settings page, as its plain form posts."""
    assert client_for(user).post("/settings/snooze/", fields).status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_snoozing_and_resuming_show_on_every_open_room_list_at_once(
    open_list: ListOpener, bob: Account, carol: Account
) -> None:
    bobs = [await open_list(bob), await open_list(bob)]
    carols = await open_list(carol)
    for tab in (*bobs, carols):
        await receive_until(tab, "page-title")

    await database_sync_to_async(snooze_from_settings)(bob, {"snooze": "hour"})

    until = await database_sync_to_async(involvement.snoozed_until)(bob)
    assert until is not None
    for tab in bobs:  # every tab of his, without a reload
        line = await receive_until(tab, LINE)
        assert f"{SNOOZED} {timezone.localtime(until):%H:%M}" in line and ">Resume</button>" in line
        assert "csrfmiddlewaretoken" not in line  # the page's own token, outside it, goes with it
    assert await drain(carols) == []  # his snooze, not hers

    await database_sync_to_async(snooze_from_settings)(bob, {"resume": "1"})

    for tab in bobs:
        line = await receive_until(tab, LINE)
        assert SNOOZED not in line and "Resume" not in line


@pytest.mark.django_db(transaction=True)
async def test_the_snooze_line_goes_by_itself_when_the_snooze_ends(
    open_list: ListOpener, bob: Account
) -> None:
    snooze = database_sync_to_async(involvement.snooze)
    await snooze(bob, timezone.now() + timedelta(seconds=1))
    tab = await open_list(bob)  # snoozed before the list opened: the page shows the line
    assert LINE not in await receive_until(tab, "page-title")

    ended = await receive_until(tab, LINE, timeout=5)  # nothing is sent when a snooze ends: the socket knows

    assert SNOOZED not in ended
    await snooze(bob, timezone.now() + timedelta(seconds=1))  # snoozed again while it is open
    assert SNOOZED in await receive_until(tab, LINE)
    assert SNOOZED not in await receive_until(tab, LINE, timeout=5)


def test_the_room_list_keeps_a_csrf_token_for_the_live_resume_form(bob: Account) -> None:
    page = get_page(client_for(bob), "/").html
    assert re.search(r'<form id="snooze-line" method="post" action="/settings/snooze/">\s*</form>', page)
    token = re.search(
        r'<input type="hidden" name="csrfmiddlewaretoken" value="(\w+)" form="snooze-line">', page
    )
    assert token and len(token[1]) == 64  # a real token, spliced into the cached page for this request


# Two daphne processes on one Redis ---------------------------------------------------------------

LOBBY_PK = "from chat.models import Room; print(Room.objects.get(slug='lobby').pk)"
CSRF_TOKEN = "levels" * 5 + "ok"  # 32 letters, as Django expects: the cookie and the header agree


def choose_level(server: DaphneServer, session: str, slug: str, level: str) -> int:
    """What a tab's control does: an htmx post of the level, with the session and the CSRF token."""
    return post_as(server, session, f"/rooms/{slug}/notifications/", f"level={level}", {"HX-Request": "true"})


def post_as(server: DaphneServer, session: str, path: str, body: str, headers: dict | None = None) -> int:
    """A form post from a signed-in tab, with the session and the CSRF token; its status."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "POST",
        path,
        body=body,
        headers={
            "Host": "127.0.0.1",
            "Cookie": f"sessionid={session}; csrftoken={CSRF_TOKEN}",
            "X-CSRFToken": CSRF_TOKEN,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        | (headers or {}),
    )
    status = connection.getresponse().status
    connection.close()
    return status


async def frame_with(socket: ClientConnection, marker: str, timeout: float = 8) -> str:
    async with asyncio.timeout(timeout):
        while marker not in (frame := str(await socket.recv())):
            pass
    return frame


async def changes_across_processes(a: DaphneServer, b: DaphneServer, session: str, lobby_pk: int) -> None:
    """A level, a snooze and a pause saved on process B show on the person's tabs on process A."""
    cookie = {"Cookie": f"sessionid={session}"}
    ws = a.url.replace("http", "ws")
    async with (
        websockets.connect(f"{ws}/ws/rooms/", origin=Origin(a.url), additional_headers=cookie) as room_list,
        websockets.connect(f"{ws}/ws/rooms/lobby/", origin=Origin(a.url), additional_headers=cookie) as room,
    ):
        await frame_with(room_list, "page-title")
        connected = await frame_with(room, f'id="level-{lobby_pk}"')
        assert 'data-level="everything"' in connected and 'class="live-mode"' in connected

        assert await asyncio.to_thread(choose_level, b, session, "lobby", "nothing") == 200
        assert await asyncio.to_thread(post_as, b, session, "/settings/snooze/", "snooze=hour") == 302
        # (Its answer, the settings page, needs static files this test site has not collected: what
        # shows on the socket below says it was saved.)
        await asyncio.to_thread(post_as, b, session, "/settings/", "live_updates=1&paused=on")

        # On process A, told through Redis.
        for socket in (room_list, room):
            assert 'data-level="nothing"' in await frame_with(socket, f'id="level-{lobby_pk}"')
        assert SNOOZED in await frame_with(room_list, LINE)
        assert 'class="live-mode paused"' in await frame_with(room, 'id="live-mode"')


def test_a_level_a_snooze_and_a_pause_saved_on_one_process_show_on_the_tabs_of_another(
    start_daphne, site_env, redis_server
):
    a = start_daphne(REDIS_URL=redis_server.url)
    b = start_daphne(REDIS_URL=redis_server.url)
    session = signed_in_session_in(site_env, "levels-two-processes")
    lobby_pk = int(manage(site_env, "shell", "-c", LOBBY_PK).split()[-1])
    asyncio.run(changes_across_processes(a, b, session, lobby_pk))


# The admin ----------------------------------------------------------------------------------------


def test_staff_find_and_change_levels_in_the_admin(
    staff: Account, lobby: Room, other_room: Room, bob: Account, carol: Account
) -> None:
    involvement.set_level(bob, lobby, Level.HIDDEN)
    involvement.set_level(carol, other_room, Level.MENTIONS)
    admin = client_for(staff)

    def listed(query: str) -> list[str]:
        page = admin.get(f"/admin/chat/involvement/{query}").content.decode()
        return sorted(re.findall(r'<th class="field-user[^"]*"><a href="[^"]+">(\w+)</a>', page))

    assert listed("") == ["bob", "carol"]
    assert listed("?level__exact=hidden") == ["bob"]
    assert listed("?q=carol") == ["carol"]
    assert listed(f"?q={other_room.name}") == ["carol"]

    # A change goes through chat.involvement (the person's open pages follow it); whom it is
    # about is fixed.
    row = Involvement.objects.get(user=bob)
    changed = admin.post(f"/admin/chat/involvement/{row.pk}/change/", {"level": "nothing"})
    assert changed.status_code == 302 and involvement.level_of(bob, lobby) == Level.NOTHING
    deleted = admin.post(f"/admin/chat/involvement/{row.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not Involvement.objects.filter(user=bob).exists()


def emails_written_to(folder, address: str) -> int:
    """How many emails the file backend wrote to `address` (one file may hold several)."""
    return sum(path.read_text().count(f"To: {address}") for path in folder.iterdir())


@pytest.mark.django_db(transaction=True)
def test_the_file_backends_mention_emails_follow_the_level_and_the_snooze(
    lobby: Room, alice: Account, bob: Account, settings, tmp_path
) -> None:
    """As an operator's file mail backend sees them: written for Everything, not for Nothing, not
    while snoozed, and again once the snooze is over."""
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(tmp_path)},
        }
    }
    with_confirmed_email(bob)

    def mention(text: str) -> None:
        cache.clear()  # the once-per-window count forgotten: each mention may email
        post(lobby, alice, f"@{bob.username} {text}")

    mention("first")
    assert emails_written_to(tmp_path, "bob@example.com") == 1

    involvement.set_level(bob, lobby, Level.NOTHING)
    mention("second")
    assert emails_written_to(tmp_path, "bob@example.com") == 1

    involvement.set_level(bob, lobby, Level.EVERYTHING)
    involvement.snooze(bob, timezone.now() + timedelta(hours=1))
    mention("third")
    assert emails_written_to(tmp_path, "bob@example.com") == 1

    involvement.resume(bob)
    mention("fourth")
    assert emails_written_to(tmp_path, "bob@example.com") == 2
