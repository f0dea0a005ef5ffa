"""Someone mentions a bot in Chromium; the bot's webhook (a receiver started by the test) answers,
and the answer shows up live, as the bot's message. daphne and the background worker share Redis,
as in production. Screenshots at desktop and phone widths land in e2e/screenshots/.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, message_by, open_room, prepare_site, send
from testsupport.receiver import Reply, receiving
from testsupport.servers import DaphneServer, RedisServer, TaskWorker, manage

ANSWER = b"**Deploy #88** to production: done in 3m 02s. Next window opens at 16:00."
BOT = """
from chat import bots
from chat.models import Room
room, _ = Room.objects.get_or_create(slug={slug!r}, defaults={{"name": "Deploys"}})
bot, _ = bots.create({name!r}, initial="D", webhook_url={url!r})
bots.set_rooms(bot, [room])
"""


@pytest.fixture(scope="module")
def webhook_site(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("webhook-site")
    return prepare_site(folder, REDIS_URL=redis_server.url, CHAT_WEBHOOK_ALLOW_PRIVATE="true")


@pytest.fixture
def site_with_worker(webhook_site: dict[str, str], tmp_path: Path) -> Iterator[DaphneServer]:
    daphne = DaphneServer(webhook_site, tmp_path / "daphne.log")
    worker = TaskWorker(webhook_site, tmp_path / "worker.log")
    yield daphne
    worker.stop()
    daphne.stop()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_someone_mentions_a_bot_and_its_answer_shows_up(
    site_with_worker: DaphneServer, webhook_site: dict[str, str], new_user, device: str
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    slug, name = f"deploys-{device}-{tag}", f"deployer{tag}"
    with receiving(Reply(200, ANSWER)) as receiver:
        manage(webhook_site, "shell", "-c", BOT.format(slug=slug, name=name, url=receiver.url))
        alice = new_user(site_with_worker.url, "alice", viewport=VIEWPORTS[device])
        open_room(alice, site_with_worker.url, slug)
        send(alice, f"@{name} how did the deploy go?")

        answer = message_by(alice, "Deploy #88")
        expect(answer).to_be_visible()  # live: the page was not reloaded
        assert len(receiver.received) == 1

    expect(answer.locator(".author")).to_have_text(name)
    expect(answer.locator(".bot-badge")).to_have_text("bot")
    expect(answer.locator(".body strong")).to_have_text("Deploy #88")
    overflow = alice.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    alice.screenshot(path=str(SCREENSHOTS / f"bot-webhook-answer-{device}.png"))
