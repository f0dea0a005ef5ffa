"""Files for the attachment tests: real images made with Pillow, and crafted uploads.

Kept apart from support.py because only the attachment tests (unit, view and e2e) use them.
"""

import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

# A GPS position in a photo's EXIF: what must never reach another reader.
SECRET_PLACE = "Secret Street 1"


def image_bytes(file_format: str = "PNG", size: tuple[int, int] = (640, 480), exif: bool = False) -> bytes:
    """A gradient picture (so it compresses like a photo, not like a flat colour)."""
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // size[0], y * 255 // size[1], 128) for y in range(size[1]) for x in range(size[0])]
    )
    out = io.BytesIO()
    options: dict = {}
    if exif:
        metadata = Image.Exif()
        metadata[0x010F] = "SpyCam"  # Make
        metadata[0x0131] = SECRET_PLACE  # Software: any text tag will do to find it again
        metadata[0x0112] = 1  # Orientation
        options["exif"] = metadata.tobytes()
    if file_format == "JPEG":
        options["comment"] = b"taken at " + SECRET_PLACE.encode()
    image.save(out, format=file_format, **options)
    return out.getvalue()


def upload(content: bytes, name: str = "picture.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
PDF_WITH_SCRIPT = PDF.replace(
    b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >>"
)
# A Windows program, named as a picture.
EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4
HTML_AS_PNG = b"<!doctype html><script>alert(document.cookie)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'


def zip_bytes() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("index.html", "<script>alert(1)</script>")
    return out.getvalue()


def polyglot_png() -> bytes:
    """A real PNG with a ZIP archive appended: a picture to Pillow, an archive to an unzipper."""
    return image_bytes("PNG", (32, 32)) + zip_bytes()


def png_with_script_chunk() -> bytes:
    """A real PNG carrying HTML in a text chunk, before its end: a browser sniffing it finds markup."""
    image = Image.new("RGB", (16, 16), "red")
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width by height pixels: a decompression bomb when large."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
