"""Message formatting: the Markdown people use comes out right, and nothing hostile comes out active."""

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.formatting import (
    ATTRIBUTES,
    LINK_REL,
    LINK_TARGET,
    TAGS,
    Bounds,
    is_allowed_url,
    render,
    render_message,
)
from testsupport.hostile import HOSTILE, LONG_URL, OVERLONG_HOST, REFERENCE_BLOWUP

# Attributes the sanitizer itself puts on links, beyond what it keeps from the parser's output.
ADDED = {"a": {"rel", "target"}}


class Elements(HTMLParser):
    """Every element and attribute in a fragment, as a browser's tokenizer would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def assert_inert(html: str) -> None:
    """Only allowlisted tags and attributes; links only to http(s)/mailto, opening safely."""
    for tag, attrs in Elements(html).found:
        assert tag in TAGS, f"<{tag}> got through: {html}"
        allowed = ATTRIBUTES.get(tag, set()) | ADDED.get(tag, set())
        assert set(attrs) <= allowed, f"<{tag} {attrs}> got through: {html}"
        if tag == "a":
            # nh3 drops a URL it cannot parse (e.g. a host of U+FFFD), leaving an inert <a>.
            href = attrs.get("href", "https://inert.example")
            assert is_allowed_url(href), html
            assert href.split(":", 1)[0].lower() in {"http", "https", "mailto"}, html
            assert (attrs["rel"], attrs["target"]) == (LINK_REL, LINK_TARGET), html
    lowered = html.lower()
    for active in ("<script", "<img", "<svg", "<iframe", "<style", "<object", "<embed", "<form", "<input"):
        assert active not in lowered, html
    for attribute in (" on", " hx-", " ws-", " data-hx", " style=", " src=", " srcdoc="):
        assert all(attribute not in tag_text for tag_text in _tag_texts(html)), html


def _tag_texts(html: str) -> list[str]:
    """The raw text of every tag (between < and >), where an attribute would be."""
    return [chunk.split(">", 1)[0].lower() for chunk in html.split("<")[1:]]


# What people use ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "**bold** *italic* _also_ ~~struck~~",
            "<p><strong>bold</strong> <em>italic</em> <em>also</em> <s>struck</s></p>",
        ),
        ("use `git status` first", "<p>use <code>git status</code> first</p>"),
        ("```\nif x < 1:\n    go()\n```", "<pre><code>if x &lt; 1:\n    go()\n</code></pre>"),
        ("```python\nprint()\n```", "<pre><code>print()\n</code></pre>"),
        ("> quoted\n> twice", "<blockquote>\n<p>quoted<br>\ntwice</p>\n</blockquote>"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>'),
        ("first line\nsecond line", "<p>first line<br>\nsecond line</p>"),
        ("one\n\ntwo", "<p>one</p>\n<p>two</p>"),
        ("a < b && c > d", "<p>a &lt; b &amp;&amp; c &gt; d</p>"),
        ("# not a heading", "<p># not a heading</p>"),
        ("---", "<p>---</p>"),
        ("[ref]: https://example.com", "<p>[ref]: https://example.com</p>"),
    ],
)
def test_markdown_people_use_renders_as_expected(text: str, html: str) -> None:
    assert render(text) == html


LINK = f'target="{LINK_TARGET}" rel="{LINK_REL}"'


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "[docs](https://example.com/a?b=1&c=2)",
            f'<a href="https://example.com/a?b=1&amp;c=2" {LINK}>docs</a>',
        ),
        ("see https://example.com/x.", f'<a href="https://example.com/x" {LINK}>https://example.com/x</a>.'),
        ("at example.org today", f'<a href="http://example.org" {LINK}>example.org</a>'),
        ("<https://example.com>", f'<a href="https://example.com" {LINK}>https://example.com</a>'),
        ("mail bob@example.com", f'<a href="mailto:bob@example.com" {LINK}>bob@example.com</a>'),
        ("[write](mailto:bob@example.com)", f'<a href="mailto:bob@example.com" {LINK}>write</a>'),
    ],
)
def test_links_open_in_a_new_tab_without_referrer_or_ranking(text: str, html: str) -> None:
    assert html in render(text)
    assert_inert(render(text))


@pytest.mark.parametrize(
    "text",
    ["[home](/admin/)", "[p](//evil.example/x)", "ftp://example.com/file", "[x](irc://example.com)"],
)
def test_relative_and_other_scheme_links_stay_text(text: str) -> None:
    assert "<a" not in render(text)


# What attackers try ------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_comes_out_inert(text: str) -> None:
    html = render(text)

    assert_inert(html)
    assert "javascript:" not in "".join(attrs.get("href", "") for _, attrs in Elements(html).found)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<div hx-get="/admin/">x</div>', '&lt;div hx-get="/admin/"&gt;x&lt;/div&gt;'),
        ("[click](javascript:alert(1))", "[click](javascript:alert(1))"),
        ("![x](javascript:alert(1))", "![x](javascript:alert(1))"),
    ],
)
def test_raw_html_and_refused_links_show_as_the_text_typed(text: str, shown: str) -> None:
    assert shown in render(text)


# Whatever the text ---------------------------------------------------------------------------

# Pieces of Markdown and HTML that combine into tricky input more often than random text would.
PIECES = [
    "*",
    "**",
    "_",
    "~~",
    "`",
    "```",
    "\n",
    "\n\n",
    "> ",
    "- ",
    "1. ",
    "    ",
    "[",
    "]",
    "(",
    ")",
    "<",
    ">",
    "!",
    "&",
    "&#106;",
    "&#x3a;",
    "&lt;",
    '"',
    "'",
    "=",
    ":",
    "//",
    "javascript:",
    "data:",
    "vbscript:",
    "http://",
    "https://",
    "mailto:",
    "www.",
    ".com",
    "@",
    "<script>",
    "<img src=x onerror=",
    "<a href=",
    " hx-get=",
    " ws-send",
    " onclick=",
    "<svg ",
    "<iframe ",
    "</",
    "\t",
    "\u0000",
    "\u200b",
    "]: ",
]
markdownish = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=60).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.text(max_size=2000), markdownish))
def test_any_text_renders_only_allowlisted_tags_attributes_and_urls(text: str) -> None:
    html = render(text)

    assert html  # never an empty message
    assert_inert(html)
    # Within its bound, or the text as typed (escaped: at most 5 bytes per byte, `&` -> `&amp;`).
    assert len(html.encode()) <= max(Bounds.from_settings().html_limit(text), 5 * len(text.encode()) + 7)


# How much one message may render to --------------------------------------------------------


def text_of(html: str) -> str:
    """What a reader sees of a fragment: its text, without tags or line breaks."""
    shown = Text(html).text
    return "".join(shown.split())


class Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.feed(html)
        self.close()

    def handle_data(self, data: str) -> None:
        self.text += data


SEVERAL_LINKS = (
    "**Release notes**: see [the changelog](https://example.org/changelog), https://example.com/docs, "
    "www.example.net and mail@example.com; *thanks* ~~all~~ `everyone`\n- [one](https://a.example)\n"
    "- [two][2]\n\n[2]: https://b.example/two"
)


def test_a_message_with_several_links_and_formatting_renders_in_full() -> None:
    rendered = render_message(SEVERAL_LINKS)

    assert rendered.refusal is None
    assert rendered.html.count("<a href=") == 6
    assert "<strong>Release notes</strong>" in rendered.html and "<li>" in rendered.html


def test_reference_links_multiplying_the_text_are_not_formatted_and_say_why() -> None:
    """The issue's 2,000 characters that rendered to 265 KB (133 times the text)."""
    rendered = render_message(REFERENCE_BLOWUP)

    assert rendered.refusal == (
        "A message can use link definitions ([name]: URL) at most 20 times; this one uses them 248 times."
    )
    assert len(rendered.html.encode()) < 1.1 * len(REFERENCE_BLOWUP)
    assert "<a" not in rendered.html and text_of(rendered.html) == "".join(REFERENCE_BLOWUP.split())


def test_a_few_reference_links_still_render() -> None:
    text = "[a][x] and [b][x]\n\n[x]: " + LONG_URL

    rendered = render_message(text)

    assert rendered.refusal is None and rendered.html.count(f'<a href="{LONG_URL}"') == 2


def test_more_links_than_the_limit_are_not_formatted() -> None:
    at_most = " ".join(f"https://example.com/{n}" for n in range(50))

    assert render_message(at_most).html.count("<a ") == 50
    too_many = render_message(at_most + " https://example.com/50")
    assert too_many.refusal == "A message can hold at most 50 links; this one has 51."
    assert "<a" not in too_many.html and "https://example.com/50" in too_many.html


def test_markup_over_the_byte_cap_is_not_formatted() -> None:
    nested = "1. - > 1. - > 1. - > x\n" * 80  # 1,840 characters, 16.5 KB of nested lists and quotes

    rendered = render_message(nested)

    assert rendered.refusal == (
        "Formatted, this message would take 16.5 KB, over its limit of 16.0 KB. "
        "Send it with fewer or shorter links, or less formatting."
    )
    assert rendered.html.startswith("<p>1. - &gt; 1.") and len(rendered.html.encode()) < 3 * len(nested)


def test_markup_over_the_ratio_to_the_typed_text_is_not_formatted() -> None:
    emphasis = "*a* " * 100  # 400 bytes, 1,106 formatted
    bounds = Bounds(html_bytes=16384, html_ratio=2, ratio_floor_bytes=500, links=50, reference_links=20)

    assert render_message(emphasis, bounds=bounds).refusal == (
        "Formatted, this message would take 1.1 KB, over its limit of 0.8 KB. "
        "Send it with fewer or shorter links, or less formatting."
    )
    assert render_message(emphasis, bounds=Bounds(16384, 3, 500, 50, 20)).refusal is None
    # A short message may always reach the floor: one mention or link is many times its length.
    assert render_message("a.io", bounds=Bounds(16384, 1, 1000, 50, 20)).html.startswith("<p><a ")


@pytest.mark.parametrize(
    "text",
    [
        OVERLONG_HOST,
        "see www." + "a." * 900 + " ok",
        "[t](http://" + "a." * 900 + ")",
        "<https://" + "a." * 900 + ">",
    ],
)
def test_a_link_with_an_overlong_host_shows_all_the_text_typed(text: str) -> None:
    """The URL parser drops a host over 255 characters: that link was stored empty ("http://")."""
    html = render(text)

    assert text_of(html) == "".join(text.split())
    assert "<a" not in html


def test_an_http_url_without_a_host_is_no_link() -> None:
    assert not is_allowed_url("http://") and not is_allowed_url("https:///path")
    assert is_allowed_url("https://example.com") and is_allowed_url("mailto:bob@example.com")


# Mentions ----------------------------------------------------------------------------------

PEOPLE = {"bob": (7, "bob"), "ann.lee": (8, "Ann.Lee")}


def find_people(names: object) -> dict[str, tuple[int, str]]:
    return {name: PEOPLE[name] for name in names if name in PEOPLE}  # type: ignore[attr-defined]


def mention(username: str) -> str:
    attributes = f'href="/people/{username}/" class="mention" target="{LINK_TARGET}" rel="{LINK_REL}"'
    return f"<a {attributes}>@{username}</a>"


@pytest.mark.parametrize(
    ("text", "html", "ids"),
    [
        ("hi @bob!", f"<p>hi {mention('bob')}!</p>", (7,)),
        ("thanks @BOB.", f"<p>thanks {mention('bob')}.</p>", (7,)),
        (
            "@ann.lee and @bob, @bob",
            f"<p>{mention('Ann.Lee')} and {mention('bob')}, {mention('bob')}</p>",
            (8, 7),
        ),
        ("**@bob** look", f"<p><strong>{mention('bob')}</strong> look</p>", (7,)),
        ("@nobody here", "<p>@nobody here</p>", ()),
        ("mail bob@example.com", '<p>mail <a href="mailto:bob@example.com"', ()),
        ("`@bob` is code", "<p><code>@bob</code> is code</p>", ()),
        ("[@bob](https://example.com)", '<p><a href="https://example.com"', ()),
    ],
)
def test_at_name_links_the_person_named_and_nothing_else(text: str, html: str, ids: tuple) -> None:
    from chat.formatting import render_message

    rendered = render_message(text, find_people)

    assert rendered.html.startswith(html)
    assert rendered.mentioned_ids == ids
    assert render(text) == render_message(text).html  # without a directory of people: no links


def test_a_typed_link_to_a_person_page_stays_text() -> None:
    assert "<a" not in render("[me](/people/bob/)")


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("**ship** it `now`, see [the plan](https://example.com)", "ship it now, see the plan"),
        ("> quoted\n> twice\n\n- one\n- two", "quoted twice one two"),
        ("<b>typed</b>", "<b>typed</b>"),
    ],
)
def test_a_quote_reads_the_text_without_its_marks(text: str, plain: str) -> None:
    from chat.formatting import plain_text

    assert plain_text(text) == plain
