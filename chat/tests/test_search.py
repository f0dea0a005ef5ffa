"""Search (chat/search.py) on the real database it runs on: SQLite's FTS5 here, PostgreSQL's
full-text search under `python -m testsupport.with_postgres`. The same tests for both."""

import pytest
from django.db import connection

from chat import search, services
from chat.models import Ban, Message, Room
from chat.search import search_messages
from chat.standing import Account
from chat.tests.support import make_member, make_staff, pending_room, private_room

pytestmark = pytest.mark.django_db(transaction=True)


def found(user, q: str, **options) -> list[str]:
    return [search.Message.objects.get(pk=hit.pk).body for hit in search_messages(user, q, **options).hits]


def test_a_message_is_found_by_its_words_with_room_author_time_and_a_marked_snippet(
    lobby: Room, alice: Account, bob: Account
) -> None:
    message = services.post_message(lobby, alice, {"message": "Shall we **deploy** on Friday?"}).message
    assert message is not None
    services.post_message(lobby, alice, {"message": "Lunch at noon"})

    page = search_messages(bob, "deploy friday")

    assert [hit.pk for hit in page.hits] == [message.pk]
    hit = page.hits[0]
    assert (hit.room_slug, hit.room_name, hit.author_name) == ("lobby", "Lobby", "alice")
    assert hit.created_at == message.created_at
    assert hit.snippet == "Shall we <mark>deploy</mark> on <mark>Friday</mark>?"  # Markdown marks dropped
    assert not page.has_next


def test_words_match_as_prefixes_in_any_case(lobby: Room, alice: Account, bob: Account) -> None:
    services.post_message(lobby, alice, {"message": "The DEPLOYMENT went fine"})
    assert found(bob, "deplo") == ["The DEPLOYMENT went fine"]
    assert found(bob, "Deployment fine") == ["The DEPLOYMENT went fine"]
    assert found(bob, "deployment broke") == []  # every word must match


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "AND(",
        "*",
        "deploy*",
        '"unclosed',
        "NEAR(a b",
        "a OR",
        "-deploy",
        "'",
        "deploy:*",
        "!(&|",
        "\\",
        "^x",
    ],
)
def test_query_syntax_typed_by_a_user_is_taken_as_words_never_an_error(
    lobby: Room, alice: Account, bob: Account, query: str
) -> None:
    services.post_message(lobby, alice, {"message": "deploy now"})
    page = search_messages(bob, query)
    assert page.hits == [] or found(bob, query) == ["deploy now"]


def test_user_html_in_a_snippet_stays_text(lobby: Room, alice: Account, bob: Account) -> None:
    services.post_message(lobby, alice, {"message": '<script>alert("x")</script> <b onclick=x>bold</b> mark'})
    # (Searched by a word outside the tags: PostgreSQL's parser skips what looks like a tag.)
    snippet = search_messages(bob, "mark").hits[0].snippet
    assert "<script" not in snippet and "<b " not in snippet
    assert snippet == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &lt;b onclick=x&gt;bold&lt;/b&gt;"
        " <mark>mark</mark>"
    )


def test_a_long_message_is_cut_around_its_first_match(lobby: Room, alice: Account, bob: Account) -> None:
    body = " ".join(["filler"] * 100 + ["needle"] + ["tail"] * 100)
    services.post_message(lobby, alice, {"message": body})
    snippet = search_messages(bob, "needle").hits[0].snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "<mark>needle</mark>" in snippet and len(snippet) < 250


def test_results_page_beyond_the_first_twenty_best_or_newest_first(
    lobby: Room, alice: Account, bob: Account
) -> None:
    for number in range(25):
        Message.objects.create(
            room=lobby, author=alice, body=f"release note {number}, a long message about it"
        )
    strongest = Message.objects.create(room=lobby, author=alice, body="release release")

    first, second = search_messages(bob, "release"), search_messages(bob, "release", page=2)
    assert len(first.hits) == 20 and first.has_next and not first.has_previous
    assert len(second.hits) == 6 and not second.has_next and second.has_previous
    assert not {hit.pk for hit in first.hits} & {hit.pk for hit in second.hits}
    assert first.hits[0].pk == strongest.pk  # the best match first

    newest = search_messages(bob, "note", order=search.NEWEST).hits
    assert [hit.pk for hit in newest] == sorted((hit.pk for hit in newest), reverse=True)
    assert search_messages(bob, "release", page=3).hits == []


def test_one_room_only(lobby: Room, other_room: Room, alice: Account, bob: Account) -> None:
    services.post_message(lobby, alice, {"message": "pizza in the lobby"})
    services.post_message(other_room, alice, {"message": "pizza in the kitchen"})
    assert sorted(found(bob, "pizza")) == ["pizza in the kitchen", "pizza in the lobby"]
    assert found(bob, "pizza", room=other_room) == ["pizza in the kitchen"]


# What search must never reveal ---------------------------------------------------------------


def test_private_rooms_are_searched_by_their_members_only(
    alice: Account, bob: Account, carol: Account
) -> None:
    secret = private_room()
    make_member(secret, alice)
    make_member(secret, bob)
    services.post_message(secret, alice, {"message": "the password is swordfish"})

    assert found(bob, "swordfish") == ["the password is swordfish"]
    assert found(carol, "swordfish") == []
    assert found(make_staff(), "swordfish") == ["the password is swordfish"]


def test_visitors_search_public_rooms_only(lobby: Room, alice: Account) -> None:
    from django.contrib.auth.models import AnonymousUser

    secret = private_room()
    make_member(secret, alice)
    services.post_message(secret, alice, {"message": "hidden swordfish"})
    services.post_message(lobby, alice, {"message": "public swordfish"})
    assert found(AnonymousUser(), "swordfish") == ["public swordfish"]


def test_a_room_you_are_banned_from_is_not_searched(lobby: Room, alice: Account, bob: Account) -> None:
    services.post_message(lobby, alice, {"message": "banned people miss this"})
    Ban.objects.create(room=lobby, user=bob)
    assert found(bob, "banned") == []
    assert search_messages(bob, "banned", room=lobby).hits == []


def test_pending_and_rejected_rooms_are_not_searched_even_by_their_proposer(bob: Account) -> None:
    garden = pending_room(bob)
    Message.objects.create(room=garden, author=bob, body="seeds for the garden")
    assert found(bob, "seeds") == []
    garden.status = Room.Status.REJECTED
    garden.save()
    assert found(bob, "seeds") == []


def test_removed_and_deleted_messages_never_match(
    lobby: Room, alice: Account, bob: Account, moderator
) -> None:
    from chat import moderation

    removed = services.post_message(lobby, alice, {"message": "rude remark here"}).message
    deleted = services.post_message(lobby, alice, {"message": "regrettable remark here"}).message
    assert removed is not None and deleted is not None
    assert len(found(bob, "remark")) == 2

    moderation.remove_message(moderator, removed)
    services.delete_own_message(alice, deleted)

    assert found(bob, "remark") == []
    assert found(alice, "rude") == found(alice, "regrettable") == []


def test_edited_messages_are_found_by_their_current_text_only(
    lobby: Room, alice: Account, bob: Account
) -> None:
    message = services.post_message(lobby, alice, {"message": "meet at the old pier"}).message
    assert message is not None
    assert services.edit_message(alice, message, "meet at the new harbour")
    assert found(bob, "pier") == []
    assert found(bob, "harbour") == ["meet at the new harbour"]


def test_the_postgresql_search_uses_its_gin_index(lobby: Room, alice: Account) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: run under testsupport.with_postgres")
    services.post_message(lobby, alice, {"message": "indexed words"})
    matches = search._matching(Message.objects.all(), ["indexed"])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a table this small would be read whole
    assert "message_body_search" in matches.explain()


def test_triggers_dropped_by_a_table_rebuild_are_restored_after_migrate_with_the_index_caught_up(
    lobby: Room, alice: Account, bob: Account
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: its schema editor rebuilds tables, dropping their triggers")
    from chat.apps import restore_search_index

    with connection.cursor() as cursor:  # what SQLite's table rebuild does to them
        for trigger in search.SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER {trigger}")
    Message.objects.create(room=lobby, author=alice, body="written while unindexed")
    assert found(bob, "unindexed") == []

    restore_search_index(using="default")  # post_migrate

    assert found(bob, "unindexed") == ["written while unindexed"]
    Message.objects.create(room=lobby, author=alice, body="indexed again")
    assert found(bob, "again") == ["indexed again"]
