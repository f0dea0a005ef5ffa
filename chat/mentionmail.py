"""Email for missed mentions: someone named in a room they don't have open hears of it by email.

At most one email per person and room per CHAT_MENTION_EMAIL_WINDOW_SECONDS (10 minutes), counted
in Django's cache (`cache.add`, atomic in Redis, so across processes), only to people with an
address who have not turned it off (MentionEmails), and only after the message is committed.
Sending (SMTP may take seconds) happens on one background thread per process, never on the
thread that answers the post: the post is acknowledged first, the email follows.
"""

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from chat.models import MentionEmails, Message, message_permalink
from chat.standing import Account

log = logging.getLogger(__name__)

_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mention-mail")


def window_minutes() -> int:
    return max(1, round(settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS / 60))


def email_missed_mention(message: Message, people: list[Account]) -> None:
    """Inside the posting transaction: `people` were named and don't have the room open.

    One query (who turned emails off), only when someone named has an address; the email is
    rendered once for all of them, and the rest happens after the commit.
    """
    with_address = [person for person in people if person.email]
    if not with_address:
        return
    turned_off = set(
        MentionEmails.objects.filter(user__in=with_address, enabled=False).values_list("user_id", flat=True)
    )
    recipients = [(person.pk, person.email) for person in with_address if person.pk not in turned_off]
    if not recipients:
        return
    subject, body = _compose(message)
    transaction.on_commit(lambda: _send_when_due(message.room_id, recipients, subject, body))


def _compose(message: Message) -> tuple[str, str]:
    site = settings.CHAT_SITE_URL.rstrip("/")
    context = {
        "message": message,
        "author": message.author.username,
        "room": message.room,
        "link": site + message_permalink(message.room.slug, message.pk),
        "settings_link": site + reverse("settings"),
        "minutes": window_minutes(),
    }
    subject = f"{message.author.username} mentioned you in #{message.room.name}"
    return subject, render_to_string("chat/email/missed_mention.txt", context)


def _send_when_due(room_id: int, recipients: list[tuple[int, str]], subject: str, body: str) -> None:
    """After the commit: those not emailed about this room within the window get it, off this thread."""
    window = settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS
    try:
        due = [
            email
            for user_id, email in recipients
            if cache.add(f"mention-mail:{user_id}:{room_id}", 1, window)
        ]
    except Exception:  # whatever the cache backend raises when its server is away: no count, no email
        log.warning("Mention emails skipped: the cache can't be reached to count them")
        return
    if due:
        _sender.submit(_send, due, subject, body)


def _send(addresses: list[str], subject: str, body: str) -> None:
    for address in addresses:  # one email each: nobody learns who else was named
        try:
            EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address]).send()
        except Exception as problem:
            log.warning("Could not send a mention email: %s", type(problem).__name__)


def wait_until_sent() -> None:
    """Block until every email handed to the sender so far has been sent (tests, shutdown)."""
    done: Future = _sender.submit(lambda: None)
    done.result(timeout=30)
