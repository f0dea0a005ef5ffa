"""Bots against a real daphne, with the requests a CI job or curl sends: posting, reading, every
refusal (which stores nothing), keys reset and rooms taken away, CSRF, and bots never signing in.
"""

import http.client
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from testsupport.servers import DaphneServer, manage

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


@pytest.fixture(scope="module")
def server(site_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaphneServer]:
    """A production-like daphne whose pages can link their hashed CSS."""
    folder = tmp_path_factory.mktemp("bots")
    env = site_env | {"STATIC_ROOT": str(folder / "static")}
    manage(env, "collectstatic", "--noinput")
    daphne = DaphneServer(env, folder / "daphne.log")
    yield daphne
    daphne.stop()


def shell(env: dict[str, str], code: str) -> str:
    """Run `code` in `manage.py shell` on the server's database; its last printed line."""
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


@dataclass(frozen=True)
class Setup:
    slug: str
    name: str
    key: str


BOT_IN_A_ROOM = """
import json
from chat import bots
from chat.models import Room
room = Room.objects.create(slug={slug!r}, name={slug!r}, is_public={public!r})
bot, key = bots.create({name!r}, initial="C")
bots.set_rooms(bot, [room])
print(json.dumps(key))
"""


def bot_in_a_room(env: dict[str, str], public: bool = True) -> Setup:
    """A fresh room and a fresh bot that belongs to it (each test its own: flood counts are per bot)."""
    tag = uuid.uuid4().hex[:8]
    slug, name = f"builds-{tag}", f"ci-{tag}"
    key = json.loads(shell(env, BOT_IN_A_ROOM.format(slug=slug, name=name, public=public)))
    return Setup(slug, name, key)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def call(
    server: DaphneServer,
    method: str,
    path: str,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        data = body.encode() if isinstance(body, str) else body
        connection.request(method, path, body=data or None, headers=headers or {})
        response = connection.getresponse()
        return Answer(
            response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def api(slug: str) -> str:
    return f"/api/rooms/{slug}/messages"


def post(
    server: DaphneServer, setup: Setup, text: str, content_type: str = "text/plain", key: str = ""
) -> Answer:
    headers = {"Authorization": f"Bearer {key or setup.key}", "Content-Type": content_type}
    return call(server, "POST", api(setup.slug), text, headers)


def read(server: DaphneServer, setup: Setup, query: str = "") -> list[dict]:
    answer = call(server, "GET", api(setup.slug) + query, headers={"Authorization": f"Bearer {setup.key}"})
    assert answer.status == 200, answer.body
    return answer.json["messages"]


STORED = "from chat.models import Message; print(Message.objects.filter(room__slug={slug!r}).count())"


def stored(env: dict[str, str], slug: str) -> int:
    """Messages in the room as the database holds them (whatever the bot may read)."""
    return int(shell(env, STORED.format(slug=slug)))


def assert_refused(answer: Answer, status: int, words: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json["error"], answer.json


# Posting and reading --------------------------------------------------------------------------


def test_a_bot_posts_text_markdown_and_slack_json_and_gets_201_with_the_permalink(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)

    plain = post(server, setup, "Build 12 passed")
    markdown = post(server, setup, "**Build 13** failed: see `tests`", "text/markdown")
    slack = post(
        server, setup, json.dumps({"text": "Deploy _done_", "username": "ignored"}), "application/json"
    )

    for answer in (plain, markdown, slack):
        assert answer.status == 201, answer.body
        message_id = answer.json["id"]
        permalink = f"{server.url}/rooms/{setup.slug}/messages/{message_id}/#message-{message_id}"
        assert answer.headers["location"] == permalink == answer.json["permalink"]
    shown = read(server, setup)
    assert [message["text"] for message in shown] == [
        "Build 12 passed",
        "**Build 13** failed: see `tests`",
        "Deploy _done_",
    ]
    assert "<strong>Build 13</strong>" in shown[1]["html"] and "<em>done</em>" in shown[2]["html"]
    assert {(message["author"], message["is_bot"]) for message in shown} == {(setup.name, True)}
    # The permalink opens the room at the message, badge and all, for whoever may read the room.
    page = call(server, "GET", f"/rooms/{setup.slug}/messages/{plain.json['id']}/")
    assert page.status == 200
    article = re.search(
        rf'<article [^>]*id="message-{plain.json["id"]}".*?</article>', page.body.decode(), re.S
    )
    assert article and '<span class="bot-badge">bot</span>' in article.group(0)
    assert "Build 12 passed" in article.group(0)


def test_a_file_posted_as_multipart_becomes_a_message_with_the_file(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nNightly log\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="nightly.log"\r\n'
        f"Content-Type: text/plain\r\n\r\nall 412 tests passed\n\r\n--{boundary}--\r\n"
    )
    headers = {
        "Authorization": f"Bearer {setup.key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }

    answer = call(server, "POST", api(setup.slug), body, headers)

    assert answer.status == 201, answer.body
    page = call(server, "GET", f"/rooms/{setup.slug}/").body.decode()
    assert "Nightly log" in page and "nightly" in page
    file_link = re.search(r'href="(/attachments/\d+/)"', page)
    assert file_link, page
    assert call(server, "GET", file_link.group(1)).body == b"all 412 tests passed\n"


def test_paging_with_before_and_after_returns_what_is_around_the_cursor(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    ids = [post(server, setup, f"line {n}").json["id"] for n in range(4)]

    assert [m["id"] for m in read(server, setup, "?limit=2")] == ids[2:]
    assert [m["id"] for m in read(server, setup, f"?before={ids[2]}&limit=1")] == [ids[1]]
    assert [m["id"] for m in read(server, setup, f"?after={ids[0]}&limit=2")] == ids[1:3]
    assert read(server, setup, f"?after={ids[3]}") == []
    bad = call(
        server, "GET", api(setup.slug) + "?before=soon", headers={"Authorization": f"Bearer {setup.key}"}
    )
    assert_refused(bad, 400, "whole numbers")


REMOVE = """
from django.utils import timezone
from chat.models import Message
Message.objects.filter(pk={pk}).update(removed_at=timezone.now())
print("ok")
"""


def test_reading_leaves_out_what_a_moderator_removed(server: DaphneServer, site_env: dict[str, str]) -> None:
    setup = bot_in_a_room(site_env)
    kept, removed = (post(server, setup, text).json["id"] for text in ("kept", "secret spam"))
    shell(site_env, REMOVE.format(pk=removed))

    shown = read(server, setup)

    assert [message["id"] for message in shown] == [kept]
    assert (
        b"secret spam"
        not in call(server, "GET", api(setup.slug), headers={"Authorization": f"Bearer {setup.key}"}).body
    )


# Keys -----------------------------------------------------------------------------------------

RESET = """
import json
from chat import bots
from chat.models import Bot
print(json.dumps(bots.reset_key(Bot.objects.get(account__username={name!r}))))
"""


def test_a_wrong_or_missing_key_is_401_and_stores_nothing(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    key_id = setup.key.split("_")[1]
    wrong_secret = f"parley_{key_id}_{'x' * 43}"

    for key in (wrong_secret, "parley_0000000000000000_whatever", setup.key[:-1], "not-a-parley-key"):
        assert_refused(post(server, setup, "hello", key=key), 401, "key is missing, wrong or was reset")
    missing = call(server, "POST", api(setup.slug), "hello", {"Content-Type": "text/plain"})
    assert_refused(missing, 401, "Authorization: Bearer")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    # Campfire's way, the key in the URL, is not a way in.
    assert call(server, "POST", f"/rooms/{setup.slug}/{setup.key}/messages", "hello").status == 404
    assert stored(site_env, setup.slug) == 0


def test_a_reset_key_stops_at_once_and_the_new_key_posts(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    assert post(server, setup, "before the reset").status == 201

    new_key = json.loads(shell(site_env, RESET.format(name=setup.name)))

    assert_refused(post(server, setup, "with the old key"), 401, "was reset")
    assert post(server, setup, "with the new key", key=new_key).status == 201
    assert [m["text"] for m in read(server, Setup(setup.slug, setup.name, new_key))] == [
        "before the reset",
        "with the new key",
    ]


# Rooms ----------------------------------------------------------------------------------------

TAKE_ROOMS_AWAY = """
from chat import bots
from chat.models import Bot
bots.set_rooms(Bot.objects.get(account__username={name!r}), [])
print("ok")
"""


def test_a_room_the_bot_does_not_belong_to_is_refused(server: DaphneServer, site_env: dict[str, str]) -> None:
    setup = bot_in_a_room(site_env)
    other_public = bot_in_a_room(site_env)
    other_private = bot_in_a_room(site_env, public=False)

    public = post(server, Setup(other_public.slug, setup.name, setup.key), "not my room")
    private = post(server, Setup(other_private.slug, setup.name, setup.key), "not my room")
    missing = post(server, Setup("no-such-room", setup.name, setup.key), "nowhere")

    assert_refused(public, 403, "does not belong to")
    assert_refused(private, 404, "no room with that name that this bot belongs to")
    assert_refused(missing, 404, "no room with that name that this bot belongs to")
    assert private.json == missing.json  # a private room's existence is not told
    assert stored(site_env, other_public.slug) == stored(site_env, other_private.slug) == 0


def test_a_bot_removed_from_a_room_can_no_longer_post_or_read_there(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    private = bot_in_a_room(site_env, public=False)
    assert post(server, private, "while a member").status == 201

    shell(site_env, TAKE_ROOMS_AWAY.format(name=private.name))

    assert_refused(post(server, private, "after removal"), 404, "belongs to")
    reading = call(server, "GET", api(private.slug), headers={"Authorization": f"Bearer {private.key}"})
    assert_refused(reading, 404, "belongs to")
    assert stored(site_env, private.slug) == 1


# Limits and the room's rules ------------------------------------------------------------------


def test_bodies_over_the_limits_are_refused_with_413_and_store_nothing(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)

    assert_refused(post(server, setup, "x" * 2001), 413, "at most 2000 characters (this one has 2001)")
    assert_refused(post(server, setup, "x" * 200_000), 413, "too big")
    assert_refused(post(server, setup, json.dumps({"text": "y" * 2001}), "application/json"), 413, "2000")
    links = " ".join(f"https://example.com/{n}" for n in range(60))
    assert_refused(post(server, setup, links), 413, "links")
    assert_refused(post(server, setup, "   "), 400, "empty")
    assert_refused(post(server, setup, "{}", "application/json"), 400, '{"text"')
    assert_refused(post(server, setup, "<b>hi</b>", "application/xml"), 415, "not application/xml")
    assert stored(site_env, setup.slug) == 0
    assert post(server, setup, "x" * 2000).status == 201  # the limit itself is allowed


def test_a_flood_past_the_limit_is_429_with_retry_after(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    limit = 5  # CHAT_FLOOD_MESSAGES' default, per 5 seconds

    answers = [post(server, setup, f"alert {n}") for n in range(limit + 2)]

    assert [answer.status for answer in answers] == [201] * limit + [429, 429]
    assert_refused(answers[-1], 429, "too fast")
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert stored(site_env, setup.slug) == limit


SANCTION = """
from datetime import timedelta
from django.utils import timezone
from chat.models import Ban, Mute, Room
from chat.standing import Account
room = Room.objects.get(slug={slug!r})
bot = Account.objects.get(username={name!r})
{what}
print("ok")
"""
MUTE = "Mute.objects.create(room=room, user=bot, until=timezone.now() + timedelta(hours=1))"
UNMUTE = "Mute.objects.filter(room=room, user=bot).delete()"
BAN = "Ban.objects.create(room=room, user=bot)"
LOCK = "Room.objects.filter(pk=room.pk).update(is_locked=True)"
UNLOCK = "Room.objects.filter(pk=room.pk).update(is_locked=False)"
SLOW = "Room.objects.filter(pk=room.pk).update(slow_mode_seconds=60)"


def test_mutes_locks_slow_mode_and_bans_hold_for_bots(server: DaphneServer, site_env: dict[str, str]) -> None:
    setup = bot_in_a_room(site_env)

    def apply(what: str) -> None:
        shell(site_env, SANCTION.format(slug=setup.slug, name=setup.name, what=what))

    apply(MUTE)
    assert_refused(post(server, setup, "muted"), 403, "You're muted in this room until")
    apply(UNMUTE + "\n" + LOCK)
    assert_refused(post(server, setup, "locked"), 403, "This room is locked")
    apply(UNLOCK + "\n" + SLOW)
    assert post(server, setup, "first in slow mode").status == 201
    slow = post(server, setup, "second in slow mode")
    assert_refused(slow, 429, "Slow mode is on")
    assert int(slow.headers["retry-after"]) >= 1
    apply(BAN)
    assert_refused(post(server, setup, "banned"), 403, "You have been banned")
    assert stored(site_env, setup.slug) == 1


# CSRF and signing in --------------------------------------------------------------------------

PERSON = """
from chat.standing import Account
from testsupport.sessions import session_key_for
user = Account.objects.create_user(username={name!r}, password="correct horse battery")
print(session_key_for(user))
"""


def test_only_the_key_api_skips_csrf(server: DaphneServer, site_env: dict[str, str]) -> None:
    setup = bot_in_a_room(site_env)
    session = shell(site_env, PERSON.format(name=f"pat-{uuid.uuid4().hex[:6]}"))
    cookie = {"Cookie": f"sessionid={session}", "Origin": "https://elsewhere.example"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # A signed-in person's form posts without a CSRF token are refused as ever...
    for path in (f"/rooms/{setup.slug}/attachments/", "/rooms/propose/", "/settings/"):
        assert call(server, "POST", path, "message=forged", cookie | form).status == 403, path
    # ...and a session cookie is no credential on the API: without a key nothing is posted.
    forged = call(server, "POST", api(setup.slug), "forged", cookie | {"Content-Type": "text/plain"})
    assert_refused(forged, 401, "key")
    # The bot's request needs no token.
    assert post(server, setup, "no token needed").status == 201
    assert stored(site_env, setup.slug) == 1


SET_PASSWORD = """
from chat.standing import Account
bot = Account.objects.get(username={name!r})
bot.set_password("correct horse battery")
bot.is_staff = True
bot.save()
print("ok")
"""


def sign_in(server: DaphneServer, path: str, username: str) -> Answer:
    """The login form as a browser sends it: the form's CSRF token with its cookie."""
    form = call(server, "GET", path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body.decode())
    cookie = re.search(r"csrftoken=([^;]+)", form.headers.get("set-cookie", ""))
    assert token and cookie, form.body
    body = urlencode(
        {"username": username, "password": "correct horse battery", "csrfmiddlewaretoken": token.group(1)}
    )
    headers = {"Cookie": f"csrftoken={cookie.group(1)}", "Content-Type": "application/x-www-form-urlencoded"}
    return call(server, "POST", path, body, headers)


def test_a_bot_cannot_sign_in_even_with_a_password_set(
    server: DaphneServer, site_env: dict[str, str]
) -> None:
    setup = bot_in_a_room(site_env)
    shell(site_env, SET_PASSWORD.format(name=setup.name))
    person = f"pat-{uuid.uuid4().hex[:6]}"
    shell(site_env, PERSON.format(name=person))

    for path in ("/accounts/login/", "/admin/login/"):
        refused = sign_in(server, path, setup.name)
        assert refused.status == 403 and "sessionid" not in refused.headers.get("set-cookie", ""), path
        # The same form signs a person in: what refuses the bot is that it is a bot.
        accepted = sign_in(server, "/accounts/login/", person)
        assert accepted.status == 302 and "sessionid=" in accepted.headers["set-cookie"]


# The examples in docs/integrations.md ---------------------------------------------------------


def doc_examples() -> list[str]:
    examples = DOCS.read_text().split("## Examples", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", examples, re.S)


def test_the_curl_examples_in_the_docs_run_as_written(
    server: DaphneServer, site_env: dict[str, str], tmp_path: Path
) -> None:
    setup = bot_in_a_room(site_env)
    env = os.environ | {"PARLEY_URL": server.url, "PARLEY_ROOM": setup.slug, "PARLEY_KEY": setup.key}
    examples = doc_examples()
    assert len(examples) == 4

    outputs = []
    for example in examples:
        ran = subprocess.run(
            ["bash", "-e", "-c", example], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert ran.returncode == 0, (example, ran.stdout, ran.stderr)
        outputs.append(json.loads(ran.stdout))

    texts = [message["text"] for message in outputs[-1]["messages"]]
    assert texts == [
        "**Build passed** on `main`: all tests green.",
        "Deploy of v1.2.3 finished",
        "The build's log",
    ]
    assert all(output["permalink"].startswith(f"{server.url}/rooms/{setup.slug}/") for output in outputs[:3])
    # A refusal makes the same command fail, with the sentence on its output.
    env["PARLEY_KEY"] = setup.key + "x"
    refused = subprocess.run(
        ["bash", "-e", "-c", examples[0]], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "key is missing, wrong or was reset" in refused.stdout
