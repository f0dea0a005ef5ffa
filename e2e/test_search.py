"""Search, permalinks and missed-mention emails in a real browser against real daphne.

The emails go through Django's file backend into a folder the test reads (EMAIL_BACKEND=file,
EMAIL_FILE_PATH), as an operator would configure it; the links inside are followed in the browser.
"""

import email
import email.policy
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, message_by, open_room, send
from e2e.test_look import assert_fits_the_screen
from testsupport.servers import DaphneServer, TaskWorker, free_port, manage


@pytest.fixture
def mail_server(site_env: dict[str, str], tmp_path: Path) -> Iterator[DaphneServer]:
    """A daphne process and a worker whose emails are files in tmp_path/mail, with links to daphne."""
    port = free_port()
    env = site_env | {
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "CHAT_SITE_URL": f"http://127.0.0.1:{port}",
    }
    daphne = DaphneServer(env, tmp_path / "daphne.log", port=port)
    daphne.mail = tmp_path / "mail"  # type: ignore[attr-defined]
    worker = TaskWorker(env, tmp_path / "worker.log")  # emails are tasks: a worker sends them
    yield daphne
    worker.stop()
    daphne.stop()


CONFIRM_SUBJECT = "Confirm your address for Parley's mention emails"


def read_emails(folder: Path) -> list[email.message.EmailMessage]:
    """Every email sent so far, oldest first, decoded (long lines arrive quoted-printable).

    Django's file backend names a file by the second and the connection's id(), so two emails sent
    within a second can share a file (a freed connection's id is reused): each ends with a rule."""
    files = sorted(folder.glob("*.log"), key=lambda path: path.stat().st_mtime_ns) if folder.exists() else []
    return [
        email.message_from_string(text, policy=email.policy.default)
        for path in files
        for text in path.read_text().split("\n" + "-" * 79 + "\n")
        if text.strip()
    ]


def mention_emails(folder: Path) -> list[email.message.EmailMessage]:
    return [message for message in read_emails(folder) if message["Subject"] != CONFIRM_SUBJECT]


def mention_emails_once_some_came(folder: Path, timeout: float = 10) -> list[email.message.EmailMessage]:
    """The mention emails sent, once there is one and half a second has passed for any others."""
    deadline = time.monotonic() + timeout
    while not mention_emails(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return mention_emails(folder)


def body_of(message: email.message.EmailMessage) -> str:
    return message.get_content()


def newest_link_to(folder: Path, address: str, seen: int, timeout: float = 10) -> str:
    """The link in the confirmation email to `address` after the `seen` ones already there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = [
            re.findall(r"http://\S+/settings/confirm/\S+/", body_of(message))[0]
            for message in read_emails(folder)
            if message["Subject"] == CONFIRM_SUBJECT and message["To"] == address
        ]
        if len(links) > seen:
            return links[-1]
        time.sleep(0.1)
    raise AssertionError(f"no new confirmation email to {address}")


def set_address(page: Page, base_url: str, address: str) -> None:
    page.goto(f"{base_url}/settings/")
    page.fill("input[name=email]", address)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".settings .saved")).to_have_text("Saved.")
    expect(page.locator(".address-state")).to_contain_text("Unconfirmed")


def confirm_address(page: Page, server: DaphneServer, address: str, seen: int = 0) -> None:
    """Set the address in Settings, then follow the link emailed to it (the `seen`+1-th there)."""
    set_address(page, server.url, address)
    page.goto(newest_link_to(server.mail, address, seen))  # type: ignore[attr-defined]
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("h1")).to_have_text("Address confirmed")


def search_for(page: Page, words: str) -> None:
    """Type as a person does: the results follow without pressing Enter."""
    page.locator("input[name=q]").press_sequentially(words, delay=30)


def test_search_finds_as_you_type_and_a_result_opens_the_room_around_it(server, new_user, site_env) -> None:
    create_rooms(site_env, {"search-room": "Searchable"})
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, "search-room")
    send(alice, "the zeppelin launch is on Tuesday")
    # 60 later messages, by someone else: alice's own would count against her flood limit.
    script = (
        "from chat.models import Message, Room\nfrom django.contrib.auth.models import User\n"
        "room = Room.objects.get(slug='search-room')\n"
        "author, _ = User.objects.get_or_create(username='filler-bot')\n"
        "Message.objects.bulk_create(\n"
        "    Message(room=room, author=author, body=f'later {n}') for n in range(60)\n"
        ")\n"
    )
    manage(site_env, "shell", "-c", script)

    bob = new_user(server.url, "bob")
    bob.goto(f"{server.url}/search/")
    search_for(bob, "zeppel")
    hit = bob.locator(".hit", has_text="launch")
    expect(hit).to_be_visible()
    expect(hit.locator("mark")).to_have_text("zeppelin")
    expect(hit).to_contain_text("#Searchable")
    expect(hit).to_contain_text(alice.username)
    assert "q=zeppel" in bob.url  # the address follows, so the results can be shared or reloaded

    hit.locator("a").click()
    target = message_by(bob, "zeppelin launch")
    expect(target).to_be_in_viewport()
    assert re.search(r"/rooms/search-room/messages/\d+/#message-\d+$", bob.url)
    accent = target.evaluate("element => getComputedStyle(element).boxShadow")
    assert accent != "none"  # highlighted
    expect(bob.locator("#members")).to_contain_text(bob.username)
    # The socket has replaced the history with the same one around the message: still in view.
    expect(target).to_be_in_viewport()

    # Paging newer from there, then a live message and a post of one's own still arrive.
    bob.locator(".load-newer").click()
    expect(message_by(bob, "later 59")).to_have_count(1)
    expect(bob.locator(".load-newer")).to_have_count(0)
    send(alice, "live after the permalink")
    expect(message_by(bob, "live after the permalink")).to_have_count(1)
    send(bob, "bob answers from the permalink page")
    expect(message_by(alice, "bob answers from the permalink page")).to_have_count(1)


def test_a_permalink_deep_in_a_long_history_stays_in_view_once_the_socket_replays_it(
    server, new_user, site_env
) -> None:
    """The scroller keeps to the newest messages; the linked one must not scroll away from the reader."""
    create_rooms(site_env, {"long-room": "Long"})
    script = (
        "from chat.models import Message, Room\nfrom django.contrib.auth.models import User\n"
        "room = Room.objects.get(slug='long-room')\n"
        "author, _ = User.objects.get_or_create(username='filler-bot')\n"
        "def fill(word): Message.objects.bulk_create(\n"
        "    Message(room=room, author=author, body=f'{word} {n}') for n in range(60))\n"
        "fill('filler')\n"
        "target = Message.objects.create(room=room, author=author, body='the target one')\n"
        "fill('after')\n"
        "print(target.pk)\n"
    )
    pk = int(manage(site_env, "shell", "-c", script).split()[-1])
    bob = new_user(server.url, "bob")
    bob.goto(f"{server.url}/rooms/long-room/messages/{pk}/#message-{pk}")
    target = message_by(bob, "the target one")
    expect(target).to_be_in_viewport()
    expect(bob.locator("#members")).to_contain_text(bob.username)  # the socket is in
    time.sleep(1)  # and has replaced the history
    expect(target).to_be_in_viewport(timeout=1000)


def test_a_missed_mention_is_emailed_once_the_address_is_confirmed_with_a_link_that_opens_it(
    mail_server, new_user
) -> None:
    bob = new_user(mail_server.url, "bob")
    bob.goto(f"{mail_server.url}/settings/")
    expect(bob.locator("input[name=enabled]")).to_be_checked()
    set_address(bob, mail_server.url, "bob@example.com")
    bob.goto(f"{mail_server.url}/")  # bob is not in the lobby

    alice = new_user(mail_server.url, "alice")
    open_room(alice, mail_server.url)
    send(alice, f"@{bob.username} before the address is confirmed")
    link = newest_link_to(mail_server.mail, "bob@example.com", seen=0)
    time.sleep(0.5)
    assert mention_emails(mail_server.mail) == []  # only the link went to the unconfirmed address

    bob.goto(link)
    bob.get_by_role("button", name="Confirm").click()
    expect(bob.locator("h1")).to_have_text("Address confirmed")
    bob.goto(f"{mail_server.url}/settings/")
    expect(bob.locator(".address-state")).to_have_text("Confirmed: mention emails go to this address.")
    bob.goto(f"{mail_server.url}/")

    send(alice, f"@{bob.username} can you review the rollout plan?")
    send(alice, f"@{bob.username} and this one too")
    [mention] = mention_emails_once_some_came(mail_server.mail)  # one per room per 10 minutes
    assert mention["To"] == "bob@example.com"
    assert mention["Subject"] == f"{alice.username} mentioned you in #Lobby"
    assert "can you review the rollout plan?" in body_of(mention)

    permalink = re.search(r"Open it: (\S+)", body_of(mention))
    assert permalink is not None and permalink.group(1).startswith(mail_server.url)
    bob.goto(permalink.group(1))
    expect(message_by(bob, "can you review the rollout plan?")).to_be_in_viewport()


def test_accounts_sharing_an_address_get_one_email_and_a_blocker_none_from_the_blocked(
    mail_server, new_user
) -> None:
    bob, carol, dave = (new_user(mail_server.url, name) for name in ("bob", "carol", "dave"))
    confirm_address(bob, mail_server, "shared@example.com")
    confirm_address(carol, mail_server, "shared@example.com", seen=1)
    confirm_address(dave, mail_server, "dave@example.com")
    alice = new_user(mail_server.url, "alice")
    dave.goto(f"{mail_server.url}/people/{alice.username}/")
    dave.get_by_role("button", name=f"Block {alice.username}").click()
    expect(dave.get_by_role("button", name=f"Unblock {alice.username}")).to_be_visible()
    for page in (bob, carol, dave):
        page.goto(f"{mail_server.url}/")  # nobody named is in the lobby

    open_room(alice, mail_server.url)
    send(alice, f"@{bob.username} @{carol.username} @{dave.username} all of you, please")
    erin = new_user(mail_server.url, "erin")  # a second poster: the window is per address, not per poster
    open_room(erin, mail_server.url)
    send(erin, f"@{carol.username} and you again")

    mentions = mention_emails_once_some_came(mail_server.mail)
    assert [message["To"] for message in mentions] == ["shared@example.com"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_search_and_settings_look_right(server, new_user, site_env, device: str, scheme: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    room = f"search-look-{device}-{scheme}"
    create_rooms(site_env, {room: "Design review"})
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    open_room(alice, server.url, room)
    for text in (
        "The design review moved to Thursday, bring the mockups.",
        "Can someone share the <b>review</b> notes from last week? They had the colour decisions.",
        "A longer message about the review, so the snippet has to be cut around the word that matched: "
        "we talked about spacing, type sizes, the dark theme and the phone layout for a long while.",
    ):
        send(alice, text)

    alice.goto(f"{server.url}/search/?q=review&room={room}")
    expect(alice.locator(".hit")).to_have_count(3)
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"search-{device}-{scheme}.png")

    alice.locator(".hit a").last.click()
    expect(alice.locator("#members")).to_contain_text(alice.username)
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"permalink-{device}-{scheme}.png")

    alice.goto(f"{server.url}/settings/")
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"settings-{device}-{scheme}.png")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_confirming_an_address_looks_right(mail_server, new_user, device: str, scheme: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    bob = new_user(mail_server.url, "bob", viewport=VIEWPORTS[device])
    bob.emulate_media(color_scheme=scheme)

    def shoot(name: str) -> None:
        assert_fits_the_screen(bob)
        bob.screenshot(path=SCREENSHOTS / f"{name}-{device}-{scheme}.png", full_page=True)

    bob.goto(f"{mail_server.url}/accounts/signup/")  # the optional address, as a newcomer sees it
    expect(bob.locator("#id_email")).to_be_visible()
    shoot("signup")
    set_address(bob, mail_server.url, "bob.with.a.rather.long.address@mail.example.com")
    expect(bob.locator(".link-sent")).to_contain_text("We sent a link to")
    shoot("settings-unconfirmed")
    bob.get_by_role("button", name="Send the link again").click()
    expect(bob.locator(".link-sent")).to_contain_text("We sent a link moments ago")
    shoot("settings-resend-refused")

    link = newest_link_to(mail_server.mail, "bob.with.a.rather.long.address@mail.example.com", seen=0)
    bob.goto(link[:-3] + "xx/")
    expect(bob.locator("h1")).to_have_text("This link can't be used")
    shoot("confirm-tampered")
    bob.goto(link)
    shoot("confirm-ask")
    bob.get_by_role("button", name="Confirm").click()
    expect(bob.locator("h1")).to_have_text("Address confirmed")
    shoot("confirm-done")
    bob.goto(f"{mail_server.url}/settings/")
    expect(bob.locator(".address-state")).to_contain_text("Confirmed")
    shoot("settings-confirmed")
