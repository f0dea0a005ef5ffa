"""Full-text search over the messages a user may read: one interface, two engines.

PostgreSQL: `to_tsvector('simple', body)` behind a GIN index, ranked by `SearchRank`.
SQLite: an external-content FTS5 table (`chat_message_fts`) kept in step with `chat_message.body` by
triggers, ranked by `bm25`. Both match every word typed as a word prefix ("deplo" finds "deploy"),
case-insensitively, without stemming, so the two give the same answers. Whatever the user types
becomes quoted words only: no operator or quote of theirs reaches either query language.

Access is `standing.readable_rooms` (approved rooms only: public ones, private ones of theirs, none
they are banned from), and removed or author-deleted messages never match. Only the current text is
indexed: an edit replaces it, and earlier versions (MessageVersion) are not searched.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, QuerySet
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chat import formatting
from chat.models import Message, Room
from chat.standing import User, readable_rooms

RESULTS_PER_PAGE = 20
# Longer queries are cut: more words than this add nothing a person means.
MAX_TERMS = 8
MAX_TERM_LENGTH = 40
SNIPPET_CHARACTERS = 160
NEWEST, BEST = "newest", "best"

WORD = re.compile(r"\w+")
FTS_TABLE = "chat_message_fts"
PG_CONFIG = "simple"


@dataclass(frozen=True)
class Hit:
    pk: int
    room_slug: str
    room_name: str
    author_name: str
    created_at: datetime
    # Escaped text with the matched words in <mark>: safe to put in a page as is.
    snippet: SafeString
    room_id: int = 0
    is_direct: bool = False
    # A direct message is labelled with the other person's name, as its own page is titled.
    partner: str = ""
    by_bot: bool = False


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    page: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def terms_of(q: str) -> list[str]:
    """The words of a query, lowercased, as both engines split text (operators and quotes dropped)."""
    return [word.lower()[:MAX_TERM_LENGTH] for word in WORD.findall(q)][:MAX_TERMS]


def searchable_messages(user: User, room: Room | None = None) -> QuerySet[Message]:
    """Messages the user may read and that still show their text."""
    rooms = readable_rooms(user)
    if room is not None:
        rooms = rooms.filter(pk=room.pk)
    return Message.objects.filter(room__in=rooms, removed_at__isnull=True, deleted_at__isnull=True)


def search_messages(
    user: User, q: str, room: Room | None = None, page: int = 1, order: str = BEST
) -> SearchPage:
    """One page of the messages matching every word of `q`, best match (or newest) first."""
    terms = terms_of(q)
    page = max(1, page)
    if not terms:
        return SearchPage([], page, has_next=False)
    matches = _matching(searchable_messages(user, room), terms)
    ordering = ["-pk"] if order == NEWEST else [*_best_first(), "-pk"]
    start = (page - 1) * RESULTS_PER_PAGE
    rows = list(
        matches.order_by(*ordering).values_list(
            *("pk", "room__slug", "room__name", "author__username", "created_at", "body"),
            *("room_id", "room__kind", "author__bot__initial"),
        )[start : start + RESULTS_PER_PAGE + 1]
    )
    hits = [
        Hit(
            pk,
            slug,
            name,
            author,
            created_at,
            snippet(body, terms),
            room_id,
            kind == Room.Kind.DIRECT,
            by_bot=bot is not None,
        )
        for pk, slug, name, author, created_at, body, room_id, kind, bot in rows[:RESULTS_PER_PAGE]
    ]
    return SearchPage(hits, page, has_next=len(rows) > RESULTS_PER_PAGE)


def _matching(messages: QuerySet[Message], terms: list[str]) -> QuerySet[Message]:
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        # Words only (\w+), each a prefix: no character of the user's reaches tsquery syntax unquoted.
        query = SearchQuery(" & ".join(f"'{term}':*" for term in terms), config=PG_CONFIG, search_type="raw")
        vector = SearchVector("body", config=PG_CONFIG)
        return messages.annotate(document=vector, rank=SearchRank(vector, query)).filter(document=query)
    # Each word double-quoted (FTS5's string syntax: a quote inside doubled), then a prefix star.
    match = " ".join('"{}"*'.format(term.replace('"', '""')) for term in terms)
    return messages.extra(  # the one way to join FTS5's MATCH and bm25(); params bound
        tables=[FTS_TABLE],
        where=[f"{FTS_TABLE}.rowid = {Message._meta.db_table}.id", f"{FTS_TABLE} MATCH %s"],
        params=[match],
        select={"rank": f"-bm25({FTS_TABLE})"},
    )


def _best_first() -> list:
    return [F("rank").desc()] if connection.vendor == "postgresql" else ["-rank"]


def snippet(body: str, terms: list[str]) -> SafeString:
    """The message's plain text around its first match, escaped, with the matched words marked.

    Escaping comes first and marks are added only around escaped text, so whatever the user
    typed (HTML included) stays text.
    """
    text = " ".join(formatting.plain_text(body).split())
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(term) for term in terms) + r")\w*", re.IGNORECASE)
    first = pattern.search(text)
    # A little context before the first match, but never less text than fits.
    start = max(
        0, min((first.start() if first else 0) - SNIPPET_CHARACTERS // 4, len(text) - SNIPPET_CHARACTERS)
    )
    if start:  # begin at a word
        start = text.find(" ", start) + 1 or start
    window = text[start : start + SNIPPET_CHARACTERS]
    parts, position = [], 0
    for match in pattern.finditer(window):
        parts += [escape(window[position : match.start()]), f"<mark>{escape(match.group())}</mark>"]
        position = match.end()
    parts.append(escape(window[position:]))
    cut_before, cut_after = start > 0, start + SNIPPET_CHARACTERS < len(text)
    return mark_safe(("…" if cut_before else "") + "".join(parts) + ("…" if cut_after else ""))


# The index: created by migration 0012 and checked again after every migrate ----------------

SQLITE_INDEX = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "body, content='chat_message', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON chat_message BEGIN"
    f" INSERT INTO {FTS_TABLE}(rowid, body) VALUES (new.id, new.body); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON chat_message BEGIN"
    f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, body) VALUES ('delete', old.id, old.body); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_update AFTER UPDATE OF body ON chat_message BEGIN"
    f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, body) VALUES ('delete', old.id, old.body);"
    f" INSERT INTO {FTS_TABLE}(rowid, body) VALUES (new.id, new.body); END",
]
SQLITE_TRIGGERS = {f"{FTS_TABLE}_insert", f"{FTS_TABLE}_delete", f"{FTS_TABLE}_update"}
POSTGRES_INDEX = (
    "CREATE INDEX IF NOT EXISTS message_body_search ON chat_message"
    f" USING gin (to_tsvector('{PG_CONFIG}'::regconfig, COALESCE(body, '')))"
)


def install_index(db: BaseDatabaseWrapper) -> None:
    """Create the search index where it is missing. On SQLite, a migration that rebuilds
    chat_message (as SQLite's schema editor does to alter a column) drops its triggers: they are
    put back and the index rebuilt from the table, so no message goes unindexed."""
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(POSTGRES_INDEX)
        elif db.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            complete = {name for (name,) in cursor.fetchall()} >= SQLITE_TRIGGERS
            for statement in SQLITE_INDEX:
                cursor.execute(statement)
            if not complete:
                cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


def remove_index(db: BaseDatabaseWrapper) -> None:
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("DROP INDEX IF EXISTS message_body_search")
        elif db.vendor == "sqlite":
            for trigger in sorted(SQLITE_TRIGGERS):
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            cursor.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")


def rooms_to_filter(user: User) -> QuerySet[Room]:
    """The rooms the search form offers as a filter: those the user may read."""
    return readable_rooms(user).order_by("name")
