"""The HTML fragments the page and the socket share: what each one swaps, and what it never leaks."""

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone
from django.utils.timezone import override

from chat import formatting, fragments, moderation, services
from chat.models import Message, Role, Room
from chat.standing import Account, Standing
from chat.tests.support import TOMBSTONE, client_for, make_moderator

pytestmark = pytest.mark.django_db


def test_reconnect_history_swaps_only_the_message_list_even_with_a_tombstone_in_it(
    lobby: Room, alice: Account
) -> None:
    """A stray hx-swap-oob on a tombstone would make htmx move it out of the history it belongs to."""
    Message.objects.create(room=lobby, author=alice, body="kept")
    Message.objects.create(room=lobby, author=alice, body="spam", removed_at=timezone.now())

    html = fragments.history_html(lobby, Role.MEMBER)

    assert html.count("hx-swap-oob") == 1
    assert 'id="messages"' in html.split("hx-swap-oob")[0].rsplit("<", 1)[-1]
    assert "Message removed by a moderator" in html


def test_a_removal_broadcast_replaces_the_message_in_place(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="spam", removed_at=timezone.now())

    html = fragments.message_html(message)

    assert f'id="message-{message.pk}"' in html
    assert 'hx-swap-oob="true"' in html
    assert "spam" not in html


def test_a_new_message_is_appended_with_its_text_escaped(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body='<img src=x onerror="alert(1)">')

    html = fragments.new_message_html(message)[Role.MEMBER]

    assert 'hx-swap-oob="beforeend:#live-messages"' in html
    assert "<img" not in html
    assert '<p>&lt;img src=x onerror="alert(1)"&gt;</p>' in html


def test_visitors_get_messages_without_any_action_forms(lobby: Room, alice: Account) -> None:
    Message.objects.create(room=lobby, author=alice, body="hello")

    html = fragments.history_html(lobby, Role.VISITOR)

    assert "hello" in html
    assert 'name="action"' not in html


MENU_LIKE_TEXT = '<details class="message-actions">··· typed as text</details>'


@pytest.mark.parametrize("oob", [False, True])
def test_a_visitors_look_of_a_message_is_exactly_as_rendered_for_visitors(
    lobby: Room, alice: Account, oob: bool
) -> None:
    """Visitors' looks are derived from the signed-in look (rendered once for both): byte for byte
    what the template renders for visitors, for every kind of message a page shows."""
    plain = Message.objects.create(room=lobby, author=alice, body="**hello** there")
    continued = Message.objects.create(room=lobby, author=alice, body="and more")
    reply = Message.objects.create(room=lobby, author=alice, body=MENU_LIKE_TEXT, reply_to=plain)
    removed = Message.objects.create(room=lobby, author=alice, body="spam", removed_at=timezone.now())
    deleted = Message.objects.create(room=lobby, author=alice, body="", deleted_at=timezone.now())
    shown = [fragments._in_place(message) for message in (plain, continued, reply, removed, deleted)]
    assert shown[1].continued

    for message in shown:
        rendered = fragments._partial(
            fragments.MESSAGES, "message", {"message": message, "oob": oob, "has_menu": False}
        )
        assert fragments._message_look_html(message, oob, False) == rendered
    assert "message-actions" in fragments._message_look_html(shown[0], oob, True)
    # And it goes into the visitors' frame as HTML, not as text.
    assert (
        f'<article class="message" id="message-{plain.pk}"' in fragments.new_message_html(plain)[Role.VISITOR]
    )


def test_a_deleted_message_is_taken_out_of_every_page(lobby: Room) -> None:
    assert '<div id="message-41" hx-swap-oob="delete"></div>' in fragments.deleted_message_html(41)


# Formatting --------------------------------------------------------------------------------


def test_markdown_is_rendered_once_when_posted_never_per_role_or_reader(
    lobby: Room, alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    render = formatting.render_message

    def counted(text: str, find_users: formatting.FindUsers | None = None) -> formatting.Rendered:
        calls.append(text)
        return render(text, find_users)

    monkeypatch.setattr(formatting, "render_message", counted)
    make_moderator(lobby)

    outcome = services.post_message(lobby, alice, {"message": "**fan** out"})  # renders for each role
    assert outcome.message is not None
    for user in (None, bob, alice):
        assert "<strong>fan</strong> out" in client_for(user).get("/rooms/lobby/").text
    for role in Role:
        assert "<strong>fan</strong> out" in fragments.history_html(lobby, role)

    assert calls == ["**fan** out"]


def test_a_removed_formatted_message_shows_only_its_tombstone(lobby: Room, alice: Account) -> None:
    moderator = make_moderator(lobby)
    message = Message.objects.create(room=lobby, author=alice, body="**buy** [watches](https://spam.example)")
    assert "<strong>buy</strong>" in fragments.new_message_html(message)[Role.MEMBER]

    moderation.remove_message(moderator, message)

    pages = [fragments.message_html(message)] + [fragments.history_html(lobby, role) for role in Role]
    pages += [client_for(user).get("/rooms/lobby/").text for user in (None, alice, moderator)]
    for html in pages:
        assert TOMBSTONE in html
        assert "buy" not in html and "spam.example" not in html and "<strong>" not in html


@pytest.mark.parametrize(
    ("names", "words"),
    [
        ([], ""),
        (["alice"], "alice is typing…"),
        (["alice", "bob"], "alice and bob are typing…"),
        (["alice", "bob", "carol", "dave"], "alice and 3 others are typing…"),
    ],
)
def test_who_is_typing_in_words(names: list[str], words: str) -> None:
    assert fragments.typing_in_words(names) == words
    assert f">{words}</p>" in fragments.typing_html(names)


def test_every_fresh_form_brings_a_typing_signal_that_sends_no_draft(lobby: Room, alice: Account) -> None:
    html = fragments.form_html(lobby, Standing(Role.MEMBER, can_read=True))

    # Outside the form (htmx would add the form's fields to what it sends), listening to it by id.
    signal = html[html.index("</form>") :]
    assert 'id="typing-signal" ws-send hx-trigger="input throttle:3s from:#message-form"' in signal
    assert """hx-vals='{"action": "typing"}'""" in signal


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_a_messages_time_reads_as_djangos_date_filter_gives_it(zone: str, settings) -> None:
    """The <time> tag is computed in Python for speed; it must say exactly what the filters said."""
    settings.TIME_ZONE = zone
    filters = Template(
        "<time datetime=\"{{ t|date:'c' }}\" title=\"{{ t|date:'DATETIME_FORMAT' }} {{ t|date:'e' }}\">"
        "{{ t|date:'H:i' }}</time>"
    )
    tag = Template("{% load chat_extras %}{% message_time t %}")
    for moment in (
        datetime(2026, 3, 29, 0, 59, 30, 123456, tzinfo=UTC),
        datetime(2026, 7, 4, 23, 5, tzinfo=UTC),
    ):
        with override(zone):
            assert tag.render(Context({"t": moment})) == filters.render(Context({"t": moment}))
