"""Outgoing webhooks: a bot with a webhook URL hears of messages that mention it or are written to it
directly, and what it answers becomes its reply in the same room.

When a message is stored (post_save, connected in chat/apps.py) that mentions a bot of its room, or
is in a direct message with a bot, one WebhookDelivery row per bot is written in the posting
transaction and the `deliver` task is enqueued once it commits (a rolled-back post sends nothing).
Messages by bots call no webhook: two bots naming each other can't loop.

The task POSTs a JSON payload signed with the bot's secret (see `sign` and `verify`), through
chat/outbound.py (no private addresses, no redirects, a deadline, a capped answer). A 2xx answer
with a text body is posted as the bot, through the same rules as any post (chat/bots.py). A failed
attempt is retried after chat/jobs.py's backoff (RetryLater) up to CHAT_WEBHOOK_ATTEMPTS in all;
then the delivery is marked failed. Failures show nothing in the room; staff see them in the admin.
"""

import hashlib
import hmac
import json
import time
from datetime import timedelta
from email.message import Message as MimeHeader
from html import unescape
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import post_save
from django.utils import timezone
from django.utils.html import strip_tags

from chat import bots, jobs, outbound
from chat.models import Bot, Message, WebhookDelivery, message_permalink

SIGNATURE_HEADER = "X-Parley-Signature"
DELIVERY_HEADER = "X-Parley-Delivery"
# Read at most this much of an answer: a reply is at most CHAT_MESSAGE_MAX_LENGTH characters anyway.
MAX_ANSWER_BYTES = 64 * 1024
# Statuses worth trying again: the receiver is busy or briefly broken. Any other 4xx won't change.
_RETRIED_STATUSES = frozenset({408, 425, 429})

Status = WebhookDelivery.Status


# Signing -------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Parley-Signature header: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

    The time is signed with the body so a captured delivery can't be replayed later (see verify).
    """
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, tolerance: float = 300, now: float | None = None) -> bool:
    """For receivers written in Python: True when `header` (X-Parley-Signature) signs `body` (the
    raw bytes received, before any JSON parsing) with `secret`, at most `tolerance` seconds ago.

    Several v1 values may be given (any one matching is enough), so a receiver can be handed a new
    secret before the old one stops. Compared in constant time.
    """
    fields = [part.strip().split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    signatures = [value for key, value in fields if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return False
    timestamp = int(timestamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# What is sent ----------------------------------------------------------------------------------


def payload(delivery: WebhookDelivery) -> dict[str, Any]:
    """The JSON a receiver gets: what a bot needs to answer, nothing of anyone else's."""
    message, room = delivery.message, delivery.message.room
    return {
        "delivery": delivery.pk,
        "bot": {"name": delivery.bot.account.username},
        "message": {
            "id": message.pk,
            "text": message.body,
            "html": message.body_html,
            "permalink": settings.CHAT_SITE_URL.rstrip("/") + message_permalink(room.slug, message.pk),
            "created_at": message.created_at.isoformat(),
        },
        "room": {"slug": room.slug, "name": room.name, "direct": room.is_direct},
        "sender": {"id": message.author_id, "name": message.author.username},
    }


def _request(delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload(delivery), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Parley-Webhooks/1",
        SIGNATURE_HEADER: sign(delivery.bot.webhook_secret, int(time.time()), body),
        DELIVERY_HEADER: str(delivery.pk),
    }
    return body, headers


# When ------------------------------------------------------------------------------------------


def bots_to_call(message: Message) -> list[Bot]:
    """The bots with a webhook that this new message is for: those it mentions among the room's
    bots, or the other person of a direct message. None for a bot's own messages. One query, and
    one more only when a bot is found."""
    room = message.room
    if room.is_direct:
        candidates = Bot.objects.filter(account__memberships__room=room)
    elif message.mentions:
        candidates = Bot.objects.filter(account_id__in=message.mentioned_ids, rooms=room)
    else:
        return []
    found = list(
        candidates.exclude(webhook_url="")
        .exclude(account_id=message.author_id)
        .exclude(account__bans__room=room)  # a bot banned from the room hears nothing of it
        .filter(account__is_active=True)
        .select_related("account")
    )
    if found and Bot.objects.filter(account_id=message.author_id).exists():
        return []
    return found


def queue_deliveries(message: Message) -> list[WebhookDelivery]:
    """In the posting transaction: a delivery per bot to call, each sent once this commits."""
    deliveries = [WebhookDelivery(bot=bot, message=message) for bot in bots_to_call(message)]
    if not deliveries:
        return []
    WebhookDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        jobs.enqueue_after_commit(deliver, delivery.pk)
    return deliveries


def _on_message_saved(
    sender: type[Message], instance: Message, created: bool, raw: bool = False, **_: Any
) -> None:
    # Cheap for the usual post: no mention and not a direct message asks the database nothing.
    if created and not raw and (instance.mentions or instance.room.is_direct):
        queue_deliveries(instance)


def connect() -> None:
    """Called once from chat/apps.py."""
    post_save.connect(_on_message_saved, sender=Message, dispatch_uid="chat.webhooks")


def retry(deliveries: QuerySet[WebhookDelivery]) -> int:
    """Send failed deliveries again from a fresh count of attempts (staff, once the receiver is
    fixed). The same delivery id goes out, so a receiver that did get it can tell."""
    with transaction.atomic():
        failed = list(
            deliveries.select_for_update().filter(status=Status.FAILED).values_list("pk", flat=True)
        )
        WebhookDelivery.objects.filter(pk__in=failed).update(
            status=Status.QUEUED, attempts=0, last_error="", response_status=None, updated=timezone.now()
        )
        for delivery_id in failed:
            jobs.enqueue_after_commit(deliver, delivery_id)
    return len(failed)


def prune(older_than_days: float) -> int:
    """Delete sent and failed deliveries older than that; queued ones are kept to be sent."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    finished = WebhookDelivery.objects.filter(created__lt=cutoff).exclude(status=Status.QUEUED)
    return finished.delete()[0]


# Delivering --------------------------------------------------------------------------------------


def _given_up(reason: str, delivery_id: int) -> None:
    """The worker gave the task up (its attempts spent by lost workers, or a bug): staff see why."""
    WebhookDelivery.objects.filter(pk=delivery_id, status=Status.QUEUED).update(
        status=Status.FAILED, last_error=reason[:300], updated=timezone.now()
    )


# One more than the delivery's own count allows: a worker killed before it counted its attempt.
@jobs.job(attempts=settings.CHAT_WEBHOOK_ATTEMPTS + 1, on_give_up=_given_up)
def deliver(delivery_id: int) -> None:
    """The task: one attempt; raises jobs.RetryLater to be run again after the backoff."""
    attempt(delivery_id)


def attempt(delivery_id: int) -> None:
    """Try the delivery once, if it is still queued, and write down what came of it.

    The delivery keeps its own count of attempts (written before sending) and decides itself when
    to give up, so the outcome is on its row whichever way it ends.
    """
    delivery = (
        WebhookDelivery.objects.select_related("bot__account", "message__room", "message__author")
        .filter(pk=delivery_id, status=Status.QUEUED)
        .first()
    )
    if delivery is None:  # already sent or failed (a run repeated after a crash), or deleted
        return
    refusal = why_not_deliver(delivery)
    if refusal:
        _finish(delivery, Status.FAILED, refusal)
        return
    if not _count_attempt(delivery):
        return
    try:
        body, headers = _request(delivery)
        answer = outbound.post(
            delivery.bot.webhook_url,
            body,
            headers,
            timeout=settings.CHAT_WEBHOOK_TIMEOUT_SECONDS,
            max_answer_bytes=MAX_ANSWER_BYTES,
            allow_private=settings.CHAT_WEBHOOK_ALLOW_PRIVATE,
        )
    except outbound.Refused as refused:  # nothing was sent; it won't change by waiting
        _finish(delivery, Status.FAILED, str(refused))
        return
    except outbound.Failed as failure:
        _retry_or_fail(delivery, str(failure))
        return
    if 200 <= answer.status < 300:
        _answered(delivery, answer)
    elif answer.status >= 500 or answer.status in _RETRIED_STATUSES:
        _retry_or_fail(delivery, f"The receiver answered {answer.status}.", answer.status)
    else:
        redirect = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        _finish(delivery, Status.FAILED, f"The receiver answered {answer.status}{redirect}.", answer.status)


def why_not_deliver(delivery: WebhookDelivery) -> str | None:
    """What changed since the message was posted that makes sending it wrong now."""
    message, bot = delivery.message, delivery.bot
    if message.deleted_at or message.removed_at:
        return "The message was deleted before it was delivered."
    if not bot.webhook_url:
        return "The bot has no webhook URL any more."
    if not bot.account.is_active:
        return "The bot's account is disabled."
    if delivery.attempts >= settings.CHAT_WEBHOOK_ATTEMPTS:
        # The worker stopped during the last attempt (its count was written before sending).
        return delivery.last_error or "The last attempt was cut off (the worker stopped)."
    return None


def _count_attempt(delivery: WebhookDelivery) -> bool:
    """Write the attempt before sending, so a worker killed mid-POST still used it up. False when
    another run counted it first (two workers on one delivery): that one goes on alone."""
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=Status.QUEUED, attempts=delivery.attempts
    ).update(attempts=delivery.attempts + 1, updated=timezone.now())
    delivery.attempts += 1
    return claimed == 1


def _retry_or_fail(delivery: WebhookDelivery, error: str, status: int | None = None) -> None:
    if delivery.attempts >= settings.CHAT_WEBHOOK_ATTEMPTS:
        _finish(delivery, Status.FAILED, f"{error} Gave up after {delivery.attempts} attempts.", status)
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        last_error=error[:300], response_status=status, updated=timezone.now()
    )
    raise jobs.RetryLater(error)  # after chat/jobs.py's backoff (CHAT_TASK_BACKOFF_SECONDS, doubling)


def _finish(
    delivery: WebhookDelivery,
    status: str,
    error: str = "",
    response_status: int | None = None,
    reply: Message | None = None,
) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status,
        last_error=error[:300],
        response_status=response_status,
        reply=reply,
        updated=timezone.now(),
    )


def _answered(delivery: WebhookDelivery, answer: outbound.Answer) -> None:
    """A 2xx: the delivery is sent, and its text (if any) is the bot's reply, in one transaction.
    Marked sent first, only if this run still holds it: a run repeated after a crash, or one
    running at the same time, finds it sent and posts nothing again."""
    text, problem = reply_text(answer)
    with transaction.atomic():
        still_ours = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=Status.QUEUED, attempts=delivery.attempts
        ).update(status=Status.SENT, response_status=answer.status, last_error="", updated=timezone.now())
        if not still_ours:
            return
        reply = None
        if text:
            reply, problem = _post_reply(delivery, text)
        _finish(delivery, Status.SENT, problem, answer.status, reply)


def reply_text(answer: outbound.Answer) -> tuple[str, str]:
    """The text to post from a 2xx answer, and why nothing is posted when the answer has a body but
    no usable text. Plain text and Markdown as they are; HTML without its tags (a web framework's
    default for a returned string); Slack-style JSON {"text": ...} as the API takes it."""
    if not answer.body.strip():
        return "", ""
    if answer.cut_short:
        return "", f"The answer was over {MAX_ANSWER_BYTES // 1024} KB: not posted."
    header = MimeHeader()
    header["Content-Type"] = answer.content_type or "text/plain"
    kind = header.get_content_type()
    try:
        text = answer.body.decode(header.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # a charset Python doesn't know
        text = answer.body.decode("utf-8", errors="replace")
    if kind in ("text/plain", "text/markdown"):
        return text.strip(), ""
    if kind == "text/html":
        return unescape(strip_tags(text)).strip(), ""
    if kind == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return "", "The answer was not valid JSON: not posted."
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            return data["text"].strip(), ""
        return "", 'A JSON answer is posted only from {"text": "..."}.'
    return "", f"An answer of type {kind} is not posted: send text/plain."


def _post_reply(delivery: WebhookDelivery, text: str) -> tuple[Message | None, str]:
    """Post as the bot, by the rules of any bot's post; the message, or why it was refused (the bot
    was taken out of the room since, muted, flooding, the text too long...)."""
    posted = bots.post_in(delivery.message.room, delivery.bot, text)
    if isinstance(posted, bots.Refusal):
        return None, f"The answer was not posted: {posted.sentence}"
    return posted, ""
