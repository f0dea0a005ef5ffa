"""Email for missed mentions: someone named in a room they don't have open hears of it by email.

Only to an address its owner confirmed by following an emailed link (the confirmation email carries
nothing anyone typed), and only while the account still has that address. At most one email per
person and room, and per address and room, per CHAT_MENTION_EMAIL_WINDOW_SECONDS (10 minutes),
counted in Django's cache (`cache.add`, atomic in Redis, so across processes): several accounts on
one address can't multiply the mail. Never to someone who turned it off (MentionEmails), who
snoozed them, whose level in the room is Nothing or Hidden (chat/involvement.py), or who blocked
the poster, and only after the message is committed. Sending (SMTP may take seconds) is a task
(chat/jobs.py) that `manage.py db_worker` runs, never the process that answers the post: the post
is acknowledged first, the email follows, and it survives a restart of either. One task per
email: the window is counted once, when the task is queued, so a retry sends that email again and
nothing else.
"""

import hashlib
import logging
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from chat import jobs
from chat.models import QUIET_LEVELS, Involvement, MentionEmails, Message, message_permalink
from chat.standing import Account

log = logging.getLogger(__name__)

# A mail server away or refusing for now: tried again after 30 s, 1, 2 and 4 minutes by default.
EMAIL_ATTEMPTS = 5


def window_minutes() -> int:
    return max(1, round(settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS / 60))


def email_missed_mention(message: Message, people: list[Account]) -> None:
    """Inside the posting transaction: `people` were named and don't have the room open.

    One query (whose address is confirmed, emails on, poster not blocked), only when someone named
    has an address; the email is rendered once for all of them, and the rest happens after the commit.
    """
    with_address = [person for person in people if person.email]
    if not with_address:
        return
    # Not to those whose level in the room is Nothing or Hidden, nor to the snoozed: conditions of
    # the same query, so a post costs no more queries than before.
    quiet = Involvement.objects.filter(room_id=message.room_id, level__in=QUIET_LEVELS).values("user_id")
    confirmed = dict(
        MentionEmails.objects.filter(user__in=with_address, enabled=True)
        .exclude(confirmed_email="")
        .exclude(user__blocks__blocked=message.author_id)
        .exclude(user_id__in=quiet)
        .exclude(snoozed_until__gt=timezone.now())
        .values_list("user_id", "confirmed_email")
    )
    recipients = [
        (person.pk, person.email) for person in with_address if confirmed.get(person.pk) == person.email
    ]
    if not recipients:
        return
    subject, body = _compose(message)
    transaction.on_commit(lambda: _send_when_due(message.room_id, recipients, subject, body), robust=True)


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
    """After the commit: those not emailed about this room within the window get it, as a task each."""
    window = settings.CHAT_MENTION_EMAIL_WINDOW_SECONDS
    try:
        due = [
            email
            for user_id, email in recipients
            if cache.add(f"mention-mail:{user_id}:{room_id}", 1, window)
            and cache.add(f"mention-mail:address:{address_key(email)}:{room_id}", 1, window)
        ]
    except Exception:  # whatever the cache backend raises when its server is away: no count, no email
        log.warning("Mention emails skipped: the cache can't be reached to count them")
        return
    for address in due:  # one email each: nobody learns who else was named
        send_email.enqueue(address, subject, body)


@jobs.job(attempts=EMAIL_ATTEMPTS)
def send_email(address: str, subject: str, body: str) -> None:
    """One email to one address, by the worker. A mail server that can't be reached or refuses for
    now is tried again later; after the last attempt the task is marked failed (and logged)."""
    try:
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address]).send()
    except (smtplib.SMTPException, OSError) as problem:
        raise jobs.RetryLater(f"the mail server: {type(problem).__name__}") from problem


def address_key(address: str) -> str:
    """One mailbox, however its address is cased, as a cache key that doesn't show the address."""
    return hashlib.sha256(address.strip().casefold().encode()).hexdigest()


# Confirming an address -------------------------------------------------------------------------

_CONFIRM_SALT = "chat.mentionmail.confirm-address"
CONFIRMATION_SUBJECT = "Confirm your address for Parley's mention emails"


def is_confirmed(user: Account, preference: MentionEmails | None) -> bool:
    """Whether the account's address now is the one its owner confirmed."""
    return bool(user.email) and preference is not None and preference.confirmed_email == user.email


def confirmation_days() -> int:
    return max(1, round(settings.CHAT_EMAIL_CONFIRMATION_MAX_AGE_SECONDS / 86400))


def send_confirmation(user: Account) -> None:
    """Email the account's address a signed link that confirms it, as a task. Nothing in it
    comes from any user: a stranger's address gets one plain question, never their text."""
    token = signing.dumps({"user": user.pk, "address": _token_digest(user.email)}, salt=_CONFIRM_SALT)
    context = {
        "site": settings.CHAT_SITE_URL.rstrip("/"),
        "link": settings.CHAT_SITE_URL.rstrip("/") + reverse("confirm-email", args=[token]),
        "days": confirmation_days(),
    }
    body = render_to_string("chat/email/confirm_address.txt", context)
    jobs.enqueue_after_commit(send_email, user.email, CONFIRMATION_SUBJECT, body)


@dataclass(frozen=True)
class ConfirmationLink:
    """A confirmation link, checked: the account it confirms, or the sentence saying why it can't."""

    user: Account | None
    problem: str = ""


def check_link(token: str) -> ConfirmationLink:
    """Signed by us, not expired, for an active account whose address is still the one it was sent to."""
    try:
        claim = signing.loads(
            token, salt=_CONFIRM_SALT, max_age=settings.CHAT_EMAIL_CONFIRMATION_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired:
        return ConfirmationLink(None, f"This link has expired: links work for {confirmation_days()} days.")
    except signing.BadSignature:
        return ConfirmationLink(None, "This link isn't one we sent: it may have been cut short or changed.")
    user = Account.objects.filter(pk=claim.get("user"), is_active=True).first()
    if user is None:
        return ConfirmationLink(None, "The account this link was for is closed.")
    if not user.email or _token_digest(user.email) != claim.get("address"):
        return ConfirmationLink(user, "This link was for an address the account no longer uses.")
    return ConfirmationLink(user)


def confirm(user: Account) -> None:
    """The owner of the account's address followed the link: mention emails may go there."""
    MentionEmails.objects.update_or_create(user=user, defaults={"confirmed_email": user.email})


def _token_digest(address: str) -> str:
    """The address as the link carries it: exact, so any change to it spoils the link, and unreadable."""
    return hashlib.sha256(address.encode()).hexdigest()[:32]
