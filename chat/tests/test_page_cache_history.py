"""The page cache for pages of history: what "Load older" and "Load newer" fetch with script (a
fragment), and the room page's ?before= / ?after= that their links open without script.

Served as daphne serves them (`get_page`: the cache's fast path, then Django), in transactional
tests so that the versions are bumped after real commits, as in production.
"""

import re

import pytest
from django.test import Client

from chat import moderation, services
from chat.models import Ban, Message, Role, Room
from chat.standing import Account
from chat.tests.support import TOMBSTONE, Page, client_for, get_page, make_member, private_room

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
NONCE = re.compile(r'nonce="([^"]+)"')


def post(room: Room, user: Account, text: str) -> Message:
    outcome = services.post_message(room, user, {"message": text})
    assert outcome.message is not None, outcome.form.errors
    return outcome.message


def older(client: Client, before: Message | int, slug: str = "lobby") -> Page:
    """What "Load older messages" fetches with script."""
    pk = before if isinstance(before, int) else before.pk
    return get_page(client, f"/rooms/{slug}/messages/?before={pk}", HTMX)


def warm_older(client: Client, before: Message | int) -> Page:
    older(client, before)
    hit = older(client, before)
    assert hit.cached, "the older messages should be served from the cache by now"
    return hit


def warm(client: Client, path: str) -> Page:
    get_page(client, path)
    hit = get_page(client, path)
    assert hit.cached, f"{path} should be served from the cache by now"
    return hit


def without_per_request_bits(html: str) -> str:
    html = CSRF_HEADER.sub('"X-CSRFToken": ""', html)
    return NONCE.sub('nonce=""', CSRF_INPUT.sub('name="csrfmiddlewaretoken" value=""', html))


def comparable_headers(page: Page) -> dict[str, str]:
    headers = {
        name.lower(): value for name, value in page.response.items() if name.lower() != "content-length"
    }
    headers["content-security-policy"] = re.sub(
        r"'nonce-[^']+'", "'nonce'", headers["content-security-policy"]
    )
    return headers


@pytest.fixture
def three(lobby: Room, alice: Account) -> list[Message]:
    return [post(lobby, alice, text) for text in ("first words", "second thoughts", "third time")]


# Hits are what Django renders ----------------------------------------------------------------


def test_a_cached_load_older_is_what_django_renders_with_its_headers(
    lobby: Room, alice: Account, three: list[Message]
) -> None:
    client = client_for(alice)
    rendered = older(client, three[2])
    hit = older(client, three[2])

    assert not rendered.cached and hit.cached
    assert rendered.status == hit.status == 200
    assert hit.html == rendered.html
    assert "first words" in hit.html and "second thoughts" in hit.html and "third time" not in hit.html
    assert comparable_headers(hit) == comparable_headers(rendered)
    assert hit.response.cookies.keys() == rendered.response.cookies.keys()


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_cached_page_of_history_without_script_is_what_django_renders(
    lobby: Room, alice: Account, three: list[Message], where: str
) -> None:
    client = client_for(alice)
    path = f"/rooms/lobby/?{where}={three[1].pk}"
    rendered = get_page(client, path)
    hit = get_page(client, path)

    assert not rendered.cached and hit.cached
    assert rendered.status == hit.status == 200
    assert without_per_request_bits(hit.html) == without_per_request_bits(rendered.html)
    assert '<span class="whoami">alice</span>' in hit.html
    shown = "first words" if where == "before" else "third time"
    assert shown in hit.html and "second thoughts" not in hit.html
    assert comparable_headers(hit) == comparable_headers(rendered)
    nonces = set(NONCE.findall(hit.html))
    assert len(nonces) == 1 and f"'nonce-{nonces.pop()}'" in hit.response["Content-Security-Policy"]


def test_two_people_get_their_own_name_and_token_on_a_cached_page_of_history(
    lobby: Room, alice: Account, bob: Account, three: list[Message]
) -> None:
    path = f"/rooms/lobby/?before={three[2].pk}"
    for_alice = warm(client_for(alice), path)
    for_bob = warm(client_for(bob), path)
    assert '<span class="whoami">alice</span>' in for_alice.html and ">bob<" not in for_alice.html
    assert '<span class="whoami">bob</span>' in for_bob.html
    assert '<span class="whoami">alice</span>' not in for_bob.html
    assert CSRF_INPUT.findall(for_alice.html) != CSRF_INPUT.findall(for_bob.html)


def test_each_page_of_history_is_cached_apart(lobby: Room, alice: Account, three: list[Message]) -> None:
    first, second, third = three
    client = client_for(alice)
    shown = {
        path: warm(client, path).html
        for path in (
            f"/rooms/lobby/?before={second.pk}",
            f"/rooms/lobby/?before={third.pk}",
            f"/rooms/lobby/?after={first.pk}",
            f"/rooms/lobby/?after={second.pk}",
        )
    }
    newer = f"/rooms/lobby/messages/newer/?after={first.pk}"
    for path in (
        f"/rooms/lobby/messages/?before={second.pk}",
        f"/rooms/lobby/messages/?before={third.pk}",
        f"{newer}&until={second.pk}",
        f"{newer}&until={third.pk}",
    ):
        get_page(client, path, HTMX)
        shown[path] = get_page(client, path, HTMX).html

    def texts(html: str) -> list[str]:
        return [message.body for message in three if message.body in html]

    assert [texts(html) for html in shown.values()] == [
        ["first words"],
        ["first words", "second thoughts"],
        ["second thoughts", "third time"],
        ["third time"],
        ["first words"],
        ["first words", "second thoughts"],
        ["second thoughts"],
        ["second thoughts", "third time"],
    ]


# Never stale ---------------------------------------------------------------------------------


def test_load_older_shows_an_edit_at_once(lobby: Room, alice: Account, three: list[Message]) -> None:
    client = client_for(alice)
    warm_older(client, three[2])
    assert services.edit_message(alice, three[0], "first words, corrected")
    assert "first words, corrected" in older(client, three[2]).html


def test_load_older_shows_a_deletion_and_a_removal_at_once(
    lobby: Room, alice: Account, moderator: Account, three: list[Message]
) -> None:
    client = client_for(alice)
    warm_older(client, three[2])
    services.delete_own_message(alice, three[0])
    assert "first words" not in older(client, three[2]).html
    warm_older(client, three[2])
    moderation.remove_message(moderator, three[1])
    after_removal = older(client, three[2]).html
    assert "second thoughts" not in after_removal and TOMBSTONE in after_removal


def test_pages_of_history_without_script_follow_a_new_message(
    lobby: Room, alice: Account, three: list[Message]
) -> None:
    client = client_for(alice)
    newer_path = f"/rooms/lobby/?after={three[0].pk}"
    older_path = f"/rooms/lobby/?before={three[1].pk}"
    warm(client, newer_path)
    warm(client, older_path)
    fresh = post(lobby, alice, "breaking news")
    assert "breaking news" in get_page(client, newer_path).html
    # The page before the second message now pages on up to the new newest message.
    assert f"until={fresh.pk}" in get_page(client, older_path).html


def test_load_newer_follows_an_edit(lobby: Room, alice: Account, three: list[Message]) -> None:
    client = client_for(alice)
    path = f"/rooms/lobby/messages/newer/?after={three[0].pk}&until={three[2].pk}"
    first = get_page(client, path, HTMX)
    assert get_page(client, path, HTMX).cached
    assert "third time" in first.html
    assert services.edit_message(alice, three[2], "third time lucky")
    assert "third time lucky" in get_page(client, path, HTMX).html


def test_visitors_and_readers_each_get_their_own_look(
    lobby: Room, alice: Account, three: list[Message]
) -> None:
    """Messages carry a menu for signed-in readers only: the role is part of the key."""
    reader, visitor = warm_older(client_for(alice), three[2]), warm_older(Client(), three[2])
    assert 'class="message-actions"' in reader.html
    assert "first words" in visitor.html and 'class="message-actions"' not in visitor.html


def test_a_mute_and_a_role_change_show_on_a_page_of_history(
    lobby: Room, alice: Account, moderator: Account, staff: Account, three: list[Message]
) -> None:
    client = client_for(alice)
    path = f"/rooms/lobby/?before={three[2].pk}"
    warm(client, path)
    moderation.mute(moderator, lobby, alice, 10)
    assert "You're muted in this room" in get_page(client, path).html
    moderation.unmute(moderator, lobby, alice)
    assert "You're muted" not in warm(client, path).html
    assert 'id="moderation"' not in get_page(client, path).html
    moderation.set_role(staff, lobby, alice, Role.MODERATOR)
    assert 'id="moderation"' in get_page(client, path).html


def test_a_muted_reader_a_member_and_a_moderator_each_get_their_own_page_of_history(
    lobby: Room, alice: Account, bob: Account, moderator: Account, three: list[Message]
) -> None:
    moderation.mute(moderator, lobby, alice, 10)
    path = f"/rooms/lobby/?before={three[2].pk}"
    muted, member, moderating = (warm(client_for(user), path).html for user in (alice, bob, moderator))
    assert "You're muted in this room" in muted and 'id="moderation"' not in muted
    assert "You're muted" not in member and 'id="moderation"' not in member
    assert "You're muted" not in moderating and 'id="moderation"' in moderating


# Never served to someone who may not read the room ------------------------------------------


def test_access_is_checked_on_every_request_even_when_no_page_changed(
    lobby: Room, alice: Account, moderator: Account, three: list[Message]
) -> None:
    """A ban or a room made private written without the signals that bump the page versions:
    the cached history is still current, so only the check made on every request stops it."""
    client = client_for(alice)
    page_path = f"/rooms/lobby/?before={three[2].pk}"
    warm_older(client, three[2])
    warm(client, page_path)
    Ban.objects.bulk_create([Ban(room=lobby, user=alice, created_by=moderator)])
    for page in (older(client, three[2]), get_page(client, page_path)):
        assert page.status == 403 and not page.cached and "first words" not in page.html
    Ban.objects.filter(user=alice).delete()
    assert warm_older(client, three[2]).status == 200
    Room.objects.filter(pk=lobby.pk).update(is_public=False)
    for page in (older(client, three[2]), get_page(client, page_path)):
        assert page.status == 404 and not page.cached and "first words" not in page.html


def test_a_banned_reader_gets_403_not_the_cached_history(
    lobby: Room, alice: Account, moderator: Account, three: list[Message]
) -> None:
    client = client_for(alice)
    warm_older(client, three[2])
    warm(client, f"/rooms/lobby/?before={three[2].pk}")
    moderation.ban(moderator, lobby, alice)
    for page in (older(client, three[2]), get_page(client, f"/rooms/lobby/?before={three[2].pk}")):
        assert page.status == 403 and not page.cached and "first words" not in page.html


def test_a_room_made_private_hides_its_cached_history_from_non_members(
    lobby: Room, alice: Account, bob: Account, moderator: Account, three: list[Message]
) -> None:
    make_member(lobby, bob)
    alice_client, bob_client = client_for(alice), client_for(bob)
    for client in (alice_client, bob_client):
        warm_older(client, three[2])
    moderation.update_room(moderator, lobby, is_public=False)
    assert older(alice_client, three[2]).status == 404
    assert "first words" in older(bob_client, three[2]).html


def test_a_signed_out_or_changed_password_session_is_not_served_history(
    lobby: Room, alice: Account, three: list[Message]
) -> None:
    secret = private_room()
    make_member(secret, alice)
    kept = post(secret, alice, "between us")
    after_it = post(secret, alice, "and more")
    client = client_for(alice)
    get_page(client, f"/rooms/secret/messages/?before={after_it.pk}", HTMX)
    assert older(client, after_it, "secret").cached and kept.pk
    alice.set_password("a new secret phrase")
    Account.objects.filter(pk=alice.pk).update(password=alice.password)
    page = older(client, after_it, "secret")
    assert not page.cached and page.status == 404 and "between us" not in page.html


# Odd values behave as before -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "", "1.5"])
def test_a_malformed_before_is_refused_as_before(lobby: Room, alice: Account, value: str) -> None:
    client = client_for(alice)
    for path in (f"/rooms/lobby/messages/?before={value}", f"/rooms/lobby/?before={value}"):
        page = get_page(client, path, HTMX)
        assert page.status == 400 and not page.cached


def test_a_message_of_another_room_pages_this_rooms_history_only(
    lobby: Room, alice: Account, three: list[Message]
) -> None:
    garden = Room.objects.create(slug="garden", name="Garden")
    elsewhere = post(garden, alice, "roses are out")
    client = client_for(alice)
    rendered = older(client, elsewhere)
    hit = older(client, elsewhere)
    assert hit.cached and hit.html == rendered.html
    assert "third time" in hit.html and "roses are out" not in hit.html
