"""A safe subset of Markdown for message bodies, rendered to HTML once, when a message is saved.

markdown-it-py parses (raw HTML off, so any tag typed is text); nh3 then keeps only the tags,
attributes and URL schemes listed below, whatever the parser produced. Two tools, two lists:
a gap in one is not a hole. Headings, images, rules and tables are switched off in the parser,
so their syntax reads as the text that was typed.

`@username` becomes a link to that person (a core rule on the parsed tokens, after linkify, so
text in links and code stays as typed); which names are people is asked of the caller.

What one message may render to is bounded (`Bounds`): each use of a reference definition copies
its URL, so a few typed characters could otherwise become kilobytes of stored HTML. Past a bound
the text is not formatted and `Rendered.refusal` says why; the HTML is then the text escaped,
linear in its length.
"""

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from urllib.parse import urlsplit

import nh3
from django.conf import settings
from django.urls import reverse
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

TAGS = frozenset({"p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a"})
ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer ugc"
LINK_TARGET = "_blank"
# Usernames are ASCII letters, digits and @ . + - _; an @ inside a word (an address) is no mention.
MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9_.+-]+)")
# A name being typed at the end of the composer's text, for suggestions ("hi @al").
TRAILING_MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9_.+-]*)$")
MENTION_CLASS = "mention"
# Names looked up per message, at most: a message full of @s costs one bounded query.
MAX_MENTIONS = 20
# Lowercased names in, {lowercased name: (user id, username)} out, for those that are people.
FindUsers = Callable[[Collection[str]], Mapping[str, tuple[int, str]]]
# Shown as typed rather than rendered: a message is a line in a chat, not a page.
OFF_RULES = ["heading", "lheading", "hr", "image", "table", "html_block", "html_inline"]


def is_allowed_url(url: str) -> bool:
    """Absolute http(s) and mailto URLs only: no javascript:, data:, relative or scheme-less ones.

    An http(s) URL needs a host: the parser's URL normalising drops a host over 255 characters,
    and "http://" alone is no link (the text stays as typed instead of becoming an empty link).
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    scheme = parts.scheme.lower()
    return scheme in URL_SCHEMES and (scheme == "mailto" or bool(parts.netloc))


def _parser() -> MarkdownIt:
    # store_labels marks each link made from a reference definition, so they can be counted.
    options = {"html": False, "linkify": True, "breaks": True, "typographer": False, "store_labels": True}
    md = MarkdownIt("commonmark", options)
    md.enable(["linkify", "strikethrough"]).disable(OFF_RULES)
    # A link whose URL is refused stays text, so the reader sees what was typed.
    md.validateLink = is_allowed_url  # type: ignore[method-assign]
    md.core.ruler.after("linkify", "mentions", _link_mentions)
    return md


def _plain_texts(state: StateCore) -> list[Token]:
    """Text tokens outside links (code spans and blocks are other token types)."""
    texts = []
    for block in state.tokens:
        depth = 0
        for child in block.children or []:
            depth += {"link_open": 1, "link_close": -1}.get(child.type, 0)
            if child.type == "text" and depth == 0 and "@" in child.content:
                texts.append(child)
    return texts


def _candidates(name: str) -> tuple[str, str]:
    """A name as matched, and without trailing punctuation ("thanks @bob.")."""
    return name.lower(), name.rstrip(".-+").lower()


def _link_mentions(state: StateCore) -> None:
    find: FindUsers | None = state.env.get("find_users")
    texts = _plain_texts(state) if find else []
    names = {c for t in texts for m in MENTION.finditer(t.content) for c in _candidates(m[1]) if c}
    if not find or not names:
        return
    people = find(sorted(names)[:MAX_MENTIONS])
    mentioned: dict[int, None] = state.env.setdefault("mentioned", {})
    for block in state.tokens:
        if block.children:
            block.children = [piece for child in block.children for piece in _split(child, texts, people)]
    for token in state.tokens:
        for child in token.children or []:
            if child.type == "link_open" and child.attrGet("class") == MENTION_CLASS:
                mentioned[int(str(child.meta["user_id"]))] = None


def _split(token: Token, texts: list[Token], people: Mapping[str, tuple[int, str]]) -> list[Token]:
    """A text token cut into text and mention links; other tokens as they are."""
    if not any(token is text for text in texts):
        return [token]
    pieces, start = [], 0
    for match in MENTION.finditer(token.content):
        whole, trimmed = _candidates(match[1])
        name = whole if whole in people else trimmed if trimmed in people else None
        if name is None:
            continue
        user_id, username = people[name]
        end = match.start() + 1 + len(name)
        pieces += [Token("text", "", 0, content=token.content[start : match.start()])]
        pieces += _mention_link(user_id, username)
        start = end
    return [*pieces, Token("text", "", 0, content=token.content[start:])] if pieces else [token]


def _mention_link(user_id: int, username: str) -> list[Token]:
    href = reverse("person", kwargs={"username": username})
    opening = Token(
        "link_open", "a", 1, attrs={"href": href, "class": MENTION_CLASS}, meta={"user_id": user_id}
    )
    return [opening, Token("text", "", 0, content=f"@{username}"), Token("link_close", "a", -1)]


def _is_person_path(url: str) -> bool:
    return url.startswith(reverse("person", kwargs={"username": "x"}).removesuffix("x/"))


def _keep_allowed_urls(tag: str, attribute: str, value: str) -> str | None:
    # Only the mention rule makes relative links: the parser refuses every one typed.
    if attribute == "href" and not (is_allowed_url(value) or _is_person_path(value)):
        return None
    return value


_MARKDOWN = _parser()
_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    # "*" too: nh3 otherwise keeps its default lang and title on every tag.
    attributes={"*": set()} | {tag: set(names) for tag, names in ATTRIBUTES.items()},
    allowed_classes={"a": {MENTION_CLASS}},
    attribute_filter=_keep_allowed_urls,
    url_schemes=set(URL_SCHEMES),
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": LINK_TARGET}},
)


def render(text: str) -> str:
    """The message body as sanitized HTML: blocks of <p>, <pre>, <blockquote> and lists.

    Never empty: text that renders to nothing (a lone link reference definition) shows as typed.
    """
    return render_message(text).html


@lru_cache(maxsize=10_000)
def plain_text(text: str) -> str:
    """What the Markdown reads as, without its marks, on one line: for quoting a message."""
    words = []
    for block in _MARKDOWN.parse(text):
        for child in block.children or []:
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
        if block.type in ("code_block", "fence"):
            words.append(block.content)
        words.append(" ")
    return " ".join("".join(words).split())


@dataclass(frozen=True)
class Rendered:
    html: str
    # The ids of the people linked by @name, in order of first mention.
    mentioned_ids: tuple[int, ...] = ()
    # Why the text was not formatted (it is shown escaped, as typed), when it would render too big.
    refusal: str | None = None


@dataclass(frozen=True)
class Bounds:
    """What one message may render to; the defaults are the CHAT_MESSAGE_MAX_* settings."""

    html_bytes: int
    # Past `ratio_floor_bytes`, the HTML is at most this many times the typed text (both UTF-8).
    html_ratio: int
    ratio_floor_bytes: int
    links: int
    reference_links: int

    @classmethod
    def from_settings(cls) -> "Bounds":
        return cls(
            settings.CHAT_MESSAGE_MAX_HTML_BYTES,
            settings.CHAT_MESSAGE_MAX_HTML_RATIO,
            settings.CHAT_MESSAGE_HTML_RATIO_FLOOR_BYTES,
            settings.CHAT_MESSAGE_MAX_LINKS,
            settings.CHAT_MESSAGE_MAX_REFERENCE_LINKS,
        )

    def html_limit(self, text: str) -> int:
        return min(self.html_bytes, max(self.ratio_floor_bytes, self.html_ratio * len(text.encode())))


def render_message(text: str, find_users: FindUsers | None = None, bounds: Bounds | None = None) -> Rendered:
    """`render`, with each @name that `find_users` knows linked to that person, within `bounds`."""
    bounds = bounds or Bounds.from_settings()
    env: dict = {"find_users": find_users}
    tokens = _MARKDOWN.parse(text, env)
    refusal = _too_many_links(tokens, bounds)
    if refusal:
        return Rendered(_as_typed(text), refusal=refusal)
    html = _CLEANER.clean(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, env)).strip()
    if not html:
        return Rendered(_as_typed(text))
    size, limit = len(html.encode()), bounds.html_limit(text)
    if size > limit:
        return Rendered(_as_typed(text), refusal=_too_big(size, limit))
    return Rendered(html, tuple(env.get("mentioned", ())))


def _as_typed(text: str) -> str:
    """The text escaped, its line breaks kept: at most five bytes for each byte typed."""
    return "<p>" + escape(text, quote=False).replace("\n", "<br>\n") + "</p>"


def _too_many_links(tokens: list[Token], bounds: Bounds) -> str | None:
    links = [child for block in tokens for child in block.children or [] if child.type == "link_open"]
    # Each use of a definition copies its URL: the way a few characters become kilobytes.
    references = sum(1 for link in links if "label" in link.meta)
    if references > bounds.reference_links:
        return (
            f"A message can use link definitions ([name]: URL) at most {bounds.reference_links} times; "
            f"this one uses them {references} times."
        )
    if len(links) > bounds.links:
        return f"A message can hold at most {bounds.links} links; this one has {len(links)}."
    return None


def _too_big(size: int, limit: int) -> str:
    return (
        f"Formatted, this message would take {_kilobytes(size)}, over its limit of {_kilobytes(limit)}. "
        "Send it with fewer or shorter links, or less formatting."
    )


def _kilobytes(size: int) -> str:
    return f"{size / 1024:,.1f} KB"
