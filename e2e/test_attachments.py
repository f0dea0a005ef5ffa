"""Attachments in real Chromium: picked in the composer, shown live to another person, refused
to people who may not read the room; screenshots of an image message at each width and scheme."""

import pytest
from playwright.sync_api import FilePayload, Page, expect

from chat.tests.files import EXECUTABLE, PDF, image_bytes
from e2e.conftest import SCREENSHOTS, VIEWPORTS, create_rooms, manage, message_by, open_room, send
from e2e.test_look import assert_fits_the_screen


def attach(page: Page, content: bytes, name: str, mime: str = "image/png", caption: str = "") -> None:
    """Pick a file and upload it as a person would; wait until the answer replaced the form."""
    form = page.locator("#upload-form")
    picked: FilePayload = {"name": name, "mimeType": mime, "buffer": content}
    form.locator("input[type=file]").set_input_files(files=[picked])
    form.locator("input[name=message]").fill(caption)
    old_form = form.element_handle()
    form.locator("button[type=submit]").click()
    page.wait_for_function("form => !form.isConnected", arg=old_form)


def thumbnail_loaded(page: Page, text: str) -> None:
    image = message_by(page, text).locator(".attachment-image img")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


@pytest.fixture(scope="module")
def attachment_rooms(site_env: dict[str, str]) -> None:
    create_rooms(
        site_env,
        {"files": "Files"} | {f"photos-{d}-{s}": "Photos" for d in VIEWPORTS for s in ("light", "dark")},
    )


def test_an_image_uploaded_by_one_user_appears_for_another(server, new_user, attachment_rooms) -> None:
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    open_room(alice, server.url, "files")
    open_room(bob, server.url, "files")

    attach(alice, image_bytes("PNG", (900, 600)), "sunset.png", caption="sunset from the roof")

    thumbnail_loaded(bob, "sunset from the roof")
    thumbnail_loaded(alice, "sunset from the roof")
    expect(alice.locator("#upload-form input[type=file]")).to_have_value("")
    expect(alice.locator("#chat-notice")).to_have_text("")
    link = message_by(bob, "sunset from the roof").locator(".attachment-image").get_attribute("href")
    full = bob.request.get(f"{server.url}{link}")
    assert full.status == 200 and full.headers["content-type"] == "image/png"
    assert full.headers["x-content-type-options"] == "nosniff"

    attach(alice, PDF, "minutes.pdf", "application/pdf", caption="the minutes")
    card = message_by(bob, "the minutes").locator(".file-card")
    expect(card).to_contain_text("minutes.pdf")
    with bob.expect_download() as download:
        card.click()
    assert download.value.suggested_filename == "minutes.pdf"


def test_a_crafted_upload_is_refused_with_a_sentence_and_shows_nothing(
    server, new_user, attachment_rooms
) -> None:
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, "files")
    before = alice.locator("#messages .message").count()

    attach(alice, EXECUTABLE, "cat.png", caption="my caption")

    expect(alice.locator("#chat-notice")).to_contain_text("Parley accepts images (PNG, JPEG, GIF, WebP)")
    expect(alice.locator("#upload-form input[name=message]")).to_have_value("my caption")
    expect(alice.locator("#messages .message")).to_have_count(before)


def test_an_upload_over_the_limit_gets_the_sentence_through_daphne(
    server, new_user, attachment_rooms
) -> None:
    alice = new_user(server.url, "alice")
    open_room(alice, server.url, "files")
    before = alice.locator("#messages .message").count()

    attach(alice, b"a" * (12 * 1024 * 1024), "big.txt", "text/plain")

    expect(alice.locator("#chat-notice")).to_have_text(
        "Files can be at most 10.0\xa0MB (this one is 12.0\xa0MB)."
    )
    expect(alice.locator("#messages .message")).to_have_count(before)


def test_a_forbidden_download_is_refused(server, site_env, new_user, browser) -> None:
    alice, bob = new_user(server.url, "alice"), new_user(server.url, "bob")
    manage(
        site_env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User\nfrom chat.models import Membership, Room\n"
        "room, _ = Room.objects.get_or_create(slug='vault', defaults={'name': 'Vault', 'is_public': False})\n"
        f"Membership.objects.create(room=room, user=User.objects.get(username={alice.username!r}))\n",
    )
    open_room(alice, server.url, "vault")
    attach(alice, image_bytes("PNG", (300, 200)), "plans.png", caption="secret plans")
    thumbnail_loaded(alice, "secret plans")
    link = message_by(alice, "secret plans").locator(".attachment-image").get_attribute("href")
    assert link is not None

    visitor = browser.new_context().new_page()
    for path in (link, f"{link}thumb/"):
        assert alice.request.get(f"{server.url}{path}").status == 200
        assert bob.request.get(f"{server.url}{path}").status == 404
        assert visitor.request.get(f"{server.url}{path}").status == 404
    bob.goto(f"{server.url}{link}")
    expect(bob.locator("body")).not_to_contain_text("secret")
    visitor.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", VIEWPORTS)
def test_an_image_message_looks_right(server, new_user, attachment_rooms, device: str, scheme: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    alice = new_user(server.url, "alice", viewport=VIEWPORTS[device])
    bob = new_user(server.url, "bob", viewport=VIEWPORTS[device])
    alice.emulate_media(color_scheme=scheme)
    room = f"photos-{device}-{scheme}"
    open_room(alice, server.url, room)
    open_room(bob, server.url, room)
    send(bob, "Anyone got a picture of the new office?")
    attach(
        alice, image_bytes("JPEG", (1200, 800)), "office.jpg", "image/jpeg", caption="Here it is, first light"
    )
    attach(bob, b"Desk plan:\n- window seats\n- quiet corner\n", "desk-plan.txt", "text/plain")
    thumbnail_loaded(alice, "Here it is, first light")
    expect(alice.locator(".file-card")).to_contain_text("desk-plan.txt")

    expect(alice.locator("#upload-form input[type=file]")).to_be_in_viewport()
    assert_fits_the_screen(alice)
    alice.screenshot(path=SCREENSHOTS / f"attachment-{device}-{scheme}.png")
