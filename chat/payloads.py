"""Reading what htmx's websocket extension sends: the form's fields as JSON plus HEADERS."""

import json

from django.conf import settings


class BadFrame(ValueError):
    """A frame the chat cannot use; its text is shown to the sender as it is."""


def parse_ws_send(text_data: str | None, bytes_data: bytes | None) -> dict[str, str]:
    """The form fields of one `ws-send` frame, without htmx's HEADERS."""
    if text_data is None:
        raise BadFrame("Only text messages can be sent here.")
    if len(text_data.encode()) > settings.CHAT_MAX_FRAME_BYTES:
        raise BadFrame("That was too large to send. Nothing was posted.")
    try:
        payload = json.loads(text_data)
    except ValueError:
        raise BadFrame("That could not be read as a chat message. Nothing was posted.") from None
    if not isinstance(payload, dict):
        raise BadFrame("That could not be read as a chat message. Nothing was posted.")
    payload.pop("HEADERS", None)
    # Form fields are strings; anything else (lists, objects) is not from our form.
    return {key: value for key, value in payload.items() if isinstance(value, str)}
