from pathlib import Path

from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand, CommandParser
from django.template.loader import render_to_string
from django.test import RequestFactory

from chat import fragments, uploads

# What HAProxy answers itself (deploy/haproxy.cfg), by file name: a body over its cap.
TOO_BIG_PAGE = "too-big.html"
TOO_BIG_FRAGMENT = "too-big-fragment.html"


class Command(BaseCommand):
    help = (
        "Write the pages the proxy answers itself into FOLDER, from Parley's own templates and "
        "sentences: too-big.html (a body over the proxy's cap, for a plain form post) and "
        "too-big-fragment.html (the same notice for htmx's upload). Run after collectstatic, and "
        "again whenever CHAT_UPLOAD_MAX_BYTES or the templates change."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="where to write the pages (created if missing)")

    def handle(self, *args: object, folder: Path, **options: object) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sentence = uploads.too_big_sentence(None)
        pages = {
            TOO_BIG_PAGE: too_big_page(sentence),
            TOO_BIG_FRAGMENT: fragments.notice_html(sentence, error=True),
        }
        for name, html in pages.items():
            (folder / name).write_text(html, encoding="utf-8")
        self.stdout.write(f"Wrote {', '.join(pages)} to {folder}")


def too_big_page(sentence: str) -> str:
    """The refusal page as a signed-out visitor sees it (the proxy answers anyone alike)."""
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    context = {"heading": "File too large", "sentence": sentence}
    return render_to_string("registration/refused.html", context, request)
