"""Bots: accounts that post and read with a key, through the same rules as people.

A bot's key is `parley_<key_id>_<secret>`: the key id finds its row, the secret is checked
against the stored SHA-256 with hmac.compare_digest. The secret is 256 random bits, so a fast
hash is enough (there is no password to guess); only the hash is kept, and the key is shown once.

Posting goes through services.post_message, exactly as a person's frame does: the bot's standing
in the room (membership, mute, ban, lock), slow mode, the flood limit, size and formatting limits,
then the same broadcast. What a bot may post in: the rooms staff gave it (Bot.rooms, mirrored as
memberships so private rooms, member lists and mentions treat it as a member), and the direct
messages people opened with it.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.db import transaction

from chat import services
from chat.models import Bot, Membership, Message, Role, Room
from chat.standing import Account, Standing, ban_notice, room_and_standing

KEY_PREFIX = "parley"


@dataclass(frozen=True)
class Refusal:
    """Why a bot's request did nothing: a sentence for its operator and the HTTP status."""

    sentence: str
    status: int
    retry_after: int | None = None


BAD_KEY = Refusal("The key is missing, wrong or was reset. Send it as “Authorization: Bearer parley_…”.", 401)
NO_ROOM = Refusal("There is no room with that name that this bot belongs to.", 404)


# Keys ---------------------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_key() -> tuple[str, str, str]:
    """A fresh key: (key_id, hash of its secret, the whole key to show once)."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return key_id, _hash(secret), f"{KEY_PREFIX}_{key_id}_{secret}"


@transaction.atomic
def create(name: str, initial: str = "", webhook_url: str = "") -> tuple[Bot, str]:
    """A new bot with its own account (which can never sign in) and its key, shown only now."""
    bot = Bot(initial=initial, webhook_url=webhook_url)
    key = prepare(bot, name)
    bot.save()
    return bot, key


def prepare(bot: Bot, name: str) -> str:
    """Give an unsaved bot its account, key and webhook secret; returns the key to show once."""
    ASCIIUsernameValidator()(name)
    account = Account(username=name)
    account.set_unusable_password()
    account.save()
    bot.account = account
    bot.initial = (bot.initial or name[:1]).upper()
    bot.key_id, bot.key_hash, key = _new_key()
    bot.webhook_secret = secrets.token_hex(32)
    return key


def retire(bot: Bot) -> None:
    """The bot is deleted; its account stays (its messages keep their author) but is disabled,
    so it can never be signed in to, even once it is no longer a bot."""
    Account.objects.filter(pk=bot.account_id).update(is_active=False)
    bot.delete()


def reset_key(bot: Bot) -> str:
    """A new key for the bot; the old one stops working with this write."""
    bot.key_id, bot.key_hash, key = _new_key()
    bot.save(update_fields=["key_id", "key_hash"])
    return key


def authenticate(authorization: str) -> Bot | None:
    """The bot whose key is in this Authorization header value, or None (wrong, reset, disabled)."""
    scheme, _, key = authorization.partition(" ")
    prefix, _, rest = key.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if scheme.lower() != "bearer" or prefix != KEY_PREFIX or not key_id or not secret:
        return None
    bot = Bot.objects.select_related("account").filter(key_id=key_id).first()
    # Compared even when no row was found, so the answer takes as long either way.
    expected = bot.key_hash if bot else _hash("")
    if not hmac.compare_digest(_hash(secret), expected) or bot is None:
        return None
    return bot if bot.account.is_active else None


# Rooms --------------------------------------------------------------------------------------


@transaction.atomic
def set_rooms(bot: Bot, rooms: list[Room]) -> None:
    """The bot belongs to exactly these rooms (direct messages stay as they are)."""
    bot.rooms.set(rooms)
    sync_memberships(bot)


def sync_memberships(bot: Bot) -> None:
    """Memberships of ordinary rooms equal to Bot.rooms: a room taken away ends its access at once."""
    wanted = set(bot.rooms.filter(kind=Room.Kind.ROOM).values_list("pk", flat=True))
    held = Membership.objects.filter(user=bot.account, room__kind=Room.Kind.ROOM)
    held.exclude(room__in=wanted).delete()
    have = set(held.values_list("room_id", flat=True))
    Membership.objects.bulk_create(
        Membership(room_id=room_id, user=bot.account, role=Role.MEMBER) for room_id in wanted - have
    )


def room_for(bot: Bot, slug: str) -> tuple[Room, Standing] | Refusal:
    """The room and the bot's standing in it, if the bot belongs there and may read it now."""
    found = room_and_standing(slug, bot.account)
    if found is None:
        return NO_ROOM
    room, viewer = found
    if viewer.banned:
        return Refusal(ban_notice(room), 403)
    belongs = room.is_direct or bot.rooms.filter(pk=room.pk).exists()
    if belongs and viewer.can_read:
        return room, viewer
    if room.is_direct or not (room.is_public and room.is_approved):
        return NO_ROOM  # the same answer as no room at all: a key learns nothing of others' rooms
    return Refusal(f"This bot does not belong to #{room.slug}: staff add bots to rooms in the admin.", 403)


# Posting ------------------------------------------------------------------------------------


def why_not(room: Room, bot: Bot, viewer: Standing, text: str) -> Refusal | None:
    """The refusals a bot's post can meet before it is rendered, each with its status."""
    return why_not_text(room, viewer, text) or waiting(room, bot, viewer)


def why_not_text(room: Room, viewer: Standing, text: str) -> Refusal | None:
    """Refusals that need no count of recent posts: may the bot post here, and is the text fit."""
    refusal = services.why_not_post(room, viewer)
    if refusal:
        return Refusal(refusal, 403)
    if len(text) > settings.CHAT_MESSAGE_MAX_LENGTH:
        limit = settings.CHAT_MESSAGE_MAX_LENGTH
        return Refusal(f"Messages can be at most {limit} characters (this one has {len(text)}).", 413)
    if not text.strip():
        return Refusal("Write something before sending: the message is empty.", 400)
    return None


def waiting(room: Room, bot: Bot, viewer: Standing) -> Refusal | None:
    """Slow mode and the flood limit, counted as for a person (per account, in the database)."""
    refusal = services.why_wait(room, bot.account, viewer)
    if refusal is None:
        return None
    seconds = room.slow_mode_seconds if refusal != services.TOO_FAST else settings.CHAT_FLOOD_WINDOW_SECONDS
    return Refusal(refusal, 429, retry_after=max(1, int(seconds)))


def post(room: Room, bot: Bot, viewer: Standing, text: str) -> Message | Refusal:
    """Post `text` (Markdown) as the bot, or say why not; nothing is stored when refused.
    Slow mode and the flood limit are post_message's to count, as for a person's post."""
    refusal = why_not_text(room, viewer, text)
    if refusal:
        return refusal
    outcome = services.post_message(room, bot.account, {"message": text}, viewer=viewer)
    if outcome.message is not None:
        return outcome.message
    return refused_post(room, bot, viewer, outcome.form)


def post_in(room: Room, bot: Bot, text: str) -> Message | Refusal:
    """Post as the bot where it belongs, its standing read now (a webhook's answer, for one)."""
    found = room_for(bot, room.slug)
    if isinstance(found, Refusal):
        return found
    room, viewer = found
    return post(room, bot, viewer, text)


def refused_post(room: Room, bot: Bot, viewer: Standing, form: object) -> Refusal:
    """A post that post_message refused after the bot's own checks passed: a flood or slow mode
    (429), or a text too big to format (413)."""
    errors = getattr(form, "errors", {})
    sentence = " ".join(str(error) for errors_of in errors.values() for error in errors_of)
    if services.TOO_FAST in sentence:  # texts refused as too big to format, too often lately
        return Refusal(services.TOO_FAST, 429, retry_after=max(1, int(settings.CHAT_FLOOD_WINDOW_SECONDS)))
    return waiting(room, bot, viewer) or Refusal(sentence or "The message was not posted.", 413)


# Reading ------------------------------------------------------------------------------------

MAX_PAGE = 100


def page(room: Room, before: int | None = None, after: int | None = None, limit: int = 50) -> list[Message]:
    """Up to `limit` messages of the room, oldest first: the newest ones, those just before
    `before`, or those just after `after`. Removed and deleted ones are left out: their text is
    kept only for the audit log."""
    shown = Message.objects.filter(room=room, removed_at__isnull=True, deleted_at__isnull=True)
    shown = shown.select_related("author__bot").only(
        "pk", "body", "body_html", "created_at", "edited_at", "author__username", "author__bot__id"
    )
    limit = max(1, min(limit, MAX_PAGE))
    if after is not None:
        return list(shown.filter(pk__gt=after).order_by("pk")[:limit])
    if before is not None:
        shown = shown.filter(pk__lt=before)
    return list(reversed(shown.order_by("-pk")[:limit]))
