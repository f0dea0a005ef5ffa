"""Posts sent at the same moment over many sockets, against a real daphne: the process stores those
that arrive together in one transaction (chat/posting.py), and each must still be checked, stored
and acknowledged on its own: the flood limit holds across them, every acknowledged post is stored
and shown exactly once, and one post that fails takes nothing of the others with it."""

import asyncio
import http.client
import uuid
from html import escape

from chat.consumers import SESSION_ENDED
from chat.services import TOO_FAST
from chat.tests.support import FORM, NEW_MESSAGE
from chat.tests.test_flood_concurrency import database  # noqa: F401  # the fixture: SQLite, then PostgreSQL
from chat.tests.test_outages import Page, sign_in
from testsupport.servers import DaphneServer, manage

TABS = 8
LIMIT = 5  # the default CHAT_FLOOD_MESSAGES, in its default 5 s window
POSTERS = 12
STORED = (
    "from chat.models import Message\n"
    "for body in {bodies!r}: print(Message.objects.filter(body=body).count())\n"
)
END_SESSION = (
    "from django.contrib.sessions.models import Session; Session.objects.filter(pk={key!r}).delete()"
)


def stored(env: dict[str, str], bodies: list[str]) -> dict[str, int]:
    """How many times each text is stored, read from the server's database."""
    counts = manage(env, "shell", "-c", STORED.format(bodies=bodies)).split()[-len(bodies) :]
    return dict(zip(bodies, map(int, counts), strict=True))


async def answer_to(page: Page) -> str:
    """The sender's form as the post's answer: fresh when acknowledged, with the reason if refused."""
    return await page.until(FORM)


def test_one_persons_posts_from_many_tabs_at_once_store_no_more_than_the_flood_limit(
    start_daphne,
    site_env: dict[str, str],
    database: dict[str, str],  # noqa: F811
) -> None:
    env = {**site_env, **database}
    server = start_daphne(**database)
    _, session = sign_in(env)
    texts = [f"tab {tab} {uuid.uuid4()}" for tab in range(TABS)]

    async def scenario() -> list[str]:
        tabs = [await Page.open(server, session) for _ in texts]
        await asyncio.gather(*(tab.post(text) for tab, text in zip(tabs, texts, strict=True)))
        return await asyncio.gather(*(answer_to(tab) for tab in tabs))

    answers = asyncio.run(scenario())

    counts = stored(env, texts)
    assert sum(counts.values()) == LIMIT, f"{counts} stored from {TABS} tabs at once; the limit is {LIMIT}"
    refused = [text for text, answer in zip(texts, answers, strict=True) if escape(TOO_FAST) in answer]
    assert len(refused) == TABS - LIMIT
    assert all(counts[text] == 0 for text in refused), "a post refused as too fast was stored"
    assert all(counts[text] == 1 for text in texts if text not in refused)


def test_posts_sent_together_are_each_stored_and_shown_once_though_one_of_them_fails(
    start_daphne, site_env: dict[str, str]
) -> None:
    server = start_daphne()
    sessions = [sign_in(site_env)[1] for _ in range(POSTERS)]
    texts = [f"poster {number} {uuid.uuid4()}" for number in range(POSTERS)]
    signed_out = POSTERS // 2  # their session ends while the socket is open: that post must fail alone

    async def scenario() -> tuple[Page, list[Page], int | None]:
        listener = await Page.open(server)
        posters = [await Page.open(server, session) for session in sessions]
        manage(site_env, "shell", "-c", END_SESSION.format(key=sessions[signed_out]))
        await asyncio.gather(*(page.post(text) for page, text in zip(posters, texts, strict=True)))
        others = [page for number, page in enumerate(posters) if number != signed_out]
        await asyncio.gather(*(answer_to(page) for page in others))
        for text in texts[:signed_out] + texts[signed_out + 1 :]:
            await listener.until(text)
        code = await posters[signed_out].closed()
        await asyncio.sleep(0.3)  # anything shown twice would have come by now
        await listener.socket.close()
        return listener, others, code

    listener, others, code = asyncio.run(scenario())

    counts = stored(site_env, texts)
    assert code == SESSION_ENDED
    assert counts[texts[signed_out]] == 0, "the post of a session that had ended was stored"
    assert all(counts[text] == 1 for number, text in enumerate(texts) if number != signed_out), counts
    for page in others:  # acknowledged: a fresh, empty form, with no refusal in it
        assert "form-errors" not in next(frame for frame in page.frames if FORM in frame)
    shown = [frame for frame in listener.frames if NEW_MESSAGE in frame]
    assert [sum(text in frame for frame in shown) for text in texts] == [
        0 if number == signed_out else 1 for number in range(POSTERS)
    ]


def room_page(server: DaphneServer, session: str) -> str:
    """The room page as a signed-in browser gets it (served from the page cache when it can be)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "GET", "/rooms/lobby/", headers={"Host": "127.0.0.1", "Cookie": f"sessionid={session}"}
    )
    response = connection.getresponse()
    page = response.read().decode()
    connection.close()
    assert response.status == 200
    return page


def test_the_room_page_shows_posts_sent_together_as_soon_as_they_are_acknowledged(
    start_daphne, site_env: dict[str, str]
) -> None:
    manage(site_env, "collectstatic", "--noinput")  # the page links the hashed CSS
    server = start_daphne()
    sessions = [sign_in(site_env)[1] for _ in range(4)]
    texts = [f"cached page {number} {uuid.uuid4()}" for number in range(len(sessions))]
    room_page(server, sessions[0])
    room_page(server, sessions[0])  # now cached for this role

    async def scenario() -> None:
        posters = [await Page.open(server, session) for session in sessions]
        await asyncio.gather(*(page.post(text) for page, text in zip(posters, texts, strict=True)))
        await asyncio.gather(*(answer_to(page) for page in posters))

    asyncio.run(scenario())

    page = room_page(server, sessions[0])
    assert [text in page for text in texts] == [True] * len(texts), (
        "a cached page left out acknowledged posts"
    )
