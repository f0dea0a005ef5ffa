"""The page cache (chat/pagecache.py): pages rendered once, never served stale or to the wrong person.

Every page is fetched as daphne serves it (`get_page`: the cache's fast path, then Django), in
transactional tests so that the versions are bumped after real commits, as in production.
"""

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.http import HttpRequest, HttpResponseBase
from django.test import Client
from django.utils import timezone

from chat import broadcast, moderation, pagecache, services
from chat.models import Message, Role, Room
from chat.standing import Account, Standing
from chat.tests.support import (
    TOMBSTONE,
    client_for,
    get_page,
    make_member,
    make_moderator,
    member_names,
    message_input,
    private_room,
    reactions_shown,
)

pytestmark = pytest.mark.django_db(transaction=True)

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
NONCE = re.compile(r'nonce="([^"]+)"')


def warm(client: Client, path: str = "/rooms/lobby/") -> None:
    """Render the page once, so that the next request for it can be a hit."""
    get_page(client, path)
    assert get_page(client, path).cached, f"{path} should be served from the cache by now"


def post(room: Room, user: Account, text: str) -> Message:
    outcome = services.post_message(room, user, {"message": text})
    assert outcome.message is not None, outcome.form.errors
    return outcome.message


# Hits ---------------------------------------------------------------------------------------


def test_a_hit_is_the_page_django_renders_with_this_requests_token_and_nonce(
    lobby: Room, alice: Account
) -> None:
    post(lobby, alice, "hello there")
    client = client_for(alice)
    rendered = get_page(client, "/rooms/lobby/")
    hit = get_page(client, "/rooms/lobby/")

    assert not rendered.cached and hit.cached
    assert rendered.status == hit.status == 200

    def without_per_request_bits(html: str) -> str:
        html = CSRF_HEADER.sub('"X-CSRFToken": ""', html)
        return NONCE.sub('nonce=""', CSRF_INPUT.sub('name="csrfmiddlewaretoken" value=""', html))

    assert without_per_request_bits(hit.html) == without_per_request_bits(rendered.html)
    assert "hello there" in hit.html and '<span class="whoami">alice</span>' in hit.html
    assert f'data-author-id="{alice.pk}"' in hit.html
    # Fresh per response: the token's mask and the nonce, which the CSP header names.
    assert CSRF_INPUT.findall(hit.html) != CSRF_INPUT.findall(rendered.html)
    nonces = set(NONCE.findall(hit.html))
    assert len(nonces) == 1 and nonces != set(NONCE.findall(rendered.html))
    assert f"'nonce-{nonces.pop()}'" in hit.response["Content-Security-Policy"]


def test_a_hit_sends_the_headers_django_sends(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    rendered = get_page(client, "/rooms/lobby/")
    hit = get_page(client, "/rooms/lobby/")
    assert hit.cached

    def comparable(page: HttpResponseBase) -> dict[str, str]:
        headers = {name.lower(): value for name, value in page.items() if name.lower() != "content-length"}
        headers["content-security-policy"] = re.sub(
            r"'nonce-[^']+'", "'nonce'", headers["content-security-policy"]
        )
        return headers

    assert comparable(hit.response) == comparable(rendered.response)
    assert hit.response.cookies.keys() == rendered.response.cookies.keys() == {"csrftoken"}
    assert hit.response.cookies["csrftoken"]["max-age"] == rendered.response.cookies["csrftoken"]["max-age"]


def test_the_csrf_token_of_a_hit_signs_a_post(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    client.handler.enforce_csrf_checks = True
    warm(client)
    hit = get_page(client, "/rooms/lobby/")
    assert hit.cached
    token = CSRF_INPUT.search(hit.html)
    assert token is not None

    assert client.post("/accounts/logout/").status_code == 403  # no token: refused
    assert client.post("/accounts/logout/", {"csrfmiddlewaretoken": token.group(1)}).status_code == 302
    after = get_page(client, "/rooms/lobby/")
    assert "Log in" in after.html and "whoami" not in after.html


def test_a_hit_without_a_csrf_cookie_sets_one_that_matches_its_token(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    warm(client)
    del client.cookies["csrftoken"]
    client.handler.enforce_csrf_checks = True
    hit = get_page(client, "/rooms/lobby/")
    assert hit.cached and "csrftoken" in hit.response.cookies
    token = CSRF_INPUT.search(hit.html)
    assert token is not None
    assert client.post("/accounts/logout/", {"csrfmiddlewaretoken": token.group(1)}).status_code == 302


def test_two_people_never_see_each_others_name_or_token(lobby: Room, alice: Account, bob: Account) -> None:
    alice_client, bob_client = client_for(alice), client_for(bob)
    warm(alice_client)
    warm(bob_client)
    for_alice, for_bob = get_page(alice_client, "/rooms/lobby/"), get_page(bob_client, "/rooms/lobby/")

    assert for_alice.cached and for_bob.cached
    assert '<span class="whoami">alice</span>' in for_alice.html and ">bob<" not in for_alice.html
    assert '<span class="whoami">bob</span>' in for_bob.html and ">alice<" not in for_bob.html
    assert f'data-author-id="{alice.pk}"' in for_alice.html and f'data-author-id="{bob.pk}"' in for_bob.html
    assert alice_client.cookies["csrftoken"].value != bob_client.cookies["csrftoken"].value
    # Each token is the reader's own cookie secret, masked.
    bob_client.handler.enforce_csrf_checks = True
    alice_token = CSRF_INPUT.search(for_alice.html)
    assert alice_token is not None
    assert (
        bob_client.post("/accounts/logout/", {"csrfmiddlewaretoken": alice_token.group(1)}).status_code == 403
    )


def test_the_room_list_hit_is_per_person(lobby: Room, alice: Account, bob: Account) -> None:
    secret = private_room()
    make_member(secret, bob)
    alice_client, bob_client = client_for(alice), client_for(bob)
    warm(alice_client, "/")
    warm(bob_client, "/")
    for_alice, for_bob = get_page(alice_client, "/"), get_page(bob_client, "/")
    assert 'href="/rooms/secret/"' in for_bob.html and 'href="/rooms/secret/"' not in for_alice.html
    assert ">alice<" in for_alice.html and ">bob<" in for_bob.html


# Never stale ----------------------------------------------------------------------------------


def test_every_change_and_every_eviction_gives_the_room_a_version_no_page_had(lobby: Room) -> None:
    seen = [pagecache.room_versions(lobby)]
    for _ in range(20):
        broadcast.bump(lobby)
        seen.append(pagecache.room_versions(lobby))
    cache.delete(broadcast.room_version_key(lobby.pk))  # evicted
    seen.append(pagecache.room_versions(lobby))

    assert len(set(seen)) == len(seen)


def test_a_new_message_shows_at_once(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    warm(client)
    post(lobby, alice, "fresh news")
    assert "fresh news" in get_page(client, "/rooms/lobby/").html


def test_a_removed_message_shows_its_tombstone(lobby: Room, alice: Account, moderator: Account) -> None:
    message = post(lobby, alice, "regrettable")
    client = client_for(alice)
    warm(client)
    moderation.remove_message(moderator, message)
    page = get_page(client, "/rooms/lobby/")
    assert "regrettable" not in page.html and TOMBSTONE in page.html


def test_a_deleted_message_is_gone(lobby: Room, alice: Account, staff: Account) -> None:
    message = post(lobby, alice, "gone soon")
    client = client_for(alice)
    warm(client)
    moderation.delete_message(staff, message)
    assert "gone soon" not in get_page(client, "/rooms/lobby/").html


def test_a_banned_viewer_gets_403_not_the_cached_page(
    lobby: Room, alice: Account, moderator: Account
) -> None:
    client = client_for(alice)
    warm(client)
    moderation.ban(moderator, lobby, alice)
    page = get_page(client, "/rooms/lobby/")
    assert page.status == 403 and not page.cached


def test_a_room_made_private_is_404_for_non_members(
    lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    make_member(lobby, bob)
    alice_client, bob_client = client_for(alice), client_for(bob)
    warm(alice_client)
    warm(bob_client)
    warm(alice_client, "/")
    moderation.update_room(moderator, lobby, is_public=False)

    assert get_page(alice_client, "/rooms/lobby/").status == 404
    assert 'href="/rooms/lobby/"' not in get_page(alice_client, "/").html
    member_page = get_page(bob_client, "/rooms/lobby/")
    assert member_page.status == 200 and "Private" in member_page.html


def test_a_muted_viewer_sees_the_muted_form_and_others_do_not(
    lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    alice_client, bob_client = client_for(alice), client_for(bob)
    warm(alice_client)
    warm(bob_client)
    moderation.mute(moderator, lobby, alice, 10)

    assert "You're muted in this room" in get_page(alice_client, "/rooms/lobby/").html
    bobs = get_page(bob_client, "/rooms/lobby/")
    assert "You're muted" not in bobs.html and message_input(bobs.html)
    moderation.unmute(moderator, lobby, alice)
    assert "You're muted" not in get_page(alice_client, "/rooms/lobby/").html


def test_a_mute_running_out_leaves_the_moderators_list(
    lobby: Room, alice: Account, moderator: Account
) -> None:
    moderation.mute_until(moderator, lobby, alice, timezone.now() + timedelta(seconds=0.5))
    client = client_for(moderator)
    page = get_page(client, "/rooms/lobby/")
    assert "muted until" in page.html
    key = pagecache.room_key(lobby, Standing(Role.MODERATOR, can_read=True))
    entry = pagecache.lookup(key, pagecache.room_versions(lobby))
    assert entry is not None and entry.expires - time.monotonic() <= 0.5


def test_people_joining_and_leaving_show_in_the_member_list(
    lobby: Room, alice: Account, bob: Account
) -> None:
    """Presence is written in batches and announced by the hub (chat/hub.py) within a second;
    the announcement is what invalidates the page, so a cached list is at most that late."""
    client = client_for(alice)
    warm(client)
    process_id = services.register_process()
    services.record_presence(process_id, [services.SocketPresence(lobby, bob, "socket-of-bob")], [])
    broadcast.members_event(lobby)
    assert member_names(get_page(client, "/rooms/lobby/").html) == ["bob"]
    services.record_presence(process_id, [], ["socket-of-bob"])
    broadcast.members_event(lobby)
    assert member_names(get_page(client, "/rooms/lobby/").html) == []


def test_a_renamed_room_shows_its_new_name(lobby: Room, alice: Account, moderator: Account) -> None:
    client = client_for(alice)
    warm(client)
    warm(client, "/")
    lobby.name = "Parlour"  # as the admin renames a room: the save alone invalidates its pages
    lobby.save()
    moderation.update_room(moderator, lobby, description="Tea at four")
    page = get_page(client, "/rooms/lobby/")
    assert "# Parlour" in page.html and "Tea at four" in page.html
    assert "# Parlour" in get_page(client, "/").html


def test_a_locked_room_shows_the_locked_form(lobby: Room, alice: Account, moderator: Account) -> None:
    client = client_for(alice)
    warm(client)
    moderation.update_room(moderator, lobby, is_locked=True)
    assert "This room is locked" in get_page(client, "/rooms/lobby/").html


def test_a_renamed_author_shows_under_the_new_name(lobby: Room, alice: Account, bob: Account) -> None:
    post(lobby, alice, "signed by alice")
    client = client_for(bob)
    warm(client)
    alice.username = "alicia"
    alice.save()
    assert "alicia" in get_page(client, "/rooms/lobby/").html


def test_a_new_room_and_an_invitation_show_in_the_list(
    lobby: Room, alice: Account, moderator: Account
) -> None:
    client = client_for(alice)
    warm(client, "/")
    Room.objects.create(slug="garden", name="Garden")
    assert 'href="/rooms/garden/"' in get_page(client, "/").html
    secret = private_room()
    warm(client, "/")
    moderation.invite(make_moderator(secret, "keeper"), secret, alice)
    assert 'href="/rooms/secret/"' in get_page(client, "/").html


def test_staff_status_is_read_fresh(lobby: Room, alice: Account) -> None:
    secret = private_room()
    client = client_for(alice)
    warm(client, "/")
    assert get_page(client, "/rooms/secret/").status == 404
    alice.is_staff = True
    alice.save()
    assert 'href="/rooms/secret/"' in get_page(client, "/").html
    assert get_page(client, "/rooms/secret/").status == 200
    Account.objects.filter(pk=alice.pk).update(is_staff=False)  # no signal: still read fresh
    assert get_page(client, "/rooms/secret/").status == 404
    assert secret.pk


def test_a_signed_out_or_changed_password_session_is_not_served(lobby: Room, alice: Account) -> None:
    client = client_for(alice)
    warm(client)
    alice.set_password("a new secret phrase")
    Account.objects.filter(pk=alice.pk).update(password=alice.password)
    page = get_page(client, "/rooms/lobby/")
    assert not page.cached and "whoami" not in page.html


def test_someone_signing_in_keeps_the_cached_pages(lobby: Room, alice: Account, bob: Account) -> None:
    """Signing in saves only last_login, which no page shows."""
    client = client_for(alice)
    warm(client)

    assert Client().login(username="bob", password="correct horse battery")

    assert get_page(client, "/rooms/lobby/").cached


def test_reactions_show_in_the_history_at_once_and_go_when_cleared(
    lobby: Room, alice: Account, bob: Account, moderator: Account
) -> None:
    message = post(lobby, alice, "who wants tea")
    client = client_for(alice)
    warm(client)

    services.toggle_reaction(bob, message, "🙏")
    assert reactions_shown(get_page(client, "/rooms/lobby/").html, message.pk) == {"🙏": (1, "bob")}

    warm(client)
    moderation.clear_reactions(moderator, message)
    assert reactions_shown(get_page(client, "/rooms/lobby/").html, message.pk) == {}


def test_the_page_marks_the_viewers_own_reactions_by_their_id_only(
    lobby: Room, alice: Account, bob: Account
) -> None:
    message = post(lobby, alice, "standup in 5")
    services.toggle_reaction(bob, message, "👍")
    as_bob, as_alice = (
        get_page(client_for(bob), "/rooms/lobby/"),
        get_page(client_for(alice), "/rooms/lobby/"),
    )

    # One cached page for both; each gets a style naming their own id.
    assert f'data-by="{bob.pk}"' in as_bob.html and f'data-by="{bob.pk}"' in as_alice.html
    assert f'.reaction[data-by~="{bob.pk}"]' in as_bob.html
    assert f'.reaction[data-by~="{alice.pk}"]' in as_alice.html


# Django's middleware ------------------------------------------------------------------------


class Stamped:
    """A middleware added to MIDDLEWARE after the page cache was written: it marks every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response["X-Stamped"] = "yes"
        return response


def test_a_middleware_added_later_applies_to_every_page_and_the_operator_is_told(
    lobby: Room, alice: Account, settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert pagecache.check_middleware() == []
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.Stamped"]
    client = client_for(alice)

    pages = [get_page(client, "/rooms/lobby/") for _ in range(3)]

    assert [page.response.get("X-Stamped") for page in pages] == ["yes"] * 3
    assert not any(page.cached for page in pages)
    assert caplog.text.count(pagecache.MIDDLEWARE_DIFFERS) == 1  # once, not once per page
    assert [warning.id for warning in pagecache.check_middleware()] == ["chat.W001"]
