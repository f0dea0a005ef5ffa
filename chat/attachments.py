"""Attachments: a file posted with a message over HTTP, and its download for readers of the room.

Posting goes through services.post_message (every check a websocket post gets: may post, mute,
lock, slow mode, flood), so the message is stored and broadcast like any other. The clean file
(chat/uploads.py) is written to storage first, under random names, and the row pointing to it is
created in the message's transaction; if the post is refused or fails, the files are deleted.
"""

import uuid
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse

from chat import services, uploads
from chat.forms import CaptionForm
from chat.models import Attachment, Message, Room
from chat.standing import Account, Standing, User

STORAGE_FOLDER = "attachments"


@dataclass(frozen=True)
class Upload:
    """What came of an upload: the message stored, or why not (status for non-htmx clients)."""

    message: Message | None
    refusal: str = ""
    status: int = 200


def post(
    room: Room, user: User, viewer: Standing, upload: UploadedFile | None, data: dict, name_unsafe: bool
) -> Upload:
    """Store `upload` as a message in `room` with the caption in `data`, or say why not."""
    if not isinstance(user, Account):
        return Upload(None, "Sign in to post messages.", 403)
    # The cheap refusals before the file is read or an image decoded; post_message checks them
    # all again, slow mode and flood control atomically with the insert.
    refusal = services.why_not_post(room, viewer)
    if refusal:
        return Upload(None, refusal, 403)
    refusal = services.why_wait(room, user, viewer)
    if refusal:
        return Upload(None, refusal, 400)
    try:
        inspected = uploads.inspect(upload, name_unsafe, person=user.pk)
    except uploads.Refused as refused:
        return Upload(None, str(refused), refused.status)
    stored = _store(inspected)
    try:
        outcome = services.post_message(
            room,
            user,
            data,
            form_class=CaptionForm,
            attach=lambda message: _attach(message, inspected, stored),
        )
    except BaseException:
        _discard(stored)
        raise
    if outcome.message is None:
        _discard(stored)
        form = outcome.form
        sentences = [*form.non_field_errors(), *form.errors.get("message", [])]
        return Upload(None, " ".join(map(str, sentences)), 400)
    return Upload(outcome.message)


@dataclass(frozen=True)
class Stored:
    file: str
    thumbnail: str = ""


def _store(inspected: uploads.Inspected) -> Stored:
    """Write the clean file (and thumbnail) under names that say nothing of the sender's."""
    key = uuid.uuid4().hex
    file = default_storage.save(f"{STORAGE_FOLDER}/{key}", ContentFile(inspected.content))
    if not inspected.thumbnail:
        return Stored(file)
    return Stored(
        file, default_storage.save(f"{STORAGE_FOLDER}/{key}-thumb", ContentFile(inspected.thumbnail))
    )


def _discard(stored: Stored) -> None:
    for name in (stored.file, stored.thumbnail):
        if name:
            default_storage.delete(name)


def _attach(message: Message, inspected: uploads.Inspected, stored: Stored) -> Attachment:
    # Created through the message, so the message knows it (its broadcast asks nothing more).
    return Attachment.objects.create(
        message=message,
        file=stored.file,
        thumbnail=stored.thumbnail,
        name=inspected.name,
        content_type=inspected.content_type,
        size=len(inspected.content),
        width=inspected.width,
        height=inspected.height,
        thumb_width=inspected.thumb_width,
        thumb_height=inspected.thumb_height,
    )


def find(pk: int) -> Attachment | None:
    return Attachment.objects.select_related("message__room").filter(pk=pk).first()


def is_withdrawn(attachment: Attachment) -> bool:
    """Removed by a moderator (the file stays stored for the audit) or deleted by its author."""
    return bool(attachment.message.removed_at or attachment.message.deleted_at)


# The response's own policy: nothing in it may run, load or be framed, even if a browser renders it.
DOWNLOAD_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
)


def download(attachment: Attachment, thumbnail: bool = False) -> FileResponse:
    """The stored file: images inline, everything else as a download, never sniffed."""
    if thumbnail:
        name, content_type = attachment.thumbnail.name, "image/webp"
    else:
        name, content_type = attachment.file.name, attachment.content_type
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    response = FileResponse(
        default_storage.open(str(name), "rb"),
        content_type=content_type,
        as_attachment=not attachment.is_image,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # Asked again every time: a removal or deletion takes it out of reach at once.
    response["Cache-Control"] = "private, no-cache"
    return response
