"""A safe subset of Markdown for message bodies, rendered to HTML once, when a message is saved.

markdown-it-py parses (raw HTML off, so any tag typed is text); nh3 then keeps only the tags,
attributes and URL schemes listed below, whatever the parser produced. Two tools, two lists:
a gap in one is not a hole. Headings, images, rules and tables are switched off in the parser,
so their syntax reads as the text that was typed.
"""

from html import escape
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt

TAGS = frozenset({"p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a"})
ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer ugc"
LINK_TARGET = "_blank"
# Shown as typed rather than rendered: a message is a line in a chat, not a page.
OFF_RULES = ["heading", "lheading", "hr", "image", "table", "html_block", "html_inline"]


def is_allowed_url(url: str) -> bool:
    """Absolute http(s) and mailto URLs only: no javascript:, data:, relative or scheme-less ones."""
    try:
        scheme = urlsplit(url.strip()).scheme
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    return scheme.lower() in URL_SCHEMES


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True, "typographer": False})
    md.enable(["linkify", "strikethrough"]).disable(OFF_RULES)
    # A link whose URL is refused stays text, so the reader sees what was typed.
    md.validateLink = is_allowed_url  # type: ignore[method-assign]
    return md


def _keep_allowed_urls(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href" and not is_allowed_url(value):
        return None
    return value


_MARKDOWN = _parser()
_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    # "*" too: nh3 otherwise keeps its default lang and title on every tag.
    attributes={"*": set()} | {tag: set(names) for tag, names in ATTRIBUTES.items()},
    attribute_filter=_keep_allowed_urls,
    url_schemes=set(URL_SCHEMES),
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": LINK_TARGET}},
)


def render(text: str) -> str:
    """The message body as sanitized HTML: blocks of <p>, <pre>, <blockquote> and lists.

    Never empty: text that renders to nothing (a lone link reference definition) shows as typed.
    """
    return _CLEANER.clean(_MARKDOWN.render(text)).strip() or f"<p>{escape(text, quote=False)}</p>"
