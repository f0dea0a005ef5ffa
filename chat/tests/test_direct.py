"""Direct messages and blocking: the conversation is its two people's alone; a block closes it.

Standing (who reads and writes), readable_rooms and readers (which search and unread counts
rely on), the pages (/dm/<name>/, the room list, the person page, the cached room page) and
the admin (the moderation queue shows a reported one with context; no other list shows any).
"""

from html import unescape

import pytest
from django.db import IntegrityError
from django.test import Client

from chat import direct, moderation, services
from chat.models import Ban, Block, Membership, Message, Report, Role, Room
from chat.standing import Account, readable_rooms, readers, standing
from chat.tests.support import client_for, get_page, make_user, private_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def talk(alice: Account, bob: Account) -> Room:
    """alice and bob's conversation, with one message from each."""
    room = direct.start(alice, bob)
    Message.objects.create(room=room, author=alice, body="psst, bob")
    Message.objects.create(room=room, author=bob, body="hi alice, secret plans")
    return room


# Who may read and write ---------------------------------------------------------------------


def test_a_conversation_is_one_private_room_of_its_two_people(alice: Account, bob: Account) -> None:
    room = direct.start(alice, bob)

    assert room.is_direct and not room.is_public and room.is_approved
    assert room.slug == f"dm-{alice.pk}-{bob.pk}"
    assert sorted(room.memberships.values_list("user__username", flat=True)) == ["alice", "bob"]
    # Whoever starts it, and however often: the same one room.
    assert direct.start(bob, alice) == room and direct.start(alice, bob) == room
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1


def test_a_second_conversation_for_the_same_pair_is_refused_by_the_database(
    alice: Account, bob: Account, talk: Room
) -> None:
    with pytest.raises(IntegrityError):
        Room.objects.create(kind=Room.Kind.DIRECT, slug=talk.slug, name="again", is_public=False)


def test_only_its_two_people_read_it_not_a_third_nor_staff_nor_visitors(
    talk: Room, alice: Account, bob: Account, carol: Account, staff: Account, moderator: Account
) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert standing(talk, alice).can_read and standing(talk, bob).can_read
    for outsider in (carol, staff, moderator, AnonymousUser()):
        assert not standing(talk, outsider).can_read
    assert sorted(readers(talk).values_list("username", flat=True)) == ["alice", "bob"]
    assert services.why_not_post(talk, standing(talk, carol)) == "You can't post in this room."
    # Staff moderate a reported one from the queue, without reading it.
    assert standing(talk, staff).is_moderator


def test_readable_rooms_leaves_out_others_conversations_for_everyone_staff_too(
    talk: Room, lobby: Room, alice: Account, carol: Account, staff: Account
) -> None:
    from django.contrib.auth.models import AnonymousUser

    secret = private_room()
    assert talk in readable_rooms(alice)
    assert talk not in readable_rooms(carol)
    assert talk not in readable_rooms(AnonymousUser())
    staff_sees = set(readable_rooms(staff))
    assert talk not in staff_sees and {lobby, secret} <= staff_sees
    # Staff in a conversation of their own read that one, and still no one else's.
    own = direct.start(staff, carol)
    assert set(readable_rooms(staff)) == staff_sees | {own}


def test_a_banned_person_no_longer_reads_it_and_a_muted_one_reads_but_cannot_post(
    talk: Room, alice: Account, bob: Account, staff: Account
) -> None:
    moderation.mute(staff, talk, bob, minutes=10)
    assert standing(talk, bob).can_read
    assert "muted" in (services.why_not_post(talk, standing(talk, bob)) or "")

    moderation.ban(staff, talk, bob, reason="harassment")
    assert not standing(talk, bob).can_read
    assert talk not in readable_rooms(bob)
    assert list(readers(talk)) == [alice]


def test_nobody_invites_gives_roles_locks_or_sets_up_a_conversation(
    talk: Room, carol: Account, staff: Account
) -> None:
    for attempt in (
        lambda: moderation.invite(staff, talk, carol),
        lambda: moderation.set_role(staff, talk, carol, Role.MODERATOR),
        lambda: moderation.update_room(staff, talk, is_locked=True),
        lambda: moderation.update_room(staff, talk, slow_mode_seconds=30),
        lambda: moderation.review_room(staff, talk, approve=False),
    ):
        with pytest.raises(moderation.NotAllowed, match="direct message"):
            attempt()
    assert not Membership.objects.filter(room=talk, user=carol).exists()
    talk.refresh_from_db()
    assert not talk.is_locked and talk.slow_mode_seconds == 0 and talk.is_approved


def test_an_ordinary_room_never_takes_a_conversations_slug(alice: Account) -> None:
    assert moderation.unique_slug("dm 1 2") == "dm-1-2-2"


# Blocking -------------------------------------------------------------------------------------


def test_a_block_closes_the_conversation_both_ways_with_a_plain_sentence(
    talk: Room, alice: Account, bob: Account
) -> None:
    direct.block(alice, bob)

    assert services.why_not_post(talk, standing(talk, bob)) == (
        "You can't send messages to alice: they have blocked you."
    )
    assert services.why_not_post(talk, standing(talk, alice)) == (
        "You have blocked bob. Unblock them to write to them again."
    )
    outcome = services.post_message(talk, bob, {"message": "let me explain"})
    assert outcome.message is None and "blocked you" in str(outcome.form.non_field_errors())
    assert not talk.messages.filter(body="let me explain").exists()
    # Still readable by both: what was said stays theirs.
    assert standing(talk, bob).can_read and standing(talk, alice).can_read

    direct.unblock(alice, bob)
    assert services.why_not_post(talk, standing(talk, bob)) is None


def test_a_blocked_person_cannot_start_a_conversation(alice: Account, bob: Account) -> None:
    direct.block(alice, bob)

    with pytest.raises(direct.Refused, match="alice: they have blocked you"):
        direct.start(bob, alice)
    with pytest.raises(direct.Refused, match="You have blocked bob"):
        direct.start(alice, bob)
    assert not Room.objects.filter(kind=Room.Kind.DIRECT).exists()
    assert Block.objects.count() == 1
    direct.block(alice, bob)  # blocking twice keeps one block
    assert Block.objects.count() == 1


def test_nobody_writes_to_themselves_or_blocks_themselves(alice: Account) -> None:
    with pytest.raises(direct.Refused, match="That's you"):
        direct.start(alice, alice)
    with pytest.raises(direct.Refused):
        direct.block(alice, alice)


def test_turned_off_nothing_starts_and_existing_ones_are_readable_but_closed(
    settings, talk: Room, alice: Account, bob: Account, carol: Account
) -> None:
    settings.CHAT_DIRECT_MESSAGES_ENABLED = False

    with pytest.raises(direct.Refused, match="turned off"):
        direct.start(alice, carol)
    assert standing(talk, alice).can_read
    assert "turned off" in (services.why_not_post(talk, standing(talk, alice)) or "")
    page = client_for(alice).get(talk.get_absolute_url())
    assert page.status_code == 200 and "secret plans" in page.text and "turned off" in page.text
    assert client_for(alice).get("/dm/bob/")["Location"] == talk.get_absolute_url()
    refused = client_for(alice).get("/dm/carol/")
    assert refused.status_code == 403 and "turned off" in refused.text


# Pages ----------------------------------------------------------------------------------------


def test_dm_link_offers_to_start_then_opens_the_one_conversation(alice: Account, bob: Account) -> None:
    browser = client_for(alice)

    offer = browser.get("/dm/bob/")
    assert offer.status_code == 200 and "Start the conversation" in offer.text
    assert not Room.objects.filter(kind=Room.Kind.DIRECT).exists()  # a GET starts nothing

    started = browser.post("/dm/bob/")
    room = Room.objects.get(kind=Room.Kind.DIRECT)
    assert started.status_code == 302 and started["Location"] == room.get_absolute_url()
    assert browser.get("/dm/bob/")["Location"] == room.get_absolute_url()
    assert client_for(bob).get("/dm/alice/")["Location"] == room.get_absolute_url()


def test_dm_link_tells_the_blocked_plainly_and_unknown_names_404(alice: Account, bob: Account) -> None:
    direct.block(alice, bob)

    refused = client_for(bob).get("/dm/alice/")
    assert refused.status_code == 403
    assert "You can't send messages to alice: they have blocked you." in unescape(refused.text)
    assert client_for(bob).post("/dm/alice/").status_code == 403
    assert client_for(bob).get("/dm/nobody-here/").status_code == 404
    assert client_for(None).get("/dm/alice/").status_code == 302  # to the login page


def test_the_page_names_the_other_person_for_each_and_is_refused_to_a_third(
    talk: Room, alice: Account, bob: Account, carol: Account, staff: Account
) -> None:
    alices, bobs = (
        get_page(client_for(alice), talk.get_absolute_url()),
        get_page(client_for(bob), talk.get_absolute_url()),
    )
    assert alices.status == bobs.status == 200
    assert '<title id="page-title">bob · Parley</title>' in alices.html and "Block bob" in alices.html
    assert '<title id="page-title">alice · Parley</title>' in bobs.html and "Block alice" in bobs.html
    # Served again from the cache, still per person.
    again = get_page(client_for(bob), talk.get_absolute_url())
    assert again.cached and "Block alice" in again.html

    for outsider in (carol, staff, None):
        page = get_page(client_for(outsider), talk.get_absolute_url())
        assert page.status == 404 and "secret plans" not in page.html


def test_the_room_list_lists_your_conversations_by_the_other_persons_name(
    talk: Room, lobby: Room, alice: Account, bob: Account, carol: Account, staff: Account
) -> None:
    alices = get_page(client_for(alice), "/").html.split("Direct messages")
    assert len(alices) == 2 and f'href="{talk.get_absolute_url()}"' in alices[1]
    assert '<span class="room-name">bob' in alices[1] and "# alice" not in alices[1]
    bobs = get_page(client_for(bob), "/").html.split("Direct messages")
    assert '<span class="room-name">alice' in bobs[1]
    assert talk.slug not in alices[0]  # not among the rooms

    for outsider in (carol, staff, None):
        page = get_page(client_for(outsider), "/").html
        assert talk.slug not in page and "Direct messages" not in page


def test_the_room_list_counts_mentions_in_a_conversation(talk: Room, alice: Account, bob: Account) -> None:
    services.post_message(talk, alice, {"message": "@bob look"})

    conversations = get_page(client_for(bob), "/").html.split("Direct messages")[1]
    assert "1 mention" in conversations


def test_block_and_unblock_from_the_person_page(alice: Account, bob: Account) -> None:
    browser = client_for(alice)
    assert "Send a message" in browser.get("/people/bob/").text
    assert "Block bob" in browser.get("/people/bob/").text

    assert browser.post("/people/bob/block/")["Location"] == "/people/bob/"
    page = browser.get("/people/bob/").text
    assert Block.objects.filter(blocker=alice, blocked=bob).exists()
    assert "Unblock bob" in page and "Send a message" not in page

    # alice's page, as bob sees it, says nothing of the block: he learns of it only by writing.
    seen_by_bob = client_for(bob).get("/people/alice/").text
    assert "Send a message" in seen_by_bob and "Block alice" in seen_by_bob and "blocked" not in seen_by_bob

    browser.post("/people/bob/unblock/")
    assert not Block.objects.exists()
    assert browser.get("/people/bob/block/").status_code == 405
    assert "Block" not in browser.get("/people/alice/").text  # not yourself


def test_blocking_from_the_conversation_comes_back_to_it_closed(talk: Room, alice: Account) -> None:
    browser = client_for(alice)
    back = browser.post("/people/bob/block/", {"next": talk.get_absolute_url()})
    assert back["Location"] == talk.get_absolute_url()

    page = get_page(browser, talk.get_absolute_url()).html
    assert "Unblock bob" in page and "You have blocked bob" in page


PICKER = 'hx-post="/rooms/dm-'


def test_after_a_block_neither_side_is_offered_the_file_picker(
    talk: Room, alice: Account, bob: Account
) -> None:
    """The form says neither may write; the picker under it must not offer to (cached pages too)."""
    pages = {person: client_for(person) for person in (alice, bob)}
    assert all(PICKER in get_page(browser, talk.get_absolute_url()).html for browser in pages.values())

    direct.block(alice, bob)

    for browser in pages.values():
        page = get_page(browser, talk.get_absolute_url()).html
        assert PICKER not in page and 'id="upload-form" hidden' in page
    direct.unblock(alice, bob)
    assert all(PICKER in get_page(browser, talk.get_absolute_url()).html for browser in pages.values())


def test_names_in_the_member_list_and_the_message_menu_lead_to_a_conversation(
    lobby: Room, alice: Account, bob: Account
) -> None:
    from django.utils import timezone

    from chat import fragments
    from chat.models import Presence, ServerProcess

    process = ServerProcess.objects.create(last_seen=timezone.now())
    Presence.objects.create(room=lobby, user=bob, socket_id="s1", process=process)
    assert 'href="/people/bob/"' in fragments.members_html(lobby)

    message = Message.objects.create(room=lobby, author=bob, body="hello")
    menu = client_for(alice).get(f"/messages/{message.pk}/menu/").text
    assert 'href="/dm/bob/"' in menu


# The admin: the queue only --------------------------------------------------------------------


@pytest.fixture
def reported(talk: Room, alice: Account) -> Report:
    message = talk.messages.get(body="hi alice, secret plans")
    return moderation.report_message(alice, message, "threats")


def test_the_queue_shows_a_reported_conversation_message_with_context(
    staff: Account, reported: Report
) -> None:
    staff_client = client_for(staff)
    assert "secret plans" in staff_client.get("/admin/chat/report/").text
    detail = staff_client.get(f"/admin/chat/report/{reported.pk}/change/").text
    assert "secret plans" in detail and "psst, bob" in detail  # the message before it


def test_the_queue_acts_on_a_reported_conversation_message(
    staff: Account, reported: Report, talk: Room, bob: Account
) -> None:
    staff_client = client_for(staff)
    assert staff_client.post(f"/admin/chat/report/{reported.pk}/ban/").status_code == 302
    assert Ban.objects.filter(room=talk, user=bob).exists()
    assert not standing(talk, bob).can_read


def test_no_other_admin_page_shows_a_conversation(
    staff: Account, reported: Report, talk: Room, staff_pages: list[str]
) -> None:
    staff_client = client_for(staff)
    moderation.remove_message(staff, reported.message, "threats")
    for path in staff_pages:
        page = staff_client.get(path)
        assert page.status_code == 200, path
        assert "secret plans" not in page.text and "psst" not in page.text, path
        assert "alice &amp; bob" not in page.text and talk.slug not in page.text, path
    for path in (
        f"/admin/chat/room/{talk.pk}/change/",
        f"/admin/chat/message/{reported.message_id}/change/",
    ):
        assert staff_client.get(path).status_code == 302  # "doesn't exist": back to the index
    search = staff_client.get("/admin/autocomplete/?app_label=chat&model_name=ban&field_name=room&term=a")
    assert "bob" not in search.text


@pytest.fixture
def staff_pages(lobby: Room) -> list[str]:
    return [
        "/admin/chat/room/",
        "/admin/chat/message/",
        "/admin/chat/message/?q=secret",
        "/admin/chat/membership/",
        "/admin/chat/auditentry/",
    ]


def test_people_outside_see_nothing_of_it_anywhere(talk: Room, carol: Account) -> None:
    browser: Client = client_for(carol)
    message = talk.messages.first()
    assert message is not None
    for path in (
        talk.get_absolute_url(),
        f"{talk.get_absolute_url()}messages/?before=999999",
        f"/messages/{message.pk}/",
        f"/messages/{message.pk}/menu/",
        f"/messages/{message.pk}/reply/",
    ):
        assert browser.get(path).status_code == 404, path


def test_an_outsider_cannot_be_given_a_membership_by_any_staff_path(talk: Room, staff: Account) -> None:
    outsider = make_user("mallory")
    with pytest.raises(moderation.NotAllowed):
        moderation.set_role(staff, talk, outsider, Role.MEMBER)
    assert not standing(talk, outsider).can_read


def test_the_room_autocomplete_offers_rooms_and_no_conversation(
    staff: Account, talk: Room, lobby: Room
) -> None:
    search = client_for(staff).get(
        "/admin/autocomplete/", {"app_label": "chat", "model_name": "ban", "field_name": "room", "term": ""}
    )
    assert search.status_code == 200
    names = [result["text"] for result in search.json()["results"]]
    assert "Lobby" in names and not any("bob" in name for name in names)


def test_a_post_in_a_room_costs_what_it_did_and_in_a_conversation_two_queries_more(
    lobby: Room, talk: Room, alice: Account
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(room: Room, text: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert services.post_message(room, alice, {"message": text}).message is not None
        return len(captured)

    queries_for(lobby, "warm up")  # first-use lookups (content types, caches) out of the way
    # One for the conversation's standing, one for whether the other person is a bot with a webhook
    # (chat/webhooks.py): every message of a direct message with a bot is delivered to it.
    assert queries_for(talk, "in private") == queries_for(lobby, "in public") + 2


def test_a_kept_empty_form_is_never_the_other_persons(talk: Room, alice: Account, bob: Account) -> None:
    from chat import fragments

    assert 'name="message"' in fragments.form_html(talk, standing(talk, bob))
    direct.block(alice, bob)

    closed = unescape(fragments.form_html(talk, standing(talk, bob)))
    assert "they have blocked you" in closed and 'name="message"' not in closed
