"""Mentions and replies as posting stores them: who is told, and what a reply may quote."""

import pytest

from chat import services
from chat.models import Mention, Message, Room
from chat.standing import Account
from chat.tests.support import make_member, make_user, present, private_room

pytestmark = pytest.mark.django_db


def unread(user: Account) -> list[tuple[int, bool]]:
    return list(Mention.objects.filter(user=user).values_list("room_id", "seen"))


def test_naming_a_reader_counts_once_for_them_and_never_for_the_author(
    lobby: Room, alice: Account, bob: Account
) -> None:
    outcome = services.post_message(lobby, alice, {"message": "@bob @Bob and me, @alice"})

    assert outcome.message is not None
    assert outcome.message.mentions == str(bob.pk)
    assert unread(bob) == [(lobby.pk, False)]
    assert unread(alice) == []


def test_naming_someone_who_cannot_read_the_room_tells_them_nothing(alice: Account, bob: Account) -> None:
    secret = private_room()
    make_member(secret, alice)

    services.post_message(secret, alice, {"message": "@bob did you see this?"})

    assert Mention.objects.filter(user=bob).count() == 0


def test_someone_with_the_room_open_has_already_seen_it_and_opening_the_room_reads_the_rest(
    lobby: Room, alice: Account, bob: Account
) -> None:
    carol = make_user("carol")
    present(lobby, bob, "bobs-tab")

    services.post_message(lobby, alice, {"message": "@bob @carol lunch?"})

    assert unread(bob) == [(lobby.pk, True)]
    assert unread(carol) == [(lobby.pk, False)]
    services.mark_mentions_read(lobby, carol)
    assert unread(carol) == [(lobby.pk, True)]


def test_a_reply_quotes_a_message_of_the_same_room_only(
    lobby: Room, other_room: Room, alice: Account, bob: Account
) -> None:
    original = Message.objects.create(room=lobby, author=alice, body="first")
    elsewhere = Message.objects.create(room=other_room, author=alice, body="elsewhere")

    answer = services.post_message(lobby, bob, {"message": "agreed", "reply_to": str(original.pk)})
    stray = services.post_message(lobby, bob, {"message": "kept text", "reply_to": str(elsewhere.pk)})
    junk = services.post_message(lobby, bob, {"message": "junk", "reply_to": "<b>"})

    assert answer.message is not None and answer.message.reply_to_id == original.pk
    for refused in (stray, junk):
        assert refused.message is None
        assert refused.form.non_field_errors() == [
            "The message you were replying to is gone. Send again to post without the quote."
        ]
    assert stray.form["message"].value() == "kept text"
    assert not Message.objects.filter(body__in=["kept text", "junk"]).exists()
