"""What uploads can take from a real server: images of each costly kind, as large as the pixel
limit allows, sent at once by several people, against a daphne process with the default settings. Its peak
memory (VmHWM, what the kernel saw at worst) stays within the bound docs/features.md states
("Images and memory")."""

import io
from collections import Counter

from PIL import Image

from chat.tests.files import blank_png, upload_over_http, uploads_at_once
from chat.tests.test_outages import sign_in
from testsupport.servers import DaphneServer

MIB = 1024 * 1024
# The bound in docs/features.md ("Images and memory"): each image being decoded takes at most this
# much more than an idle process, and a process decodes CHAT_UPLOAD_DECODES (2) at once.
PER_DECODE = 128 * MIB
DECODES = 2


def worst_images() -> list[bytes]:
    """Of each costly kind, as many pixels as the default limit (25 million at 4 bytes) lets in."""
    turned = Image.Exif()
    turned[0x0112] = 6
    return [
        blank_png(5000, 5000),  # RGBA: 100 MB decoded from 97 KB
        image_of("PNG", "P", (5000, 4000)),  # a palette, made RGB: 5 bytes a pixel
        image_of("JPEG", "CMYK", (5000, 2500)),  # made RGB: 8 bytes a pixel
        image_of("JPEG", "RGB", (5000, 2500), exif=turned.tobytes()),  # turned upright: 8
        image_of("WEBP", "RGBA", (2500, 2000)),  # WebP's own copies: 20
    ]


def image_of(file_format: str, mode: str, size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, file_format, **options)
    return out.getvalue()


def peak_memory(server: DaphneServer) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line")


def test_worst_case_images_sent_at_once_keep_the_server_within_its_stated_memory(
    start_daphne, site_env: dict[str, str]
) -> None:
    # Long enough a wait that every first upload gets its turn on a busy machine.
    server = start_daphne(CHAT_UPLOAD_DECODE_WAIT_SECONDS="120")
    images = worst_images()
    sessions = [sign_in(site_env)[1] for _ in images]
    for kind, session in zip(("PNG", "JPEG", "WEBP"), sessions, strict=False):  # codecs loaded
        warm_up = upload_over_http(server.url, session, image_of(kind, "RGB", (64, 64)), "warm-up")
        assert warm_up[0] == 200 and "notice error" not in warm_up[1], warm_up[1][-500:]
    idle = peak_memory(server)

    # Everyone sends theirs twice: the second while the first is still being decoded.
    sent = [(session, image, "blank.png") for session, image in zip(sessions, images, strict=True)]
    answers = uploads_at_once(server.url, sent * 2)

    grown = peak_memory(server) - idle
    assert grown <= DECODES * PER_DECODE, (
        f"the server's peak grew by {grown // MIB} MiB, over {DECODES} times {PER_DECODE // MIB} MiB"
    )
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 2 * len(images)}, statuses  # htmx's picker: the outcome is in the answer
    refused = sum("Another upload of yours is still being processed" in page for _, page in answers)
    assert refused == len(images)
