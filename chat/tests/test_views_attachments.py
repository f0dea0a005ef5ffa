"""Attachments over HTTP: posting from the composer's picker, the room page, and downloads.

Every refused upload is checked to store nothing: no message, no attachment row, no file.
"""

import re
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import fragments, moderation, queries, services
from chat.models import Attachment, Ban, Message, Role, Room
from chat.standing import Account
from chat.tests.files import (
    EXECUTABLE,
    PDF,
    SECRET_PLACE,
    image_bytes,
    png_claiming,
    polyglot_png,
    upload,
)
from chat.tests.support import client_for, make_member, mute_for, private_room

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(media: Path) -> list[Path]:
    return [path for path in media.rglob("*") if path.is_file()] if media.exists() else []


def post_file(client: Client, file, caption: str = "", slug: str = "lobby", htmx: bool = True):
    data = {"message": caption} | ({"file": file} if file is not None else {})
    return client.post(f"/rooms/{slug}/attachments/", data, headers=HTMX if htmx else {})


def notice(html: str) -> str:
    found = re.search(r'<p id="chat-notice"[^>]*>(.*?)</p>', html, re.S)
    assert found, "no notice line in the answer"
    return found.group(1).strip()


def thumbnail_tag(html: str) -> str:
    found = re.search(r"<img [^>]*>", html)
    assert found, "no thumbnail in the page"
    return found.group(0)


# Posting ----------------------------------------------------------------------------------


def test_an_image_is_posted_stored_under_a_random_name_and_the_form_comes_back_empty(
    lobby: Room, alice: Account, media: Path
) -> None:
    photo = image_bytes("JPEG", (800, 600), exif=True)

    response = post_file(client_for(alice), upload(photo, "holiday.jpg", "image/jpeg"), caption="the beach")

    assert response.status_code == 200
    assert notice(response.text) == ""
    assert 'id="upload-form"' in response.text and 'value=""' in response.text
    message = Message.objects.get()
    assert (message.author, message.body) == (alice, "the beach")
    attachment = Attachment.objects.get(message=message)
    assert (attachment.name, attachment.content_type) == ("holiday.jpg", "image/jpeg")
    assert (attachment.width, attachment.height, attachment.thumb_width, attachment.thumb_height) == (
        800,
        600,
        480,
        360,
    )
    files = stored_files(media)
    assert len(files) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}(-thumb)?", path.name) for path in files)
    assert all(SECRET_PLACE.encode() not in path.read_bytes() for path in files)


def test_the_room_page_shows_the_thumbnail_to_another_reader_and_a_card_for_other_files(
    lobby: Room, alice: Account, bob: Account
) -> None:
    post_file(client_for(alice), upload(image_bytes("PNG", (1200, 900)), "cat.png"))
    post_file(client_for(alice), upload(PDF, "minutes.pdf", "application/pdf"), caption="read this")
    image, pdf = Attachment.objects.order_by("pk")

    for reader in (client_for(bob), Client()):
        html = reader.get("/rooms/lobby/").text
        tag = thumbnail_tag(html)
        assert f'src="/attachments/{image.pk}/thumb/"' in tag
        assert 'width="480" height="360"' in tag and 'loading="lazy"' in tag and 'alt="cat.png"' in tag
        assert f'href="/attachments/{image.pk}/"' in html
        card = re.search(r'<a class="file-card".*?</a>', html, re.S)
        assert card, "no card for the PDF"
        assert f'href="/attachments/{pdf.pk}/"' in card.group(0)
        assert "minutes.pdf" in card.group(0) and "Download" in card.group(0)
        assert re.search(r"\d+\xa0bytes", card.group(0))
        assert "read this" in html


def test_a_page_of_history_reads_attachments_in_the_same_query(settings, lobby: Room, alice: Account) -> None:
    settings.CHAT_FLOOD_MESSAGES = 10
    services.post_message(lobby, alice, {"message": "plain"})
    with CaptureQueriesContext(connection) as without:
        queries.history_page(lobby)
    for n in range(5):
        post_file(client_for(alice), upload(image_bytes("PNG", (20, 20)), f"{n}.png"))

    with CaptureQueriesContext(connection) as with_files:
        page = queries.history_page(lobby)

    assert len(with_files) == len(without)
    assert sum(message.attachment is not None for message in page.messages) == 5


def test_posting_a_plain_message_asks_nothing_about_attachments(lobby: Room, alice: Account) -> None:
    with CaptureQueriesContext(connection) as posting:
        services.post_message(lobby, alice, {"message": "hello"})

    assert not [query for query in posting.captured_queries if "chat_attachment" in query["sql"]]


def test_the_file_picker_is_on_the_page_for_those_who_may_post(
    lobby: Room, alice: Account, bob: Account
) -> None:
    mute_for(lobby, bob)

    member = client_for(alice).get("/rooms/lobby/").text
    muted = client_for(bob).get("/rooms/lobby/").text
    visitor = Client().get("/rooms/lobby/").text

    assert 'hx-post="/rooms/lobby/attachments/"' in member and 'hx-encoding="multipart/form-data"' in member
    # Its CSRF token comes as a header from the conversation around it, so the socket can redraw it.
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "\w{64}"\}\'', member.split('id="upload-form"')[0])
    for page in (muted, visitor):
        assert 'id="upload-form" hidden' in page and "/attachments/" not in page


# Refusals: a sentence in the notice line, nothing stored ------------------------------------


def assert_nothing_stored(media: Path) -> None:
    assert not Message.objects.exists()
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


def raw_upload(client: Client, file_name: str, content: bytes):
    """A multipart body written by hand: Django's test client would cut a path off the name."""
    boundary = "----parley-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        "/rooms/lobby/attachments/",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=HTMX,
    )


@pytest.mark.parametrize(
    ("content", "sentence", "status"),
    [
        (b"x" * 2049, "Files can be at most 2.0\xa0KB (this one is just over).", 413),
        (EXECUTABLE, "Parley accepts images (PNG, JPEG, GIF, WebP), PDFs and plain text files", 400),
        (polyglot_png(), "a polyglot", 400),
        (b"", "That file is empty.", 400),
    ],
    ids=["oversize", "wrong-type", "polyglot", "zero-bytes"],
)
def test_a_crafted_upload_gets_a_sentence_and_stores_nothing(
    settings, lobby: Room, alice: Account, media: Path, content: bytes, sentence: str, status: int
) -> None:
    settings.CHAT_UPLOAD_MAX_BYTES = 2048
    client = client_for(alice)

    from_htmx = post_file(client, upload(content, "cat.png"), caption="my caption")
    from_elsewhere = post_file(client, upload(content, "cat.png"), caption="my caption", htmx=False)

    assert from_htmx.status_code == 200  # htmx swaps only 2xx answers
    assert from_elsewhere.status_code == status
    for response in (from_htmx, from_elsewhere):
        assert sentence in notice(response.text).replace("&#x27;", "'")
        assert 'class="notice error"' in response.text
        assert 'value="my caption"' in response.text  # the caption is kept
    assert_nothing_stored(media)


@pytest.mark.parametrize("file_name", ["../../etc/cat.png", "..\\..\\cat.png", "sub/cat.png", ".."])
def test_a_file_name_with_path_characters_is_refused(
    lobby: Room, alice: Account, media: Path, file_name: str
) -> None:
    response = raw_upload(client_for(alice), file_name, image_bytes("PNG", (20, 20)))

    assert "File names can&#x27;t contain / or \\" in notice(response.text)
    assert_nothing_stored(media)


def test_the_same_image_with_a_plain_name_is_accepted_by_the_hand_made_body(
    lobby: Room, alice: Account
) -> None:
    response = raw_upload(client_for(alice), "cat.png", image_bytes("PNG", (20, 20)))

    assert notice(response.text) == ""
    assert Attachment.objects.get().name == "cat.png"


def test_no_file_is_a_sentence_too(lobby: Room, alice: Account, media: Path) -> None:
    response = post_file(client_for(alice), None, caption="just words")

    assert notice(response.text) == "Choose a file to attach."
    assert_nothing_stored(media)


def test_visitors_and_the_muted_are_refused_before_anything_is_read(
    lobby: Room, alice: Account, media: Path
) -> None:
    mute_for(lobby, alice)

    muted = post_file(client_for(alice), upload(image_bytes()), htmx=False)
    visitor = post_file(Client(), upload(image_bytes()), htmx=False)

    assert muted.status_code == 403 and "You&#x27;re muted in this room" in notice(muted.text)
    assert visitor.status_code == 403 and notice(visitor.text) == "Sign in to post messages."
    assert 'id="upload-form" hidden' in muted.text
    assert_nothing_stored(media)


@pytest.mark.parametrize(
    ("limit", "sentence"),
    [("flood", "You&#x27;re sending messages too fast"), ("slow mode", "Slow mode is on")],
)
def test_flood_control_and_slow_mode_refuse_before_the_file_is_read(
    settings, lobby: Room, alice: Account, media: Path, limit: str, sentence: str
) -> None:
    settings.CHAT_FLOOD_MESSAGES = 1 if limit == "flood" else 10
    lobby.slow_mode_seconds = 60 if limit == "slow mode" else 0
    lobby.save()
    services.post_message(lobby, alice, {"message": "first"})
    # 25 megapixels that would take a decode to find damaged: the answer is the wait instead.
    costly = upload(png_claiming(5000, 5000))

    response = post_file(client_for(alice), costly, htmx=False)

    assert response.status_code == 400
    assert sentence in notice(response.text)
    assert not Attachment.objects.exists() and Message.objects.count() == 1
    assert stored_files(media) == []


def test_a_caption_over_the_length_limit_is_refused(lobby: Room, alice: Account, media: Path) -> None:
    response = post_file(client_for(alice), upload(image_bytes()), caption="x" * 2001)

    assert "Messages can be at most 2000 characters" in notice(response.text)
    assert_nothing_stored(media)


def test_uploading_to_a_room_you_may_not_read_is_404(alice: Account, bob: Account, media: Path) -> None:
    private_room()

    response = post_file(client_for(bob), upload(image_bytes()), slug="secret")

    assert response.status_code == 404
    assert stored_files(media) == []


# Downloads --------------------------------------------------------------------------------


def posted(client: Client, content: bytes, name: str, slug: str = "lobby") -> Attachment:
    post_file(client, upload(content, name), slug=slug)
    return Attachment.objects.latest("pk")


def test_an_image_is_served_inline_never_sniffed_with_a_locked_down_policy(
    lobby: Room, alice: Account, bob: Account
) -> None:
    image = posted(client_for(alice), image_bytes("PNG", (100, 80)), "cat.png")

    full = client_for(bob).get(f"/attachments/{image.pk}/")
    thumbnail = client_for(bob).get(f"/attachments/{image.pk}/thumb/")

    assert full.status_code == thumbnail.status_code == 200
    assert full["Content-Type"] == "image/png" and thumbnail["Content-Type"] == "image/webp"
    for response in (full, thumbnail):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
        assert "sandbox" in response["Content-Security-Policy"]
        assert response["Content-Disposition"].startswith("inline")
        assert response["Cache-Control"] == "private, no-cache"
    assert full.getvalue() == default_storage.open(str(image.file.name)).read()


@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [(PDF, "minutes.pdf", "application/pdf"), (b"plain words\n", "notes.html", "text/plain; charset=utf-8")],
)
def test_anything_but_an_image_downloads_as_an_attachment(
    lobby: Room, alice: Account, bob: Account, content: bytes, name: str, content_type: str
) -> None:
    file = posted(client_for(alice), content, name)

    response = client_for(bob).get(f"/attachments/{file.pk}/")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert client_for(bob).get(f"/attachments/{file.pk}/thumb/").status_code == 404


def test_files_of_a_private_room_are_refused_to_everyone_who_may_not_read_it(
    alice: Account, bob: Account, carol: Account
) -> None:
    room = private_room()
    make_member(room, alice)
    make_member(room, carol)
    image = posted(client_for(alice), image_bytes(), "secret.png", slug="secret")
    Ban.objects.create(room=room, user=carol)

    for path in (f"/attachments/{image.pk}/", f"/attachments/{image.pk}/thumb/"):
        assert client_for(alice).get(path).status_code == 200
        assert client_for(bob).get(path).status_code == 404  # not a member
        assert Client().get(path).status_code == 404  # a visitor
        assert client_for(carol).get(path).status_code == 403  # banned
    assert Client().get("/attachments/999999/").status_code == 404


def test_a_moderators_removal_takes_the_file_out_of_reach_but_keeps_it_stored(
    lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    image = posted(client_for(alice), image_bytes(), "cat.png")

    moderation.remove_message(moderator, image.message)

    for reader in (bob, alice, moderator):
        assert client_for(reader).get(f"/attachments/{image.pk}/").status_code == 410
        assert client_for(reader).get(f"/attachments/{image.pk}/thumb/").status_code == 410
    assert default_storage.exists(str(image.file.name))
    assert f"/attachments/{image.pk}/" not in client_for(bob).get("/rooms/lobby/").text


def test_the_authors_deletion_deletes_the_file(
    lobby: Room, alice: Account, bob: Account, media: Path, django_capture_on_commit_callbacks
) -> None:
    image = posted(client_for(alice), image_bytes(), "cat.png")

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_own_message(alice, image.message)

    assert client_for(bob).get(f"/attachments/{image.pk}/").status_code == 404
    assert stored_files(media) == []
    assert f"/attachments/{image.pk}/" not in client_for(bob).get("/rooms/lobby/").text


def test_editing_the_caption_keeps_the_file_shown(lobby: Room, alice: Account) -> None:
    image = posted(client_for(alice), image_bytes(), "cat.png")
    services.edit_message(alice, Message.objects.get(), "a better caption")

    html = fragments.edited_message_html(Message.objects.get(), Role.MEMBER)[Role.MEMBER]

    assert "a better caption" in html and f"/attachments/{image.pk}/thumb/" in html


def test_a_reply_to_a_file_without_caption_quotes_it_as_a_file(
    lobby: Room, alice: Account, bob: Account
) -> None:
    image = posted(client_for(alice), image_bytes(), "cat.png")

    services.post_message(lobby, bob, {"message": "nice cat", "reply_to": str(image.message_id)})

    assert '<span class="quote-text">a file</span>' in client_for(bob).get("/rooms/lobby/").text
