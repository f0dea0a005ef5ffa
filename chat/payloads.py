"""Reading what htmx's websocket extension sends: the form's fields as JSON plus HEADERS."""

import json

from django.conf import settings

UNREADABLE = "That could not be read as a chat message. Nothing was posted."


class BadFrame(ValueError):
    """A frame the chat cannot use; its text is shown to the sender as it is."""


def parse_ws_send(text_data: str | None, bytes_data: bytes | None) -> dict[str, str]:
    """The form fields of one `ws-send` frame, without htmx's HEADERS."""
    if text_data is None:
        raise BadFrame("Only text messages can be sent here.")
    # surrogatepass: a lone surrogate is measured here and refused below, with its own sentence.
    if len(text_data.encode("utf-8", "surrogatepass")) > settings.CHAT_MAX_FRAME_BYTES:
        raise BadFrame("That was too large to send. Nothing was posted.")
    try:
        payload = json.loads(text_data)
    except (ValueError, RecursionError):
        raise BadFrame(UNREADABLE) from None
    if not isinstance(payload, dict):
        raise BadFrame(UNREADABLE)
    payload.pop("HEADERS", None)
    # Form fields are strings; anything else (lists, objects) is not from our form.
    fields = {key: value for key, value in payload.items() if isinstance(value, str)}
    if not all(_is_storable(text) for text in (*fields, *fields.values())):
        raise BadFrame("That message has a broken character in it (half an emoji?). Nothing was posted.")
    return fields


def _is_storable(text: str) -> bool:
    """False for lone UTF-16 surrogates, which JSON allows but no database or socket can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
