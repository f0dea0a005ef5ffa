"""An attachment posted over HTTP reaches every open page live, like any message."""

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Attachment, Room
from chat.standing import Account
from chat.tests.files import PDF, image_bytes, upload
from chat.tests.support import NEW_MESSAGE, SocketOpener, client_for, drain, mute_for, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@sync_to_async
def post_file(user: Account, content: bytes, name: str, caption: str = "") -> str:
    client = client_for(user)
    response = client.post(
        "/rooms/lobby/attachments/",
        {"file": upload(content, name), "message": caption},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    return response.text


async def test_an_image_uploaded_by_one_user_appears_for_the_others_live(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    author, reader, visitor = await open_socket(user=alice), await open_socket(user=bob), await open_socket()

    await post_file(alice, image_bytes("PNG", (640, 480)), "sunset.png", caption="look at this")

    attachment = await Attachment.objects.aget()
    for socket in (reader, visitor, author):
        frame = await receive_until(socket, NEW_MESSAGE)
        assert (
            f'<img src="/attachments/{attachment.pk}/thumb/" width="480" height="360" loading="lazy"' in frame
        )
        assert f'href="/attachments/{attachment.pk}/"' in frame
        assert "look at this" in frame


async def test_a_file_without_caption_shows_as_a_card_and_no_empty_text(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    reader = await open_socket(user=bob)

    await post_file(alice, PDF, "minutes.pdf")

    frame = await receive_until(reader, NEW_MESSAGE)
    assert 'class="file-card"' in frame and "minutes.pdf" in frame
    assert 'class="body"' not in frame


async def test_a_refused_upload_shows_nothing_to_anyone(
    open_socket: SocketOpener, lobby: Room, alice: Account, bob: Account
) -> None:
    reader = await open_socket(user=bob)
    await sync_to_async(mute_for)(lobby, alice)
    await drain(reader)

    answer = await post_file(alice, image_bytes(), "cat.png")

    assert "You&#x27;re muted" in answer
    assert not [frame for frame in await drain(reader, quiet=0.5) if NEW_MESSAGE in frame]
