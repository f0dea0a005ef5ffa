"""What the models do themselves: a message's Markdown is rendered whenever its body is written."""

import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction

from chat.models import Message, Reaction, Room
from chat.standing import Account
from testsupport.hostile import REFERENCE_BLOWUP

pytestmark = pytest.mark.django_db


def test_a_saved_message_carries_its_rendered_markdown(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="**hi** <b>there</b>")

    stored = Message.objects.get(pk=message.pk)
    assert stored.body == "**hi** <b>there</b>"
    assert stored.body_html == "<p><strong>hi</strong> &lt;b&gt;there&lt;/b&gt;</p>"


def test_saving_the_body_renders_again_and_saving_other_fields_does_not(lobby: Room, alice: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="*old*")

    message.body = "*new*"
    message.save(update_fields=["body"])
    assert Message.objects.get(pk=message.pk).body_html == "<p><em>new</em></p>"

    Message.objects.filter(pk=message.pk).update(body_html="<p>kept</p>")
    message.refresh_from_db()
    message.save(update_fields=["removed_at"])
    assert Message.objects.get(pk=message.pk).body_html == "<p>kept</p>"


def test_bulk_created_messages_are_rendered_too(lobby: Room, alice: Account) -> None:
    Message.objects.bulk_create(Message(room=lobby, author=alice, body=f"`{n}`") for n in range(3))

    assert list(Message.objects.values_list("body_html", flat=True)) == [
        f"<p><code>{n}</code></p>" for n in range(3)
    ]


def test_a_body_too_big_to_format_is_stored_as_typed_by_every_save(lobby: Room, alice: Account) -> None:
    """Saves with nobody to tell (scripts, bulk_create, the migration): never the blow-up."""
    created = Message.objects.create(room=lobby, author=alice, body=REFERENCE_BLOWUP)
    [bulk] = Message.objects.bulk_create([Message(room=lobby, author=alice, body=REFERENCE_BLOWUP)])
    edited = Message.objects.create(room=lobby, author=alice, body="short")
    edited.body = REFERENCE_BLOWUP
    edited.save(update_fields=["body"])

    for message in (created, bulk, edited):
        html = Message.objects.get(pk=message.pk).body_html
        assert html.startswith("<p>[x] [x] ") and "<a" not in html
        assert len(html.encode()) < 1.1 * len(REFERENCE_BLOWUP)  # it was 265 KB


def test_the_migration_renders_messages_stored_before_formatting(
    lobby: Room, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    migration = importlib.import_module("chat.migrations.0007_message_body_html")
    monkeypatch.setattr(migration, "BATCH", 2)
    Message.objects.bulk_create(Message(room=lobby, author=alice, body=f"~~{n}~~") for n in range(3))
    Message.objects.update(body_html="")

    migration.render_existing(apps, None)

    rendered = set(Message.objects.values_list("body_html", flat=True))
    assert rendered == {f"<p><s>{n}</s></p>" for n in range(3)}


def test_one_reaction_per_message_user_and_emoji(lobby: Room, alice: Account, bob: Account) -> None:
    message = Message.objects.create(room=lobby, author=alice, body="hi")
    Reaction.objects.create(message=message, user=bob, emoji="👍")
    Reaction.objects.create(message=message, user=bob, emoji="🎉")  # another emoji is another row

    with pytest.raises(IntegrityError), transaction.atomic():
        Reaction.objects.create(message=message, user=bob, emoji="👍")
