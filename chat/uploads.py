"""What an uploaded file is, decided by its content alone, and a clean copy of it to store.

Accepted: PNG, JPEG, GIF and WebP images (decoded by Pillow, then re-encoded from their pixels,
which drops EXIF and every other metadata, comments and trailing bytes), PDF, and plain text
that decodes as UTF-8. Anything else, and anything that also looks like another format (a
polyglot), is refused with a sentence. Nothing here touches storage or the database.

Decoding is what an upload costs in memory, whatever its size in bytes: an image's pixels are
limited by what they take decoded (bytes_per_pixel), it is decoded without full-size copies, and
a process decodes only a few at once, one per person (DecodingSlots).
"""

import ctypes
import html
import io
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParser
from django.template.defaultfilters import filesizeformat
from django.utils.decorators import sync_and_async_middleware
from PIL import ExifTags, Image, ImageOps

# Pillow refuses to decode more than twice this many pixels (DecompressionBombError); we refuse
# anything over the setting ourselves, before decoding, from the header's width and height.
Image.MAX_IMAGE_PIXELS = settings.CHAT_UPLOAD_MAX_PIXELS
# Between one and two times that, Pillow only warns: our own check refuses those, so no warning.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _return_freed_images_to_the_system() -> None:
    """Pillow holds an image in blocks of 16 MB. Once one such block is freed, glibc's malloc raises
    its threshold for mapping memory of its own and serves the next ones from the thread's arena,
    which keeps them after they are freed: every request thread that decoded an image then holds
    a decode's worth (measured: 290-360 MiB for two decodes at once instead of 205). A fixed
    threshold gives each allocation of 1 MiB or more its own mapping, returned when freed."""
    try:
        libc = ctypes.CDLL(None)
        set_option = libc.mallopt  # glibc only: others (musl, macOS) keep their own behaviour
    except (OSError, AttributeError):
        return
    set_option(MALLOC_MMAP_THRESHOLD, 1024 * 1024)


MALLOC_MMAP_THRESHOLD = -3  # M_MMAP_THRESHOLD in <malloc.h>
_return_freed_images_to_the_system()

UNSAFE_NAME = "chat.upload_name_unsafe"
REDUCE_TILE = 512  # pixels each way: a tile of RGBA is 1 MiB
NAME_CHARACTERS = 120


class Refused(Exception):
    """The upload is not stored; the text says why, for the page, and the status for other clients."""

    def __init__(self, sentence: str, status: int = 400) -> None:
        super().__init__(sentence)
        self.status = status


@dataclass(frozen=True)
class Inspected:
    """A file as it will be stored: the clean bytes, their type, and what the page shows of it."""

    content: bytes
    content_type: str
    name: str
    width: int | None = None
    height: int | None = None
    thumbnail: bytes = b""
    thumb_width: int | None = None
    thumb_height: int | None = None

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class DecodingSlots:
    """How many images this process decodes at once, and one at a time per person.

    Each decode holds up to CHAT_UPLOAD_MAX_PIXELS times 4 bytes (see bytes_per_pixel), so the slots
    bound what uploads can take from a process. A person's second image while their first is
    being decoded is refused at once; anyone else's waits for a free slot, a few seconds at most.
    """

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.free = threading.BoundedSemaphore(slots)
        self.wait_seconds = wait_seconds
        self.decoding_for: set[int] = set()
        self.people_lock = threading.Lock()

    @contextmanager
    def slot(self, person: int | None) -> Iterator[None]:
        with self._one_per_person(person):
            if not self.free.acquire(timeout=self.wait_seconds):
                raise Refused("Parley is busy with other people's uploads. Try again in a moment.", 503)
            try:
                yield
            finally:
                self.free.release()

    @contextmanager
    def _one_per_person(self, person: int | None) -> Iterator[None]:
        if person is None:
            yield
            return
        with self.people_lock:
            if person in self.decoding_for:
                raise Refused(
                    "Another upload of yours is still being processed. Send this one when it's done.", 429
                )
            self.decoding_for.add(person)
        try:
            yield
        finally:
            with self.people_lock:
                self.decoding_for.discard(person)


decoding_slots = DecodingSlots(settings.CHAT_UPLOAD_DECODES, settings.CHAT_UPLOAD_DECODE_WAIT_SECONDS)


# Pillow format → (content type we serve, format we re-encode to, extension).
IMAGE_FORMATS = {
    "PNG": ("image/png", "PNG", ".png"),
    "JPEG": ("image/jpeg", "JPEG", ".jpg"),
    # A GIF becomes a PNG of its first frame: re-encoding keeps the pixels and nothing else.
    "GIF": ("image/png", "PNG", ".png"),
    "WEBP": ("image/webp", "WEBP", ".webp"),
}
GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
EXTENSIONS = {"image/png": (".png",), "image/jpeg": (".jpg", ".jpeg"), "image/webp": (".webp",)}
EXTENSIONS |= {"application/pdf": (".pdf",), "text/plain": (".txt", ".text", ".md", ".log", ".csv")}

# Other formats' signatures, anywhere in an image or a PDF: a file that is two things at once.
FOREIGN_MARKERS = re.compile(
    rb"<\s*(script|html|body|iframe|svg|object|embed|\?php|!doctype)|javascript:|PK\x03\x04|%PDF-|MZ\x90\x00",
    re.IGNORECASE,
)
# Control characters other than tabs, line and page breaks: a binary file that happens to decode.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
MARKUP_START = re.compile(r"\ufeff?\s*<(!doctype|html|svg|\?xml|script|body|head|iframe)", re.IGNORECASE)
# What a PDF may run or carry inside it.
# (/OpenAction and /AA are left out: most PDFs use them to open at a page; a script they run is a /JS.)
# Names inside compressed object streams are not seen; PDFs are only ever served as downloads.
PDF_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)\b")
# A name may write any of its characters as #xx (/J#61vaScript is /JavaScript): those are decoded
# before the check. A name runs to the next white space or delimiter.
_PDF_NAME_CHARACTERS = rb"[^\x00\t\n\x0c\r /%()<>\[\]{}]*"
PDF_ESCAPED_NAME = re.compile(rb"/" + _PDF_NAME_CHARACTERS + rb"#[0-9A-Fa-f]{2}" + _PDF_NAME_CHARACTERS)
PDF_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")


def inspect(upload: UploadedFile | None, name_unsafe: bool = False, person: int | None = None) -> Inspected:
    """The clean copy of an uploaded file, or Refused with why it is not accepted.

    An image is decoded in one of the process's decoding slots, and only one at a time for
    `person` (see DecodingSlots).
    """
    if name_unsafe:
        raise Refused(
            "File names can't contain / or \\ or control characters. Rename the file and try again."
        )
    if upload is None:
        raise Refused("Choose a file to attach.")
    limit = settings.CHAT_UPLOAD_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise Refused(too_big_sentence(upload.size), status=413)
    content = upload.read(limit + 1)
    if len(content) > limit:
        raise Refused(too_big_sentence(len(content)), status=413)
    if not content:
        raise Refused("That file is empty.")
    name = display_name(upload.name or "")
    found = _image(content, name, person)
    for detect in OTHER_DETECTORS:
        found = found or detect(content, name)
    if found is not None:
        return found
    raise Refused(
        "Parley accepts images (PNG, JPEG, GIF, WebP), PDFs and plain text files; this file is none of those."
    )


def too_big_sentence(size: int | None) -> str:
    """The refusal of a file over the limit; size None: not known (the proxy's page, written ahead)."""
    limit = filesizeformat(settings.CHAT_UPLOAD_MAX_BYTES)
    if size is None:
        return f"Files can be at most {limit} (this one is larger)."
    actual = filesizeformat(size)
    # Rounded alike, "at most 10.0 MB (this one is 10.0 MB)" would read as no reason at all.
    return f"Files can be at most {limit} (this one is {'just over' if actual == limit else actual})."


def display_name(name: str) -> str:
    """The user's file name for showing only: printable, at most NAME_CHARACTERS, never a path."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(char for char in name if char.isprintable() and char not in "/\\").strip(" .")
    if len(name) > NAME_CHARACTERS:
        stem, dot, extension = name.rpartition(".")
        keep = extension[:10] if dot and stem else ""
        name = name[: NAME_CHARACTERS - len(keep) - 2].rstrip() + "…" + ("." + keep if keep else "")
    return name or "file"


def with_extension(name: str, content_type: str) -> str:
    """The name ending as its content is: "report.exe" holding text downloads as "report.exe.txt"."""
    extensions = EXTENSIONS[content_type]
    return name if name.lower().endswith(extensions) else name + extensions[0]


# Detectors: each returns the clean file, None when the content is not its kind, or raises.


def _image(content: bytes, name: str, person: int | None = None) -> Inspected | None:
    try:
        probe = Image.open(io.BytesIO(content), formats=list(IMAGE_FORMATS))
    except Image.DecompressionBombError:
        raise Refused("That image has too many pixels.") from None
    except (OSError, ValueError, SyntaxError):
        return None
    file_format = probe.format or ""
    _refuse_too_many_pixels(probe, file_format)
    _refuse_polyglot(content, _ends_cleanly(content, file_format))
    content_type, encode_as, _ = IMAGE_FORMATS[file_format]
    with decoding_slots.slot(person):
        try:
            probe.verify()
            decoded = _decode(content, file_format, turn=_orientation(probe) > 1)
            clean = _pixels_only(decoded, keep_alpha=encode_as != "JPEG")
            del decoded  # converted, it is freed before the encoding
        except Image.DecompressionBombError:
            raise Refused("That image has too many pixels.") from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise Refused("That image is damaged or incomplete.") from None
        encoded = _encode(clean, encode_as)
        thumbnail = _thumbnail(clean)
    return Inspected(
        content=encoded,
        content_type=content_type,
        name=with_extension(name, content_type),
        width=clean.width,
        height=clean.height,
        thumbnail=_encode(thumbnail, "WEBP"),
        thumb_width=thumbnail.width,
        thumb_height=thumbnail.height,
    )


# Bytes a pixel as Pillow holds it: RGB takes 4, like RGBA, LA and CMYK.
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}


def bytes_per_pixel(probe: Image.Image, file_format: str) -> int:
    """Memory per pixel at the peak of decoding, cleaning and re-encoding this image (measured).

    The decoded image, plus one more full-size image when its mode must change (a palette or
    CMYK to RGB, RGB with a transparent colour to RGBA) or a photo must be turned upright, and
    little else: thumbnails are made tile by tile, PNG and JPEG encode a row at a time. WebP's
    decoder and encoder each keep copies of their own. CHAT_UPLOAD_MAX_PIXELS is counted at 4
    bytes a pixel: costlier images get fewer pixels.
    """
    if file_format == "WEBP":
        return 20
    decoded = PIXEL_BYTES.get(probe.mode, 4)
    stored_mode = _stored_mode(probe, keep_alpha=IMAGE_FORMATS[file_format][1] != "JPEG")
    converted = 0 if stored_mode == probe.mode else PIXEL_BYTES.get(stored_mode, 4)
    turned = decoded if _orientation(probe) > 1 else 0
    return max(4, decoded + max(converted, turned))


def pixel_limit(probe: Image.Image, file_format: str) -> int:
    return settings.CHAT_UPLOAD_MAX_PIXELS * 4 // bytes_per_pixel(probe, file_format)


def _orientation(probe: Image.Image) -> int:
    """The EXIF orientation, from the EXIF read with the header: Pillow's getexif() of a PNG
    decodes the whole image to look for EXIF after the pixels."""
    raw = probe.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
        orientation = int(exif.get(ExifTags.Base.Orientation, 1))
    except (SyntaxError, ValueError, TypeError, OSError):  # broken EXIF: the pixels as they are
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _refuse_too_many_pixels(probe: Image.Image, file_format: str) -> None:
    """From the header's width and height, before anything is decoded."""
    limit = pixel_limit(probe, file_format)
    if probe.width * probe.height > limit:
        raise Refused(
            f"That image has too many pixels ({probe.width} by {probe.height}): "
            f"at most {limit / 1_000_000:.1f} million for this kind of image."
        )


def _decode(content: bytes, file_format: str, turn: bool) -> Image.Image:
    """The first frame's pixels, upright: one full-size image (two while a photo is turned)."""
    image = Image.open(io.BytesIO(content), formats=[file_format])
    image.seek(0)
    image.load()
    if turn:  # only as the header said (bytes_per_pixel counted it): not by EXIF found later
        ImageOps.exif_transpose(image, in_place=True)
    return image


def _thumbnail(image: Image.Image) -> Image.Image:
    """The inline preview, within CHAT_THUMBNAIL_SIZE, never a second full-size image.

    Pillow's own thumbnail() first reduces by a whole factor to twice the box (its reducing_gap),
    but for an image with alpha it copies the whole image first (premultiplied); reducing tile by
    tile copies a tile at a time.
    """
    box_width, box_height = settings.CHAT_THUMBNAIL_SIZE
    factor = int(max(image.width / box_width, image.height / box_height) / 2)
    # Under 2, the image is at most four times the box each way: a copy costs little.
    thumbnail = image.copy() if factor < 2 else _reduced_by_tiles(image, factor)
    thumbnail.thumbnail(settings.CHAT_THUMBNAIL_SIZE)
    return thumbnail


def _reduced_by_tiles(image: Image.Image, factor: int) -> Image.Image:
    reduced = Image.new(image.mode, (-(-image.width // factor), -(-image.height // factor)))
    side = factor * max(1, REDUCE_TILE // factor)  # a multiple of the factor: tiles meet exactly
    for top in range(0, image.height, side):
        for left in range(0, image.width, side):
            tile = image.crop((left, top, min(left + side, image.width), min(top + side, image.height)))
            reduced.paste(tile.reduce(factor), (left // factor, top // factor))
    return reduced


def _ends_cleanly(content: bytes, file_format: str) -> bool:
    """No bytes after the image's own end: where a second file hides in a polyglot."""
    if file_format == "PNG":
        return content.endswith(b"IEND\xaeB`\x82")
    if file_format == "JPEG":
        return content.rstrip(b"\x00").endswith(b"\xff\xd9")
    if file_format == "GIF":
        return content.endswith(b";")
    if file_format == "WEBP":
        return int.from_bytes(content[4:8], "little") + 8 == len(content)
    return False


def _refuse_polyglot(content: bytes, ends_cleanly: bool = True) -> None:
    if not ends_cleanly or FOREIGN_MARKERS.search(content):
        raise Refused("That file is also something other than what it seems (a polyglot), so it was refused.")


def _pixels_only(image: Image.Image, keep_alpha: bool) -> Image.Image:
    """A new image of the pixels alone: no EXIF, ICC, XMP, comments or other metadata.

    Converted only when the format can't store the mode as it is: each conversion is one more
    full-size image in memory.
    """
    mode = _stored_mode(image, keep_alpha)
    pixels = image if image.mode == mode else image.convert(mode)
    # A fresh Image around the same pixels: the file's metadata lives on the old object.
    clean = pixels._new(pixels.im)
    clean.info = {}
    return clean


def _stored_mode(image: Image.Image, keep_alpha: bool) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha and keep_alpha:
        return "LA" if image.mode == "LA" else "RGBA"
    # Greys stay grey (16-bit ones clipped to 8 bits, as in RGB): a third of the memory of RGB.
    return "L" if image.mode in GREY_MODES and not has_alpha else "RGB"


def _encode(image: Image.Image, file_format: str) -> bytes:
    out = io.BytesIO()
    options = {"JPEG": {"quality": 90}, "WEBP": {"quality": 80}}.get(file_format, {})
    image.save(out, format=file_format, **options)
    return out.getvalue()


def _pdf(content: bytes, name: str) -> Inspected | None:
    if not content.startswith(b"%PDF-"):
        return None
    if b"%%EOF" not in content[-1024:]:
        raise Refused("That PDF is damaged or incomplete.")
    if PDF_ACTIVE.search(PDF_ESCAPED_NAME.sub(_unescaped_name, content)):
        raise Refused("PDFs with scripts, actions or embedded files are not accepted.")
    _refuse_polyglot(content[5:])
    return Inspected(
        content=content, content_type="application/pdf", name=with_extension(name, "application/pdf")
    )


def _unescaped_name(name: re.Match[bytes]) -> bytes:
    return PDF_NAME_ESCAPE.sub(lambda escape: bytes([int(escape.group(1), 16)]), name.group(0))


def _text(content: bytes, name: str) -> Inspected | None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if CONTROL_CHARACTERS.search(text):
        return None
    # Served as a plain-text download anyway; refused so that nobody is handed a page or an SVG.
    if MARKUP_START.match(text):
        raise Refused("Web pages, SVG and XML files can't be attached.")
    return Inspected(content=content, content_type="text/plain", name=with_extension(name, "text/plain"))


OTHER_DETECTORS: tuple[Callable[[bytes, str], Inspected | None], ...] = (_pdf, _text)


# File names as sent ---------------------------------------------------------------------


class NameCheckingParser(MultiPartParser):
    """Django's parser, which cuts a path off a file's name; this one also remembers that it did,
    so the upload is refused rather than stored under a name the sender did not give."""

    def __init__(self, META: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(META, *args, **kwargs)
        self.request_meta = META

    def sanitize_file_name(self, file_name: str) -> str | None:
        sent = html.unescape(file_name)
        if any(char in "/\\" or not char.isprintable() for char in sent) or sent in {".", ".."}:
            self.request_meta[UNSAFE_NAME] = True
        return super().sanitize_file_name(file_name)


@sync_and_async_middleware
def strict_upload_names(get_response: Callable) -> Callable:
    """Middleware: every multipart body is parsed by NameCheckingParser (no thread hop either way)."""
    if iscoroutinefunction(get_response):

        async def checking_async(request: HttpRequest) -> HttpResponse:
            request.multipart_parser_class = NameCheckingParser  # type: ignore[assignment]
            return await get_response(request)

        return checking_async

    def checking(request: HttpRequest) -> HttpResponse:
        request.multipart_parser_class = NameCheckingParser  # type: ignore[assignment]
        return get_response(request)

    return checking


def name_was_unsafe(request: HttpRequest) -> bool:
    return bool(request.META.get(UNSAFE_NAME))
