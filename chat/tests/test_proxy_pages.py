"""`manage.py proxy_pages`: the pages HAProxy answers itself (deploy/haproxy.cfg), in Parley's words."""

from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from chat.fragments import notice_html
from chat.uploads import too_big_sentence


def test_writes_the_too_big_page_and_the_htmx_notice_from_parleys_sentence(tmp_path: Path) -> None:
    with override_settings(CHAT_UPLOAD_MAX_BYTES=3 * 1024 * 1024):
        call_command("proxy_pages", str(tmp_path / "pages"))
        sentence = too_big_sentence(None)

    assert sentence == "Files can be at most 3.0\xa0MB (this one is larger)."  # filesizeformat's space
    page = (tmp_path / "pages" / "too-big.html").read_text()
    assert page.lstrip().startswith("<!doctype html>")
    assert '<title id="page-title">File too large · Parley</title>' in page
    assert f"<p>{sentence}</p>" in page
    assert 'href="/static/css/' in page, "styled like every other page"
    assert "csrfmiddlewaretoken" not in page, "the same page for anyone: no token of a session in it"
    # htmx's upload gets the notice line swapped in by id, as Parley's own refusal does.
    fragment = (tmp_path / "pages" / "too-big-fragment.html").read_text()
    assert fragment == notice_html(sentence, error=True)
    assert 'id="chat-notice"' in fragment and 'hx-swap-oob="true"' in fragment and sentence in fragment
