"""The same rules on both paths: every refusal holds whether a form is sent over the room's socket
(script on) or posted as a plain form (script off, chat.views.room_act).

Each refusal case is written once and run twice (`path`): over a real socket through the full ASGI
stack, as chat/tests/test_consumers*.py send frames, and over HTTP with the CSRF check enforced and
the token taken from the room page as the browser got it (the page cache's fast path included). Both
must tell the person the same sentence and store or change nothing. The second half: what a form
posted without script does when it succeeds (303 back to the room at the message, the outcome
shown once on the next page).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import moderation
from chat.models import Attachment, Message, Mute, Reaction, Report, Room
from chat.standing import Account
from chat.tests.files import image_bytes, upload
from chat.tests.support import (
    HOST,
    SocketOpener,
    get_page,
    make_moderator,
    message_input,
    mute_for,
    sent_ago,
    snapshot,
    ws_send_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOM = "/rooms/lobby/"
ACT = "/rooms/lobby/act/"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Shown:
    """What the person was shown: the frames their socket got, or the page HTTP answered with."""

    html: str
    status: int | None = None  # HTTP only

    @property
    def text(self) -> str:
        return unescape(self.html)


@dataclass(frozen=True)
class Case:
    who: str  # "alice" (a member), "mona" (the moderator), or "" (a visitor)
    fields: dict[str, str]
    sentence: str | dict[str, str]  # the same on both paths, or per path where a path can't know more
    status: int  # what HTTP answers
    setup: Callable[[dict], None] = lambda people: None  # after the page is open, before sending
    kept: str = ""  # the text the composer must still hold
    quoted: str = ""  # the text a closed composer must still show (muted, locked)


def _flooding(people: dict) -> None:
    for text in ("one", "two"):  # CHAT_FLOOD_MESSAGES is 2 in these tests
        Message.objects.create(room=Room.objects.get(slug="lobby"), author=people["alice"], body=text)


def _slow_mode(people: dict) -> None:
    Room.objects.filter(slug="lobby").update(slow_mode_seconds=60)
    Message.objects.create(room=Room.objects.get(slug="lobby"), author=people["alice"], body="first")


def _muted(people: dict) -> None:
    mute_for(Room.objects.get(slug="lobby"), people["alice"])


def _banned(people: dict) -> None:
    # As a moderator bans: an open socket is told and closed at once.
    moderation.ban(people["mona"], Room.objects.get(slug="lobby"), people["alice"], "spam")


def _locked(people: dict) -> None:
    Room.objects.filter(slug="lobby").update(is_locked=True)


def _password_changed(people: dict) -> None:
    # Saved without a signal, as a script might: no session signs alice in any more.
    Account.objects.filter(pk=people["alice"].pk).update(password="md5$other$0123")


def _old(people: dict) -> None:
    message = Message.objects.create(room=Room.objects.get(slug="lobby"), author=people["alice"], body="old")
    sent_ago(message, 2 * 3600)


def _bobs_message(people: dict) -> None:
    Message.objects.create(room=Room.objects.get(slug="lobby"), author=people["bob"], body="bob's words")


REFUSALS = {
    "flood limit": Case(
        "alice",
        {"message": "three"},
        "You're sending messages too fast.",
        429,
        _flooding,
        kept="three",
    ),
    "slow mode": Case(
        "alice", {"message": "again"}, "Slow mode is on: you can post again in", 429, _slow_mode
    ),
    "muted": Case("alice", {"message": "hi"}, "You're muted in this room until", 403, _muted, quoted="hi"),
    "banned": Case("alice", {"message": "hi"}, "You have been banned from #Lobby.", 403, _banned),
    "locked room": Case(
        "alice", {"message": "hi"}, "This room is locked: only moderators can post", 403, _locked, quoted="hi"
    ),
    "empty message": Case("alice", {"message": "   "}, "Write something before sending.", 400),
    "oversized message": Case(
        "alice",
        {"message": "y" * 2001},
        "Messages can be at most 2000 characters (this one has 2001).",
        400,
        kept="y" * 2001,
    ),
    "edit window passed": Case(
        "alice",
        {"edit_of": "old"},
        "Messages can only be edited for 1 hour after sending.",
        403,
        _old,
    ),
    "someone else's message": Case(
        "alice", {"edit_of": "bob's words"}, "You can only change your own messages.", 403, _bobs_message
    ),
    "not a moderator": Case(
        "alice",
        {"remove_of": "bob's words"},
        "Only this room's moderators can do that.",
        403,
        _bobs_message,
    ),
    # Over HTTP the session is simply no longer there (Django signs the browser out): a visitor.
    "session no longer signs in": Case(
        "alice",
        {"message": "still me?"},
        {"socket": "You have signed out. Sign in again to go on.", "http": "Sign in to post messages."},
        403,
        _password_changed,
    ),
    "visitor posting": Case("", {"message": "hello"}, "Sign in to post messages.", 403),
}


def _fields(case: Case) -> dict[str, str]:
    """The form's fields; ones naming a message by its text are resolved once it exists."""
    if "edit_of" in case.fields:
        message = Message.objects.get(body=case.fields["edit_of"])
        return {"action": "edit", "message_id": str(message.pk), "message": "changed"}
    if "remove_of" in case.fields:
        message = Message.objects.get(body=case.fields["remove_of"])
        return {"action": "remove", "message_id": str(message.pk), "reason": ""}
    return case.fields


@pytest.fixture
def people(lobby: Room, alice: Account, bob: Account, settings) -> dict:
    settings.CHAT_FLOOD_MESSAGES = 2
    settings.CHAT_FLOOD_WINDOW_SECONDS = 60
    return {"alice": alice, "bob": bob, "mona": make_moderator(lobby, "mona"), "": None}


# The two paths -------------------------------------------------------------------------------


async def _read_all(socket: WebsocketCommunicator, quiet: float = 0.4) -> list[str]:
    """Every frame until the socket is quiet for `quiet` s or is closed (which ends it too)."""
    frames: list[str] = []
    # receive_nothing, not a receive with a timeout: that one cancels the consumer when it expires.
    while not await socket.receive_nothing(timeout=quiet):
        output = await socket.receive_output()
        if output["type"] == "websocket.close":
            return frames
        frames.append(output.get("text", ""))
    return frames


async def over_socket(open_socket: SocketOpener, case: Case, people: dict) -> tuple[Shown, dict, dict]:
    """Open the room's socket, let the case happen, send the form as htmx would."""
    socket = await open_socket(user=people[case.who])
    await _read_all(socket, quiet=0.2)  # the joins
    await database_sync_to_async(case.setup)(people)
    shown = await _read_all(socket, quiet=0.3)  # what the setup made the page show (a ban closes it)
    fields = await database_sync_to_async(_fields)(case)
    before = await database_sync_to_async(snapshot)()
    await socket.send_to(text_data=ws_send_frame(**fields))
    shown += await _read_all(socket)
    return Shown("".join(shown)), before, await database_sync_to_async(snapshot)()


def over_http(case: Case, people: dict) -> tuple[Shown, dict, dict]:
    """Open the room page, let the case happen, post the form as a browser without script would."""
    browser = Client(enforce_csrf_checks=True)
    if people[case.who] is not None:
        browser.force_login(people[case.who])
    token = _csrf_token(get_page(browser, ROOM).html)
    case.setup(people)
    fields = _fields(case)
    before = snapshot()
    response = browser.post(ACT, {**fields, "csrfmiddlewaretoken": token})
    return Shown(response.text, response.status_code), before, snapshot()


def _csrf_token(page: str) -> str:
    found = CSRF_INPUT.search(page) or re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert found, "no CSRF token on the room page"
    return found.group(1)


@pytest.fixture(params=["socket", "http"])
def path(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("name", list(REFUSALS))
async def test_each_refusal_holds_on_both_paths_with_the_same_sentence(
    open_socket: SocketOpener, people: dict, path: str, name: str
) -> None:
    case = REFUSALS[name]

    if path == "socket":
        shown, before, after = await over_socket(open_socket, case, people)
    else:
        shown, before, after = await database_sync_to_async(over_http)(case, people)

    sentence = case.sentence if isinstance(case.sentence, str) else case.sentence[path]
    assert sentence in shown.text, f"{sentence!r} not shown over the {path}"
    assert after == before, f"the refused {name} changed something over the {path}"
    if path == "http":
        assert shown.status == case.status
    if case.kept:
        assert f'value="{case.kept}"' in message_input(shown.html)
    if case.quoted:
        assert f"Not sent, so you can keep it: “{case.quoted}”" in shown.text


async def test_a_request_from_another_site_is_refused_on_both_paths(
    open_socket: SocketOpener, people: dict, path: str
) -> None:
    """HTTP: no CSRF token, 403. The socket: a handshake from another origin is refused."""
    if path == "socket":
        from site_config.asgi import application

        cookie = await database_sync_to_async(lambda: Client())()
        await database_sync_to_async(cookie.force_login)(people["alice"])
        headers = [
            (b"origin", b"https://evil.example"),
            (b"host", HOST),
            (b"cookie", f"sessionid={cookie.cookies['sessionid'].value}".encode()),
        ]
        socket = WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=headers)
        connected, _ = await socket.connect(timeout=5)
        assert not connected
    else:
        browser = Client(enforce_csrf_checks=True)
        await database_sync_to_async(browser.force_login)(people["alice"])
        response = await database_sync_to_async(browser.post)(ACT, {"message": "forged"})
        assert response.status_code == 403
    assert not await database_sync_to_async(Message.objects.exists)()


# Without script: done, back to the room at the message (Post/Redirect/Get) -------------------


@dataclass
class Done:
    who: str
    fields: Callable[[dict], dict[str, str]]
    stored: Callable[[dict], bool]
    notice: str = ""  # shown once on the next page
    at: Callable[[dict], int | None] = field(default=lambda people: people["message"].pk)


def _reply_stored(people: dict) -> bool:
    return Message.objects.filter(reply_to=people["message"], body="me too").exists()


ACTIONS = {
    "post": Done(
        "alice",
        lambda people: {"message": "hello without script"},
        lambda people: Message.objects.filter(body="hello without script").count() == 1,
        at=lambda people: Message.objects.get(body="hello without script").pk,
    ),
    "reply": Done(
        "alice",
        lambda people: {"message": "me too", "reply_to": str(people["message"].pk)},
        _reply_stored,
        at=lambda people: Message.objects.get(body="me too").pk,
    ),
    "edit": Done(
        "bob",
        lambda people: {
            "action": "edit",
            "message_id": str(people["message"].pk),
            "message": "fixed",
        },
        lambda people: Message.objects.get(pk=people["message"].pk).body == "fixed",
        "Your edit is saved.",
    ),
    "delete": Done(
        "bob",
        lambda people: {"action": "delete", "message_id": str(people["message"].pk)},
        lambda people: Message.objects.get(pk=people["message"].pk).deleted_at is not None,
        "Message deleted.",
    ),
    "react": Done(
        "alice",
        lambda people: {"action": "react", "message_id": str(people["message"].pk), "emoji": "👍"},
        lambda people: Reaction.objects.filter(message=people["message"], user=people["alice"]).exists(),
    ),
    "report": Done(
        "alice",
        lambda people: {"action": "report", "message_id": str(people["message"].pk), "reason": "rude"},
        lambda people: Report.objects.filter(message=people["message"], reporter=people["alice"]).exists(),
        "Thanks for reporting it. A moderator will take a look.",
    ),
    "mute": Done(
        "mona",
        lambda people: {"action": "mute", "user_id": str(people["bob"].pk), "minutes": "10", "reason": ""},
        lambda people: Mute.objects.filter(user=people["bob"]).exists(),
        "bob is muted until",
        at=lambda people: None,
    ),
    "remove": Done(
        "mona",
        lambda people: {"action": "remove", "message_id": str(people["message"].pk), "reason": "spam"},
        lambda people: Message.objects.get(pk=people["message"].pk).removed_at is not None,
        "Removed a message by bob.",
    ),
}


@pytest.fixture
def with_message(people: dict) -> dict:
    people["message"] = Message.objects.create(
        room=Room.objects.get(slug="lobby"), author=people["bob"], body="bob's words"
    )
    return people


@pytest.mark.parametrize("name", list(ACTIONS))
def test_a_form_posted_without_script_does_it_and_goes_back_to_the_room_at_the_message(
    with_message: dict, name: str
) -> None:
    done, people = ACTIONS[name], with_message
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people[done.who])
    token = _csrf_token(get_page(browser, ROOM).html)

    response = browser.post(ACT, {**done.fields(people), "csrfmiddlewaretoken": token})

    assert response.status_code == 303
    at = done.at(people)
    assert response["Location"] == ROOM + (f"#message-{at}" if at else "")
    assert done.stored(people)
    after = get_page(browser, ROOM)
    assert after.status == 200
    if done.notice:
        assert done.notice in _notice(after.html)
        assert not after.cached  # the page with the notice is Django's, for this request alone
        assert done.notice not in _notice(get_page(browser, ROOM).html)  # shown once


def _notice(html: str) -> str:
    found = re.search(r'<p id="chat-notice"[^>]*>(.*?)</p>', html, re.S)
    assert found, "no notice line on the page"
    return unescape(found.group(1))


def test_a_file_uploaded_without_script_goes_back_to_the_room_at_its_message(
    people: dict, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people["alice"])
    page = get_page(browser, ROOM).html
    assert 'enctype="multipart/form-data"' in page and 'action="/rooms/lobby/attachments/"' in page
    token = _csrf_token(page)

    response = browser.post(
        "/rooms/lobby/attachments/",
        {"file": upload(image_bytes()), "message": "a picture", "csrfmiddlewaretoken": token},
    )

    stored = Attachment.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"{ROOM}#message-{stored.message_id}"


def test_an_upload_refused_without_script_shows_why_on_the_room_page_and_keeps_the_caption(
    people: dict, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    mute_for(Room.objects.get(slug="lobby"), people["alice"])
    browser = Client()
    browser.force_login(people["alice"])

    response = browser.post("/rooms/lobby/attachments/", {"file": upload(image_bytes()), "message": "look"})

    assert response.status_code == 403
    assert "You're muted in this room" in _notice(response.text)
    assert 'id="messages"' in response.text  # the room page, not a fragment
    assert not Attachment.objects.exists()


def test_the_forms_of_the_room_page_post_without_script(people: dict) -> None:
    """Every form on the room page as served (cached) has an action, post and this request's token."""
    browser = Client()
    browser.force_login(people["mona"])
    get_page(browser, ROOM)  # rendered and stored
    page = get_page(browser, ROOM)
    assert page.cached
    forms = re.findall(r"<form\b[^>]*>.*?</form>", page.html, re.S)
    posting = [form for form in forms if "ws-send" in form.split(">", 1)[0] or "hx-post" in form]
    assert len(posting) >= 5  # the composer, catch-up, upload and the Moderate panel's
    for form in posting:
        opening = form.split(">", 1)[0]
        assert 'method="post"' in opening and 'action="/rooms/lobby/' in opening, opening
        found = CSRF_INPUT.search(form)
        assert found and len(found.group(1)) == 64, opening  # a masked token, spliced in for this request


def test_an_edit_refused_without_script_comes_back_on_the_edit_page_as_typed(people: dict) -> None:
    """The edit form posts from its own page (no script): a refusal shows that page again, with the
    reason and the text as typed, not the room page (where the typed text would be lost)."""
    _old(people)
    old = Message.objects.get(body="old")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people["alice"])
    token = _csrf_token(get_page(browser, ROOM).html)
    typed = {"action": "edit", "message_id": str(old.pk), "message": "old, but better"}
    response = browser.post(ACT, {**typed, "csrfmiddlewaretoken": token})
    assert response.status_code == 403
    page = unescape(response.text)
    assert "<h1>Edit your message</h1>" in page
    assert "Messages can only be edited for 1 hour after sending." in page
    assert 'value="old, but better"' in page
    assert Message.objects.get(pk=old.pk).body == "old"
