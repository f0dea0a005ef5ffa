"""What an upload is, by its content: accepted types cleaned, crafted files refused with a sentence."""

import io

import pytest
from PIL import Image

from chat import uploads
from chat.tests.files import (
    EXECUTABLE,
    HTML_AS_PNG,
    PDF,
    PDF_WITH_SCRIPT,
    SECRET_PLACE,
    SVG,
    image_bytes,
    png_claiming,
    png_with_script_chunk,
    polyglot_png,
    upload,
    zip_bytes,
)


@pytest.mark.parametrize(
    ("file_format", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/png"), ("WEBP", "image/webp")],
)
def test_each_image_kind_is_accepted_by_content_with_a_bounded_thumbnail(file_format, content_type) -> None:
    # Named and labelled as something else: only the bytes count.
    found = uploads.inspect(
        upload(image_bytes(file_format, (1200, 900)), "holiday", "application/x-whatever")
    )

    assert found.content_type == content_type
    assert (found.width, found.height) == (1200, 900)
    assert (found.thumb_width, found.thumb_height) == (480, 360)
    thumbnail = Image.open(io.BytesIO(found.thumbnail))
    assert thumbnail.format == "WEBP" and thumbnail.size == (480, 360)
    assert found.name == "holiday" + uploads.EXTENSIONS[content_type][0]


def test_a_photo_loses_its_exif_and_comments() -> None:
    original = image_bytes("JPEG", (200, 100), exif=True)
    assert SECRET_PLACE.encode() in original and b"SpyCam" in original

    found = uploads.inspect(upload(original, "me.jpg", "image/jpeg"))

    assert SECRET_PLACE.encode() not in found.content and b"SpyCam" not in found.content
    stored = Image.open(io.BytesIO(found.content))
    assert not stored.getexif() and "comment" not in stored.info
    assert found.name == "me.jpg"


def test_a_small_image_keeps_its_size_as_thumbnail() -> None:
    found = uploads.inspect(upload(image_bytes("PNG", (40, 30))))

    assert (found.thumb_width, found.thumb_height) == (40, 30)


def test_pdf_and_utf8_text_are_accepted_and_named_for_what_they_are() -> None:
    pdf = uploads.inspect(upload(PDF, "report.pdf", "application/pdf"))
    text = uploads.inspect(upload("Grüße, notes\n".encode(), "notes.exe", "application/octet-stream"))

    assert (pdf.content_type, pdf.name, pdf.thumbnail) == ("application/pdf", "report.pdf", b"")
    assert (text.content_type, text.name) == ("text/plain", "notes.exe.txt")
    assert not text.is_image and text.content == "Grüße, notes\n".encode()


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (EXECUTABLE, "this file is none of those"),
        (zip_bytes(), "this file is none of those"),
        ("café".encode("latin-1") + bytes(range(1, 9)), "this file is none of those"),
        (HTML_AS_PNG, "Web pages, SVG and XML files can't be attached."),
        (SVG, "Web pages, SVG and XML files can't be attached."),
    ],
    ids=["executable", "zip", "binary", "html-named-png", "svg"],
)
def test_a_wrong_type_is_refused_whatever_its_name(content: bytes, sentence: str) -> None:
    with pytest.raises(uploads.Refused, match=sentence):
        uploads.inspect(upload(content, "cat.png"))


@pytest.mark.parametrize(
    "content",
    [polyglot_png(), png_with_script_chunk(), image_bytes("GIF", (20, 20)) + b"<script>alert(1)</script>"],
    ids=["png+zip", "png-with-html-chunk", "gif+script"],
)
def test_a_polyglot_is_refused(content: bytes) -> None:
    with pytest.raises(uploads.Refused, match="polyglot"):
        uploads.inspect(upload(content))


def test_a_pdf_that_runs_scripts_is_refused() -> None:
    with pytest.raises(uploads.Refused, match="scripts"):
        uploads.inspect(upload(PDF_WITH_SCRIPT, "invoice.pdf", "application/pdf"))


def test_zero_bytes_are_refused() -> None:
    with pytest.raises(uploads.Refused, match=r"That file is empty\."):
        uploads.inspect(upload(b"", "empty.txt", "text/plain"))


def test_an_oversized_file_is_refused_with_the_limit(settings) -> None:
    settings.CHAT_UPLOAD_MAX_BYTES = 1000

    with pytest.raises(
        uploads.Refused, match=r"at most 1000\xa0bytes \(this one is 1001\xa0bytes\)"
    ) as refused:
        uploads.inspect(upload(b"a" * 1001, "big.txt", "text/plain"))

    assert refused.value.status == 413


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(20_000, 20_000), (7_000, 7_000)], ids=["bomb", "over-the-limit"])
def test_an_image_with_too_many_pixels_is_refused_before_decoding(size) -> None:
    with pytest.raises(uploads.Refused, match="too many pixels"):
        uploads.inspect(upload(png_claiming(*size)))


def test_a_truncated_image_is_refused() -> None:
    whole = image_bytes("PNG", (300, 300))
    damaged = whole[: len(whole) // 2] + whole[-12:]  # keeps its end marker

    with pytest.raises(uploads.Refused, match="damaged"):
        uploads.inspect(upload(damaged))


def test_a_name_with_path_characters_is_refused() -> None:
    with pytest.raises(uploads.Refused, match="File names can't contain"):
        uploads.inspect(upload(image_bytes()), name_unsafe=True)


def test_display_names_are_printable_short_and_never_paths() -> None:
    assert uploads.display_name("a\u202eb\x00c.png") == "abc.png"
    assert uploads.display_name("...") == "file"
    long_name = uploads.display_name("x" * 300 + ".jpeg")
    assert len(long_name) <= uploads.NAME_CHARACTERS and long_name.endswith("….jpeg")


def test_a_pdf_that_opens_at_a_page_is_accepted() -> None:
    opening = PDF.replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction [3 0 R /Fit]")

    assert uploads.inspect(upload(opening, "paper.pdf", "application/pdf")).content_type == "application/pdf"


@pytest.mark.parametrize("name", [b"/J#61vaScript", b"/L#61unch", b"/Embedded#46iles", b"/#4A#53"])
def test_a_pdf_naming_scripts_or_files_with_escapes_is_refused(name: bytes) -> None:
    escaped = PDF.replace(b"/Type /Catalog", b"/Type /Catalog /Names << " + name + b" 3 0 R >>")

    with pytest.raises(uploads.Refused, match="scripts, actions or embedded files"):
        uploads.inspect(upload(escaped, "invoice.pdf", "application/pdf"))


def test_a_png_stored_without_conversion_keeps_no_profile_or_text() -> None:
    from PIL import ImageCms, PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", SECRET_PLACE)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = io.BytesIO()
    Image.new("RGBA", (50, 40), (200, 10, 10, 128)).save(original, "PNG", pnginfo=text, icc_profile=profile)

    found = uploads.inspect(upload(original.getvalue()))

    stored = Image.open(io.BytesIO(found.content))
    assert stored.mode == "RGBA" and stored.getpixel((0, 0)) == (200, 10, 10, 128)
    assert SECRET_PLACE.encode() not in found.content and "icc_profile" not in stored.info


def test_the_thumbnail_of_a_large_image_with_alpha_shows_the_whole_picture() -> None:
    # Opaque red on the left, transparent on the right, green along the bottom: each tile reduced
    # must land where it belongs.
    picture = Image.new("RGBA", (2400, 1800), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (0, 0, 1200, 1800))
    picture.paste((0, 255, 0, 255), (0, 1500, 2400, 1800))
    original = io.BytesIO()
    picture.save(original, "PNG")

    found = uploads.inspect(upload(original.getvalue()))

    thumbnail = Image.open(io.BytesIO(found.thumbnail)).convert("RGBA")
    assert thumbnail.size == (480, 360) == (found.thumb_width, found.thumb_height)
    red, clear, green = (pixel(thumbnail, at) for at in ((100, 100), (380, 100), (240, 340)))
    assert red[0] > 240 and red[1] < 15 and red[3] == 255
    assert clear[3] == 0
    assert green[1] > 240 and green[0] < 15


def pixel(image: Image.Image, at: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(at)
    assert isinstance(value, tuple)
    return value


def image_of(file_format: str, mode: str, size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, file_format, **options)
    return out.getvalue()


TURNED = Image.Exif()
TURNED[0x0112] = 6  # Orientation: turn a quarter to be upright


def test_a_photo_taken_sideways_is_stored_upright_without_its_exif() -> None:
    sideways = Image.new("RGB", (300, 200), "white")
    sideways.paste((255, 0, 0), (0, 0, 50, 200))  # red along the left edge as stored
    original = io.BytesIO()
    sideways.save(original, "JPEG", exif=TURNED.tobytes())

    found = uploads.inspect(upload(original.getvalue(), "portrait.jpg", "image/jpeg"))

    stored = Image.open(io.BytesIO(found.content))
    assert (found.width, found.height) == stored.size == (200, 300)
    assert not stored.getexif()
    top = pixel(stored.convert("RGB"), (100, 10))
    assert top[0] > 200 and top[1] < 60  # turned a quarter clockwise: the left edge is on top


def test_a_photo_with_broken_exif_is_stored_as_it_is() -> None:
    original = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(original, "JPEG", exif=b"Exif\x00\x00garbage")

    found = uploads.inspect(upload(original.getvalue(), "odd.jpg", "image/jpeg"))

    assert (found.width, found.height) == (300, 200)
    assert b"garbage" not in found.content


@pytest.mark.parametrize(
    ("file_format", "mode", "options", "allowed", "refused"),
    [
        ("PNG", "RGBA", {}, (1000, 1000), (1001, 1000)),
        ("PNG", "P", {}, (800, 1000), (801, 1000)),  # to RGB: 5 bytes a pixel
        ("PNG", "RGB", {"transparency": (0, 0, 0)}, (500, 1000), (501, 1000)),  # to RGBA: 8
        ("JPEG", "CMYK", {}, (500, 1000), (501, 1000)),  # to RGB: 8
        ("JPEG", "RGB", {"exif": TURNED.tobytes()}, (500, 1000), (501, 1000)),  # turned upright: 8
        ("WEBP", "RGB", {}, (200, 1000), (201, 1000)),  # its decoder and encoder: 20
    ],
    ids=["rgba", "palette", "transparent-colour", "cmyk", "turned", "webp"],
)
def test_images_that_cost_more_memory_per_pixel_may_have_fewer_pixels(
    settings,
    file_format: str,
    mode: str,
    options: dict,
    allowed: tuple[int, int],
    refused: tuple[int, int],
) -> None:
    settings.CHAT_UPLOAD_MAX_PIXELS = 1_000_000  # 4 MB of pixels for any image

    accepted = uploads.inspect(upload(image_of(file_format, mode, allowed, **options)))
    assert {accepted.width, accepted.height} == set(allowed)
    with pytest.raises(uploads.Refused, match=r"too many pixels \(\d+ by \d+\): at most [\d.]+ million"):
        uploads.inspect(upload(image_of(file_format, mode, refused, **options)))


def test_one_person_decodes_one_image_at_a_time_and_a_process_a_bounded_number() -> None:
    slots = uploads.DecodingSlots(1, wait_seconds=0.05)

    with slots.slot(person=1):
        with pytest.raises(uploads.Refused, match="Another upload of yours is still being processed") as own:
            _decode_in(slots, person=1)
        with pytest.raises(uploads.Refused, match="busy with other people's uploads") as busy:
            _decode_in(slots, person=2)

    assert (own.value.status, busy.value.status) == (429, 503)
    _decode_in(slots, person=2)  # free again


def _decode_in(slots: uploads.DecodingSlots, person: int) -> None:
    with slots.slot(person):
        pass
