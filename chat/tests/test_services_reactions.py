"""Reactions: toggling one emoji, who may, how often, and moderators clearing them."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat import actions, moderation, queries, services
from chat.models import AuditEntry, Ban, Message, Reaction, Room
from chat.standing import Account
from chat.tests.support import make_member, mute_for, private_room, session_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def message(lobby: Room, alice: Account) -> Message:
    return Message.objects.create(room=lobby, author=alice, body="lunch?")


def shown(message: Message) -> dict[str, tuple[int, str]]:
    return {r.emoji: (r.count, r.who) for r in queries.reactions_of([message.pk]).get(message.pk, ())}


def react(message: Message, user: Account | AnonymousUser, emoji: str = "👍") -> str:
    """The reply a click on the emoji gets, through the same dispatch as the socket."""
    data = {"action": "react", "message_id": str(message.pk), "emoji": emoji}
    return actions.handle(message.room, user, data, session_of(user) if user.is_authenticated else None)


def test_a_click_adds_the_reaction_and_a_second_takes_it_back(message: Message, bob: Account) -> None:
    assert services.toggle_reaction(bob, message, "🎉") is True
    assert shown(message) == {"🎉": (1, "bob")}

    assert services.toggle_reaction(bob, message, "🎉") is False
    assert shown(message) == {}


def test_counts_name_everyone_in_the_order_they_reacted(
    message: Message, bob: Account, carol: Account
) -> None:
    services.toggle_reaction(carol, message, "❤️")
    services.toggle_reaction(bob, message, "❤️")
    services.toggle_reaction(bob, message, "👍")

    # Emoji in the menu's order, whoever came first.
    assert list(shown(message).items()) == [("👍", (1, "bob")), ("❤️", (2, "carol and bob"))]


def test_the_reply_presses_the_clicked_emoji_in_the_clickers_menu(message: Message, bob: Account) -> None:
    reply = react(message, bob, "😂")

    assert 'id="reaction-picker-' in reply
    assert 'value="😂" aria-pressed="true"' in reply
    assert 'value="👍" aria-pressed="false"' in reply


def test_an_emoji_not_in_the_menu_is_refused_with_a_sentence(message: Message, bob: Account) -> None:
    reply = react(message, bob, "💩")

    assert "Pick one of the emoji in the menu." in reply
    assert not Reaction.objects.exists()


@pytest.mark.parametrize(
    ("who", "sentence"),
    [
        ("visitor", "Sign in first."),
        ("muted", "You&#x27;re muted in this room, so you can&#x27;t react to messages either."),
        ("banned", "You can&#x27;t react to messages in this room."),
        ("outsider", "You can&#x27;t react to messages in this room."),
    ],
)
def test_visitors_muted_banned_and_outsiders_cannot_react(
    who: str, sentence: str, message: Message, bob: Account
) -> None:
    user: Account | AnonymousUser = bob
    if who == "visitor":
        user = AnonymousUser()
    elif who == "muted":
        mute_for(message.room, bob)
    elif who == "banned":
        Ban.objects.create(room=message.room, user=bob)
    else:
        message.room.is_public = False
        message.room.save()

    assert sentence in react(message, user)
    assert not Reaction.objects.exists()


def test_a_locked_room_takes_reactions_from_moderators_only(
    message: Message, bob: Account, moderator: Account
) -> None:
    message.room.is_locked = True
    message.room.save()

    assert "This room is locked: only moderators can react." in react(message, bob)
    react(message, moderator)
    assert shown(message) == {"👍": (1, "mona")}


def test_a_removed_message_takes_no_reactions(message: Message, bob: Account, moderator: Account) -> None:
    moderation.remove_message(moderator, message)

    assert "That message is not in this room." not in react(message, bob)
    assert "That message was removed." in react(message, bob)
    assert not Reaction.objects.exists()


def test_a_message_of_another_room_cannot_be_reacted_to_from_this_one(
    lobby: Room, alice: Account, bob: Account
) -> None:
    secret = private_room()
    hidden = Message.objects.create(room=secret, author=alice, body="members only")

    data = {"action": "react", "message_id": str(hidden.pk), "emoji": "👍"}
    assert "That message is not in this room." in actions.handle(lobby, bob, data, session_of(bob))
    assert not Reaction.objects.exists()


def test_reacting_too_fast_is_refused_with_a_sentence_and_changes_nothing(
    message: Message, bob: Account, carol: Account, settings
) -> None:
    settings.CHAT_REACTIONS_PER_USER = 3
    # One window for the whole test: fixed windows start afresh on the clock's multiples.
    settings.CHAT_REACTION_WINDOW_SECONDS = 10**9
    for emoji in ("👍", "👍", "🎉"):  # flipping back and forth counts too
        services.toggle_reaction(bob, message, emoji)

    assert "You&#x27;re reacting too fast. Wait a few seconds and try again." in react(message, bob, "🙏")
    assert shown(message) == {"🎉": (1, "bob")}
    services.toggle_reaction(carol, message, "🙏")  # per user: carol still may
    assert shown(message)["🙏"] == (1, "carol")


def test_the_tooltip_names_ten_people_and_counts_the_rest(lobby: Room, message: Message) -> None:
    for n in range(12):
        Reaction.objects.create(
            message=message, user=make_member(lobby, Account.objects.create(username=f"u{n:02}")), emoji="🙏"
        )

    count, who = shown(message)["🙏"]
    assert count == 12
    assert who == "u00, u01, u02, u03, u04, u05, u06, u07, u08, u09 and 2 others"


def test_moderators_clear_every_reaction_and_the_log_says_how_many(
    message: Message, bob: Account, carol: Account, moderator: Account
) -> None:
    services.toggle_reaction(bob, message, "😮")
    services.toggle_reaction(carol, message, "😂")

    reply = actions.handle(
        message.room,
        moderator,
        {"action": "clear_reactions", "message_id": str(message.pk)},
        session_of(moderator),
    )

    assert "Cleared 2 reactions." in reply
    assert shown(message) == {}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.message, entry.detail) == (
        AuditEntry.Action.CLEAR_REACTIONS,
        moderator,
        message,
        "2 reactions",
    )


def test_members_cannot_clear_reactions(message: Message, bob: Account, carol: Account) -> None:
    services.toggle_reaction(bob, message, "😮")

    reply = actions.handle(
        message.room, carol, {"action": "clear_reactions", "message_id": str(message.pk)}, session_of(carol)
    )

    assert "Only this room&#x27;s moderators can do that." in reply
    assert shown(message) == {"😮": (1, "bob")}
