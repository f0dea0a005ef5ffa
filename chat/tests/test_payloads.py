"""Reading ws-send frames: the form's fields come out, anything else gets a sentence for the sender."""

import json

import pytest
from hypothesis import given

from chat.payloads import UNREADABLE, BadFrame, parse_ws_send
from chat.tests.support import FRAMES


def test_a_form_frame_gives_its_fields_without_htmxs_headers() -> None:
    frame = json.dumps({"message": "hi", "action": "post", "HEADERS": {"HX-Request": "true"}})

    assert parse_ws_send(frame, None) == {"message": "hi", "action": "post"}


def test_fields_that_are_not_strings_are_left_out() -> None:
    frame = json.dumps({"message": "hi", "message_id": [1, 2], "extra": {"a": 1}, "n": 3})

    assert parse_ws_send(frame, None) == {"message": "hi"}


@pytest.mark.parametrize(
    ("text", "data", "says"),
    [
        (None, b"\x00\x01", "Only text messages can be sent here."),
        ("not json", None, UNREADABLE),
        ('["a", "list"]', None, UNREADABLE),
        ("[" * 8000 + "]" * 8000, None, UNREADABLE),
        ('{"message": "half an emoji \\ud83d"}', None, "broken character"),
    ],
    ids=["binary", "not-json", "not-an-object", "deeply-nested", "lone-surrogate"],
)
def test_frames_the_chat_cannot_use_are_refused_with_a_reason(
    text: str | None, data: bytes | None, says: str
) -> None:
    with pytest.raises(BadFrame, match=says):
        parse_ws_send(text, data)


def test_a_frame_over_the_size_limit_is_refused_before_it_is_parsed(settings) -> None:
    settings.CHAT_MAX_FRAME_BYTES = 100

    with pytest.raises(BadFrame, match="too large"):
        parse_ws_send(json.dumps({"message": "é" * 60}), None)  # 60 characters, 120+ bytes


@given(FRAMES)
def test_no_frame_raises_anything_but_bad_frame(frame: tuple[str | None, bytes | None]) -> None:
    try:
        fields = parse_ws_send(*frame)
    except BadFrame as refusal:
        assert str(refusal), "every refusal is a sentence for the sender"
    else:
        assert all(isinstance(value.encode(), bytes) for value in fields.values()), "storable strings"
