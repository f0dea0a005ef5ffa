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

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def upload_over_http(
    base_url: str, session: str, content: bytes, name: str, slug: str = "lobby"
) -> tuple[int, str]:
    """POST a file to a real server's picker as htmx does (its answer is a 200 with the outcome in
    the notice line; a plain post without script gets a page, which needs collected static files
    these servers lack); the status and the answer."""
    import http.client
    import secrets
    from urllib.parse import urlsplit

    boundary = secrets.token_hex(16)
    csrf = secrets.token_hex(16)  # 32 characters: a cookie Django accepts as the secret itself
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\n\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=120)
    try:
        connection.request(
            "POST",
            f"/rooms/{slug}/attachments/",
            body,
            headers={
                "Host": "127.0.0.1",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Cookie": f"sessionid={session}; csrftoken={csrf}",
                "X-CSRFToken": csrf,
                "HX-Request": "true",
            },
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def uploads_at_once(base_url: str, uploads: list[tuple[str, bytes, str]]) -> list[tuple[int, str]]:
    """Each (session, content, name) sent from its own connection, all released at the same moment;
    their answers, in the same order."""
    import threading

    answers: list[tuple[int, str]] = [(0, "")] * len(uploads)
    start = threading.Barrier(len(uploads))

    def send(index: int) -> None:
        session, content, name = uploads[index]
        start.wait()
        answers[index] = upload_over_http(base_url, session, content, name)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def blank_png(width: int, height: int) -> bytes:
    """A complete RGBA PNG of zeros: tiny on the wire (about 1 KB a megapixel), and every pixel
    must be decoded. The costliest image the pixel limit lets through."""
    rows = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 4)  # filter byte, then four zero bytes a pixel
    pixels = b"".join(rows.compress(row) for _ in range(height)) + rows.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
