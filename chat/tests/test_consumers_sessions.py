"""An open socket acts for its user only while their session stands: signing out, deactivation, a new
password or a lost staff flag reach every open socket of that user at once, through real websockets."""

import asyncio
import contextlib
from datetime import timedelta

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat import broadcast, consumers, moderation
from chat.hub import hub
from chat.models import Message, Room
from chat.standing import ACCOUNT_DISABLED, PASSWORD_CHANGED, SIGNED_OUT, Account
from chat.tests.support import (
    FORM,
    HISTORY,
    MENU,
    MODERATION_PANEL,
    SESSION_ENDED,
    TYPING,
    TYPING_FRAME,
    SocketOpener,
    client_for,
    drain,
    make_staff,
    new_message,
    receive_close,
    receive_message_frame,
    receive_until,
    session_of,
    settle,
    stored_bodies,
    typing_text,
    ws_send_frame,
)
from testsupport.servers import manage

pytestmark = pytest.mark.django_db(transaction=True)


def html(text: str) -> str:
    return text.replace("'", "&#x27;")


def closed_with(frames: list[str], text: str) -> bool:
    """The page was told why: the notice, and the form replaced by the same sentence."""
    return any(html(text) in frame and 'id="chat-notice"' in frame for frame in frames) and any(
        'id="message-form" class="composer closed"' in frame for frame in frames
    )


@database_sync_to_async
def save_user(user: Account, **fields: object) -> None:
    """Change the account as the admin or a form does: a model save, with its signals."""
    stored = Account.objects.get(pk=user.pk)
    for name, value in fields.items():
        setattr(stored, name, value)
    stored.save()


# Signing out ----------------------------------------------------------------------------------


async def test_signing_out_closes_every_tab_of_that_browser_and_not_the_users_other_browsers(
    open_socket: SocketOpener, lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    browser = await database_sync_to_async(client_for)(alice)
    session = browser.cookies["sessionid"].value
    tabs = [
        await open_socket(user=alice, session=session),
        await open_socket(slug=other_room.slug, user=alice, session=session),
    ]
    phone, reader = await open_socket(user=alice), await open_socket(user=bob)
    await settle(*tabs, phone, reader)

    response = await database_sync_to_async(browser.post)("/accounts/logout/")

    assert response.status_code == 302
    for tab in tabs:
        frames, code = await receive_close(tab)
        assert closed_with(frames, SIGNED_OUT), frames
        assert code == SESSION_ENDED
    assert await phone.receive_nothing(timeout=0.2)
    await phone.send_to(text_data=ws_send_frame("still signed in on my phone"))
    await receive_message_frame(reader, "still signed in on my phone")


async def test_a_socket_whose_session_is_gone_posts_nothing_and_closes(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    stale, reader = await open_socket(user=alice), await open_socket(user=bob)
    await settle(stale, reader)
    # Gone without any signal: expired and cleared, or deleted by hand.
    await database_sync_to_async(Session.objects.all().delete)()

    await stale.send_to(text_data=ws_send_frame("who am I now?"))

    frames, code = await receive_close(stale)
    assert closed_with(frames, SIGNED_OUT), frames
    assert code == SESSION_ENDED
    assert await stored_bodies() == []
    assert await reader.receive_nothing(timeout=0.2)


@pytest.mark.parametrize("ended", ["expired", "deleted"])
async def test_a_typing_signal_on_a_socket_whose_session_ended_shows_nothing_and_closes(
    ended: str, open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    session = await database_sync_to_async(session_of)(alice)
    stale, reader = await open_socket(session=session), await open_socket(user=bob)
    await settle(stale, reader)
    # Ended without any signal: it ran out (or `clearsessions` took it), or was deleted in the admin.
    sessions = Session.objects.filter(session_key=session)
    if ended == "expired":
        await sessions.aupdate(expire_date=timezone.now() - timedelta(seconds=1))
    else:
        await sessions.adelete()

    await stale.send_to(text_data=TYPING_FRAME)

    frames, code = await receive_close(stale)
    assert closed_with(frames, SIGNED_OUT), frames
    assert code == SESSION_ENDED
    shown = [typing_text(frame) for frame in await drain(reader, quiet=1.0) if TYPING in frame]
    assert not any("alice" in line for line in shown), shown


async def test_a_flood_of_typing_signals_reads_the_session_once_per_interval(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, settings, monkeypatch
) -> None:
    settings.CHAT_TYPING_BROADCAST_SECONDS = 60
    checks: list[int] = []
    real_check = consumers.check_session

    def counted_check(user: Account, session_key: str | None) -> None:
        checks.append(user.pk)
        real_check(user, session_key)

    monkeypatch.setattr(consumers, "check_session", counted_check)
    typer, reader = await open_socket(user=alice), await open_socket(user=bob)
    await settle(typer, reader)

    for _ in range(20):
        await typer.send_to(text_data=TYPING_FRAME)

    assert typing_text(await receive_until(reader, TYPING)) == "alice is typing…"
    await drain(typer)
    assert checks == [alice.pk]


async def test_a_socket_of_a_signed_out_user_cannot_moderate(
    open_socket: SocketOpener, lobby: Room, moderator: Account, bob: Account
) -> None:
    message = await new_message(lobby, bob, "still here")
    browser = await database_sync_to_async(client_for)(moderator)
    session = browser.cookies["sessionid"].value
    stale = await open_socket(user=moderator, session=session)
    # The session ends without the signal reaching this socket (e.g. flushed by another process).
    await database_sync_to_async(Session.objects.filter(session_key=session).delete)()

    await stale.send_to(text_data=ws_send_frame(action="remove", message_id=str(message.pk)))

    _, code = await receive_close(stale)
    assert code == SESSION_ENDED
    assert (await database_sync_to_async(Message.objects.get)(pk=message.pk)).removed_at is None


# Deactivation and passwords -------------------------------------------------------------------


async def test_deactivating_a_user_closes_all_their_sockets_in_every_room(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    secret = await database_sync_to_async(Room.objects.create)(slug="secret", name="Secret", is_public=False)
    await database_sync_to_async(moderation.invite)(await database_sync_to_async(make_staff)(), secret, alice)
    sockets = [await open_socket(user=alice), await open_socket(slug="secret", user=alice)]
    other = await open_socket(user=bob)
    await settle(*sockets, other)

    await save_user(alice, is_active=False)

    for socket in sockets:
        frames, code = await receive_close(socket)
        assert closed_with(frames, ACCOUNT_DISABLED), frames
        assert code == SESSION_ENDED
    assert FORM not in "".join(await drain(other))


async def test_a_new_password_closes_the_users_sockets(
    open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    socket = await open_socket(user=alice)

    @database_sync_to_async
    def change_password() -> None:
        stored = Account.objects.get(pk=alice.pk)
        stored.set_password("a whole new passphrase")
        stored.save()

    await change_password()

    frames, code = await receive_close(socket)
    assert closed_with(frames, PASSWORD_CHANGED), frames
    assert code == SESSION_ENDED


async def test_a_password_set_in_the_admin_closes_the_users_sockets(
    open_socket: SocketOpener, lobby: Room, staff: Account, alice: Account
) -> None:
    socket = await open_socket(user=alice)
    admin = await database_sync_to_async(client_for)(staff)
    new_password = {"password1": "an admin-set passphrase 7", "password2": "an admin-set passphrase 7"}

    response = await database_sync_to_async(admin.post)(
        f"/admin/auth/user/{alice.pk}/password/", new_password | {"usable_password": "true"}
    )

    assert response.status_code == 302
    frames, code = await receive_close(socket)
    assert closed_with(frames, PASSWORD_CHANGED), frames
    assert code == SESSION_ENDED


async def test_signing_in_again_elsewhere_leaves_open_sockets_alone(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    socket, reader = await open_socket(user=alice), await open_socket(user=bob)
    await settle(socket, reader)

    # A sign-in saves last_login only.
    await database_sync_to_async(client_for)(alice)

    assert await socket.receive_nothing(timeout=0.3)
    await socket.send_to(text_data=ws_send_frame("still here"))
    await receive_message_frame(reader, "still here")


# Staff flag -----------------------------------------------------------------------------------


async def test_removing_the_staff_flag_downgrades_open_sockets_at_once(
    open_socket: SocketOpener, lobby: Room, staff: Account, moderator: Account, bob: Account
) -> None:
    await new_message(lobby, bob, "earlier")
    former_staff, mod_socket = await open_socket(user=staff), await open_socket(user=moderator)
    await settle(former_staff, mod_socket)

    await save_user(staff, is_staff=False, is_superuser=False)

    history = await receive_until(former_staff, HISTORY)
    assert "earlier" in history and MENU in history
    assert 'id="moderation" hx-swap-oob="delete"' in await receive_until(former_staff, "moderation")
    assert await receive_until(former_staff, FORM)
    # Moderator-only fragments no longer reach the socket; the room's news still does.
    await mod_socket.send_to(text_data=ws_send_frame(action="lock"))
    assert MODERATION_PANEL in await receive_until(mod_socket, MODERATION_PANEL)
    frames = await drain(former_staff, quiet=0.3)
    assert frames and not any(MODERATION_PANEL in frame for frame in frames), frames
    await former_staff.send_to(text_data=ws_send_frame(action="unlock"))
    assert html("Only this room's moderators can do that.") in await receive_until(
        former_staff, "chat-notice"
    )


async def test_removing_the_staff_flag_closes_a_private_room_the_user_does_not_belong_to(
    open_socket: SocketOpener, db: None, staff: Account
) -> None:
    await database_sync_to_async(Room.objects.create)(slug="secret", name="Secret", is_public=False)
    socket = await open_socket(slug="secret", user=staff)

    await save_user(staff, is_staff=False, is_superuser=False)

    frames, code = await receive_close(socket)
    assert any("This room is private." in frame for frame in frames), frames
    assert code == 4403


# Changes made without signals (a queryset update(), SQL, another service) ---------------------


async def test_the_heartbeat_closes_the_sockets_of_an_account_disabled_without_a_signal(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    stale, other = await open_socket(user=alice), await open_socket(user=bob)
    await settle(stale, other)
    await Account.objects.filter(pk=alice.pk).aupdate(is_active=False)  # no signal reaches the sockets
    assert await stale.receive_nothing(timeout=0.2)

    await hub().beat()

    frames, code = await receive_close(stale)
    assert closed_with(frames, ACCOUNT_DISABLED), frames
    assert code == SESSION_ENDED
    assert FORM not in "".join(await drain(other))


async def test_the_heartbeat_closes_a_private_room_to_staff_stripped_of_the_flag_without_a_signal(
    open_socket: SocketOpener, db: None, staff: Account, bob: Account
) -> None:
    await database_sync_to_async(Room.objects.create)(slug="secret", name="Secret", is_public=False)
    socket = await open_socket(slug="secret", user=staff)
    await Account.objects.filter(pk=staff.pk).aupdate(is_staff=False, is_superuser=False)

    await hub().beat()

    frames, code = await receive_close(socket)
    assert any("This room is private." in frame for frame in frames), frames
    assert code == 4403


async def test_the_heartbeat_reads_every_sockets_account_in_one_query_and_leaves_unchanged_ones_open(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account, carol: Account, monkeypatch
) -> None:
    sockets = [await open_socket(user=user) for user in (alice, alice, bob, carol)] + [await open_socket()]
    await settle(*sockets)
    reads = account_reads(monkeypatch)

    await hub().beat()

    assert len(reads) == 1, reads
    for socket in sockets:
        assert await socket.receive_nothing(timeout=0.1)
    # A signal's news is not repeated by the next heartbeat: the page keeps what is being typed.
    await save_user(bob, is_staff=True)
    assert await receive_until(sockets[2], FORM)
    await drain(sockets[2])
    await hub().beat()
    assert await sockets[2].receive_nothing(timeout=0.3)


def account_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL reading accounts in every heartbeat from now on, captured in the thread that runs it."""
    captured: list[str] = []
    real = broadcast.accounts_changed

    def counting(known: dict) -> dict:
        with CaptureQueriesContext(connection) as context:
            changed = real(known)
        captured.extend(query["sql"] for query in context.captured_queries if "auth_user" in query["sql"])
        return changed

    monkeypatch.setattr(broadcast, "accounts_changed", counting)
    return captured


VAULT_SETUP = """
from chat.models import Membership, Role, Room
from chat.standing import Account
from testsupport.sessions import session_key_for
vault, _ = Room.objects.get_or_create(slug="vault", defaults={"name": "Vault", "is_public": False})
for name, staff in (("vault-warden", True), ("vault-member", False)):
    user, _ = Account.objects.update_or_create(username=name, defaults={"is_staff": staff, "is_active": True})
    if not staff:
        Membership.objects.get_or_create(room=vault, user=user, defaults={"role": Role.MEMBER})
    print(session_key_for(user))
"""
# What an admin's bulk action, a script or another service does: no model save, no signal.
VAULT_REVOKE = """
from chat.standing import Account
Account.objects.filter(username="vault-warden").update(is_staff=False)
Account.objects.filter(username="vault-member").update(is_active=False)
"""


def test_a_real_server_closes_sockets_revoked_behind_its_back_within_a_heartbeat(
    start_daphne, site_env: dict[str, str]
) -> None:
    server = start_daphne(CHAT_PRESENCE_HEARTBEAT_SECONDS="1")
    warden, member = manage(server.env, "shell", "-c", VAULT_SETUP).split()[-2:]
    url = server.url.replace("http", "ws") + "/ws/rooms/vault/"

    async def read_to_the_close(socket: ClientConnection) -> tuple[str, int | None]:
        frames = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames.append(str(await asyncio.wait_for(socket.recv(), 15)))
        return "".join(frames), socket.close_code

    async def run() -> list[tuple[str, int | None]]:
        origin = Origin(server.url)
        opened = [
            websockets.connect(url, origin=origin, additional_headers={"Cookie": f"sessionid={key}"})
            for key in (warden, member)
        ]
        async with opened[0] as warden_socket, opened[1] as member_socket:
            for socket in (warden_socket, member_socket):
                while HISTORY not in str(await asyncio.wait_for(socket.recv(), 10)):
                    pass
            await asyncio.to_thread(manage, server.env, "shell", "-c", VAULT_REVOKE)
            return list(await asyncio.gather(*map(read_to_the_close, (warden_socket, member_socket))))

    (warden_frames, warden_code), (member_frames, member_code) = asyncio.run(run())

    assert warden_code == 4403 and "This room is private." in warden_frames
    assert member_code == SESSION_ENDED and html(ACCOUNT_DISABLED) in member_frames
