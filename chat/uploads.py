"""What an uploaded file is, decided by its content alone, and a clean copy of it to store.

Accepted: PNG, JPEG, GIF and WebP images (decoded by Pillow, then re-encoded from their pixels,
which drops EXIF and every other metadata, comments and trailing bytes), PDF, and plain text
that decodes as UTF-8. Anything else, and anything that also looks like another format (a
polyglot), is refused with a sentence. Nothing here touches storage or the database.
"""

import html
import io
import re
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParser
from django.template.defaultfilters import filesizeformat
from django.utils.decorators import sync_and_async_middleware
from PIL import Image, ImageOps

# Pillow refuses to decode more than twice this many pixels (DecompressionBombError); we refuse
# anything over the setting ourselves, before decoding, from the header's width and height.
Image.MAX_IMAGE_PIXELS = settings.CHAT_UPLOAD_MAX_PIXELS
# Between one and two times that, Pillow only warns: our own check refuses those, so no warning.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

UNSAFE_NAME = "chat.upload_name_unsafe"
NAME_CHARACTERS = 120


class Refused(Exception):
    """The upload is not stored; the text says why, for the page."""

    def __init__(self, sentence: str, too_big: bool = False) -> None:
        super().__init__(sentence)
        self.too_big = too_big


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


# Pillow format → (content type we serve, format we re-encode to, extension).
IMAGE_FORMATS = {
    "PNG": ("image/png", "PNG", ".png"),
    "JPEG": ("image/jpeg", "JPEG", ".jpg"),
    # A GIF becomes a PNG of its first frame: re-encoding keeps the pixels and nothing else.
    "GIF": ("image/png", "PNG", ".png"),
    "WEBP": ("image/webp", "WEBP", ".webp"),
}
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


def inspect(upload: UploadedFile | None, name_unsafe: bool = False) -> Inspected:
    """The clean copy of an uploaded file, or Refused with why it is not accepted."""
    if name_unsafe:
        raise Refused(
            "File names can't contain / or \\ or control characters. Rename the file and try again."
        )
    if upload is None:
        raise Refused("Choose a file to attach.")
    limit = settings.CHAT_UPLOAD_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise Refused(too_big_sentence(upload.size), too_big=True)
    content = upload.read(limit + 1)
    if len(content) > limit:
        raise Refused(too_big_sentence(len(content)), too_big=True)
    if not content:
        raise Refused("That file is empty.")
    name = display_name(upload.name or "")
    for detect in DETECTORS:
        found = detect(content, name)
        if found is not None:
            return found
    raise Refused(
        "Parley accepts images (PNG, JPEG, GIF, WebP), PDFs and plain text files; this file is none of those."
    )


def too_big_sentence(size: int) -> str:
    limit, actual = filesizeformat(settings.CHAT_UPLOAD_MAX_BYTES), filesizeformat(size)
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


def _image(content: bytes, name: str) -> Inspected | None:
    try:
        probe = Image.open(io.BytesIO(content), formats=list(IMAGE_FORMATS))
    except Image.DecompressionBombError:
        raise Refused("That image has too many pixels.") from None
    except (OSError, ValueError, SyntaxError):
        return None
    file_format = probe.format or ""
    if probe.width * probe.height > settings.CHAT_UPLOAD_MAX_PIXELS:
        raise Refused("That image has too many pixels.")
    _refuse_polyglot(content, _ends_cleanly(content, file_format))
    try:
        probe.verify()
        image: Image.Image = Image.open(io.BytesIO(content), formats=[file_format])
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
    except Image.DecompressionBombError:
        raise Refused("That image has too many pixels.") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise Refused("That image is damaged or incomplete.") from None
    content_type, encode_as, _ = IMAGE_FORMATS[file_format]
    clean = _pixels_only(image, keep_alpha=encode_as != "JPEG")
    thumb = clean.copy()
    thumb.thumbnail(settings.CHAT_THUMBNAIL_SIZE)
    return Inspected(
        content=_encode(clean, encode_as),
        content_type=content_type,
        name=with_extension(name, content_type),
        width=clean.width,
        height=clean.height,
        thumbnail=_encode(thumb, "WEBP"),
        thumb_width=thumb.width,
        thumb_height=thumb.height,
    )


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
    """A new image from the pixels alone: no EXIF, ICC, XMP, comments or other metadata."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha and keep_alpha else "RGB"
    pixels = image.convert(mode)
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    return clean


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
    if PDF_ACTIVE.search(content):
        raise Refused("PDFs with scripts, actions or embedded files are not accepted.")
    _refuse_polyglot(content[5:])
    return Inspected(
        content=content, content_type="application/pdf", name=with_extension(name, "application/pdf")
    )


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


DETECTORS: tuple[Callable[[bytes, str], Inspected | None], ...] = (_image, _pdf, _text)


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
