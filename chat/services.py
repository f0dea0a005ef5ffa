"""What the chat does, independent of transport: HTTP views and consumers both call these.

Each service checks, writes, then broadcasts after the commit. Reads live in chat.queries.
"""

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.formats import time_format

from chat import broadcast, fragments, mentionmail, queries
from chat.forms import MessageForm
from chat.models import Attachment, Mention, Message, MessageVersion, Presence, Reaction, Room, ServerProcess
from chat.standing import Account, Standing, User, standing, why_not_delete, why_not_edit, why_not_react


@dataclass(frozen=True)
class PostOutcome:
    """A bound form (with errors when refused), the stored message when accepted, and the
    poster's standing it was decided on (their fresh form depends on it)."""

    form: MessageForm
    message: Message | None
    viewer: Standing
    # Why refused, for HTTP: 400 the text itself, 403 may not post here now, 429 wait first.
    status: int = 200


def post_message(
    room: Room,
    user: User,
    data: dict,
    viewer: Standing | None = None,
    form_class: type[MessageForm] = MessageForm,
    attach: Callable[[Message], object] | None = None,
) -> PostOutcome:
    """Check the poster may post, validate, store, then show it to the room.

    `viewer` is the poster's standing if the caller read it with the room just now; `attach`
    stores what comes with the text (chat/attachments.py), in the same transaction.
    """
    form = form_class(data)
    viewer = viewer or standing(room, user)
    if not isinstance(user, Account):
        form.add_error(None, "Sign in to post messages.")
        return PostOutcome(form, None, viewer, 403)
    refusal = why_not_post(room, viewer)
    status = 403 if refusal else 400
    if refusal is None and form.is_valid():
        # Also before rendering, so a flood costs a count per post, never a rendering; counted
        # again under the poster's lock below, where the answer holds until the insert.
        refusal = why_wait(room, user, viewer)
        status = 429
    original = None
    if refusal is None and form.is_valid() and form.cleaned_data["reply_to"]:
        original = queries.reply_target(room, form.cleaned_data["reply_to"])
        if original is None:
            refusal, status = (
                "The message you were replying to is gone. Send again to post without the quote.",
                400,
            )
    message = None
    if refusal is None and form.is_valid():
        # Rendered before the transaction, once: too big to format is refused with a sentence.
        message = Message(room=room, author=user, body=form.cleaned_data["message"], reply_to=original)
        refusal = _render_or_refuse(message)
        status = 429 if refusal == TOO_FAST else 400
    if refusal:
        form.add_error(None, refusal)
    if message is None or refusal:
        return PostOutcome(form, None, viewer, status)
    # One transaction: a failure before the commit (the cache's page versions) stores nothing.
    # Slow mode and the flood limit are counted in it, after the poster's lock: two posts sent
    # at once (two tabs, two uploads) are counted one after the other.
    with transaction.atomic():
        refusal = why_wait(room, user, viewer, locking=True)
        if refusal:
            form.add_error(None, refusal)
            return PostOutcome(form, None, viewer, 429)
        message.save(force_insert=True)
        if attach is None:
            Attachment.known_absent(message)  # showing it asks the database nothing more
        else:
            attach(message)
        notify_mentioned(message)
        broadcast.new_message(message)
    return PostOutcome(form, message, viewer)


def notify_mentioned(message: Message) -> None:
    """A Mention for each person named who may read the room (nobody else learns of it); already
    seen by those who have the room open."""
    named = [user_id for user_id in message.mentioned_ids if user_id != message.author_id]
    if not named:
        return
    readers = queries.readers_among(message.room, named)
    present = queries.present_user_ids(message.room, named)
    Mention.objects.bulk_create(
        Mention(message=message, user=reader, room=message.room, seen=reader.pk in present)
        for reader in readers
    )
    for reader in readers:
        if reader.pk not in present:
            broadcast.bump_user(reader.pk)
    mentionmail.email_missed_mention(message, [reader for reader in readers if reader.pk not in present])


def mark_mentions_read(room: Room, user: User) -> None:
    """The user opened the room: what named them there is no longer unread."""
    if user.is_authenticated and Mention.objects.filter(user=user, room=room, seen=False).update(seen=True):
        broadcast.bump_user(user.pk)


def why_not_post(room: Room, viewer: Standing) -> str | None:
    """Why this signed-in user may not post in the room at all right now, or None if they may."""
    if not viewer.can_read:
        return "You can't post in this room."
    if viewer.closed_because:  # a direct message closed by a block, or DMs turned off
        return viewer.closed_because
    if viewer.is_moderator:
        return None
    if room.is_locked:
        return "This room is locked: only moderators can post."
    if viewer.is_muted:
        return (
            f"You're muted in this room until {time_format(timezone.localtime(viewer.muted_until), 'H:i T')}."
        )
    return None


def why_wait(room: Room, user: Account, viewer: Standing, locking: bool = False) -> str | None:
    """Slow mode and flood control: how long to wait before the next message, if at all.

    `locking` (inside the posting transaction) first locks the poster, so that the answer holds
    until the message is stored.
    """
    flooding = is_flooding(user, locking)  # first: it takes the lock before slow mode's query
    if room.slow_mode_seconds and not viewer.is_moderator:
        last = room.messages.filter(author=user).order_by("-pk").values_list("created_at", flat=True).first()
        if last:
            wait = room.slow_mode_seconds - (timezone.now() - last).total_seconds()
            if wait > 0:
                return f"Slow mode is on: you can post again in {int(wait) + 1} seconds."
    if flooding:
        return TOO_FAST
    return None


REPLIED_TO_GONE = "The message you were replying to is gone. Send again to post without the quote."
TOO_FAST = "You're sending messages too fast. Wait a few seconds; your text is still here."


def is_flooding(user: Account, locking: bool = False) -> bool:
    """True when the user already sent the allowed number of messages in the flood window.

    Counted in the database, so the limit holds across tabs and server processes. With
    `locking`, inside a transaction, the user's row is locked first and held until the commit.
    SQLite needs no lock: its transactions begin IMMEDIATE (settings.py), one writer at a time.
    """
    since = timezone.now() - timedelta(seconds=settings.CHAT_FLOOD_WINDOW_SECONDS)
    # Hand-written: it runs on every post, and building it with the ORM costs several times what
    # the database takes to answer. Counting stops at the limit, so a flooder's backlog costs no
    # more than an ordinary user's.
    count = _RECENT_POSTS_SQL.format(table=Message._meta.db_table)
    parameters = [user.pk, connection.ops.adapt_datetimefield_value(since), settings.CHAT_FLOOD_MESSAGES]
    lock = locking and connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if lock:
            # Two statements, one round trip (client-side binding, Django's default with psycopg):
            # the count's snapshot is taken after the lock is granted, so it sees the posts of
            # whoever held the lock before.
            cursor.execute(
                _LOCK_USER_SQL.format(table=Account._meta.db_table) + "; " + count, [user.pk, *parameters]
            )
            cursor.nextset()
        else:
            cursor.execute(count, parameters)
        (recent,) = cursor.fetchone()
    return recent >= settings.CHAT_FLOOD_MESSAGES


# NO KEY: rows that merely refer to the user (their foreign keys' KEY SHARE locks) don't wait.
_LOCK_USER_SQL = "SELECT 1 FROM {table} WHERE id = %s FOR NO KEY UPDATE"
_RECENT_POSTS_SQL = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE author_id = %s AND created_at >= %s LIMIT %s) recent"
)


# Texts too big to format ------------------------------------------------------------------


class RecentRefusals:
    """When each user's texts were last refused as too big to format, in this server process.

    Each refusal cost a rendering (up to about 50 ms for 2,000 pathological characters) and
    stores nothing the flood limit counts, so they are counted here: per process, as the CPU
    they cost is. A dictionary lookup per post; only users refused lately have an entry.
    """

    def __init__(self) -> None:
        self._times: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    def too_many(self, user_id: int) -> bool:
        """True when the user had the flood limit's number of refusals within its window."""
        if user_id not in self._times:
            return False
        since = time.monotonic() - settings.CHAT_FLOOD_WINDOW_SECONDS
        with self._lock:
            recent = [at for at in self._times.pop(user_id, []) if at > since]
            if recent:
                self._times[user_id] = recent
        return len(recent) >= settings.CHAT_FLOOD_MESSAGES

    def clear(self) -> None:
        with self._lock:
            self._times.clear()

    def add(self, user_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._times.setdefault(user_id, []).append(now)
            if len(self._times) > 1000:  # forget those whose refusals are all past the window
                since = now - settings.CHAT_FLOOD_WINDOW_SECONDS
                self._times = {user: times for user, times in self._times.items() if times[-1] > since}


refused_as_too_big = RecentRefusals()


def _render_or_refuse(message: Message) -> str | None:
    """Render the message for saving; a sentence instead when its text would render too big, or
    when its author's texts were refused so often lately that rendering is not tried."""
    if refused_as_too_big.too_many(message.author_id):
        return TOO_FAST
    refusal = message.render_body()
    if refusal:
        refused_as_too_big.add(message.author_id)
    return refusal


# Presence ---------------------------------------------------------------------------------
# A socket's row is written when it opens and deleted when it closes. Liveness is per server
# process (one heartbeat each, see chat/hub.py), never per socket. The member list is announced
# by the hub, coalesced per room, not by each join.


@dataclass(frozen=True)
class SocketPresence:
    room: Room
    user: User
    socket_id: str


def register_process(presences: Sequence[SocketPresence] = ()) -> int:
    """A server process starts holding sockets (or comes back after being taken for dead)."""
    process = ServerProcess.objects.create(last_seen=timezone.now())
    Presence.objects.bulk_create(_presence_row(p, process.pk) for p in presences)
    return process.pk


def beat(process_id: int) -> bool:
    """The process's heartbeat: one write for all its sockets.

    False when this process's row is gone (it was reaped): it must register again.
    """
    return ServerProcess.objects.filter(pk=process_id).update(last_seen=timezone.now()) == 1


def reap_stale_processes() -> list[Room]:
    """Delete processes that stopped beating, and their sockets; returns the rooms they were in."""
    stale = ServerProcess.objects.filter(last_seen__lt=queries.live_processes_cutoff())
    rooms = list(Room.objects.filter(presences__process__in=stale).distinct())
    stale.delete()
    return rooms


def forget_process(process_id: int) -> None:
    ServerProcess.objects.filter(pk=process_id).delete()


@transaction.atomic
def record_presence(process_id: int, arrivals: Sequence[SocketPresence], departures: Iterable[str]) -> None:
    """Sockets that opened and closed on this process since the last call, in one transaction."""
    Presence.objects.filter(socket_id__in=list(departures)).delete()
    if arrivals:
        # Hand-written: a room filling up sends hundreds of rows a second, and bulk_create spent
        # most of the presence write compiling each row's values (py-spy, 1,000 joins).
        rows = [(p.room.pk, p.user.pk, p.socket_id, process_id) for p in arrivals]
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_PRESENCE_SQL.format(table=Presence._meta.db_table), rows)


_INSERT_PRESENCE_SQL = "INSERT INTO {table} (room_id, user_id, socket_id, process_id) VALUES (%s, %s, %s, %s)"


def _presence_row(presence: SocketPresence, process_id: int) -> Presence:
    user = presence.user if presence.user.is_authenticated else None
    return Presence(room=presence.room, user=user, socket_id=presence.socket_id, process_id=process_id)


# Your own messages: edit and delete --------------------------------------------------------


class Refused(Exception):
    """The author may not change the message now; the text says why, for the page."""


@transaction.atomic
def edit_message(user: Account, message: Message, text: str) -> bool:
    """Store the author's new text, keeping the old one as a version, then show it to the room.

    False when the text is unchanged (nothing stored or shown). `text` is already validated as a
    message; raises Refused with a sentence when the author may not edit it now.
    """
    message = _lock(message)
    refusal = why_not_edit(message, user, standing(message.room, user)) or _edits_too_fast(user)
    if refusal:
        raise Refused(refusal)
    if text == message.body:
        return False
    MessageVersion.objects.create(
        message=message, body=message.body, written_at=message.edited_at or message.created_at
    )
    message.body, message.edited_at = text, timezone.now()
    refusal = _render_or_refuse(message)  # the one rendering: save() stores it
    if refusal:
        raise Refused(refusal)  # the transaction is rolled back: nothing changes
    message.save(update_fields=["body", "edited_at"])
    broadcast.message_edited(message)
    return True


@transaction.atomic
def delete_own_message(user: Account, message: Message) -> None:
    """Erase the text (body, HTML and every earlier version) and leave a tombstone for everyone.

    Reports keep the text as it was reported; a moderator's removal, unlike this, keeps it all.
    """
    message = _lock(message)
    refusal = why_not_delete(message, user, standing(message.room, user))
    if refusal:
        raise Refused(refusal)
    message.versions.all().delete()
    # Its file goes too: the row now, the stored files once this commits (see models.Attachment).
    Attachment.objects.filter(message=message).delete()
    message.body, message.body_html, message.deleted_at = "", "", timezone.now()
    # An update, not save(): save() would render the empty body into "<p></p>". Pages are bumped
    # by the broadcast.
    Message.objects.filter(pk=message.pk).update(body="", body_html="", deleted_at=message.deleted_at)
    broadcast.message_removed(message)


def _lock(message: Message) -> Message:
    """The message as stored now, locked until the commit: two tabs' edits take turns."""
    return Message.objects.select_for_update().select_related("room", "author").get(pk=message.pk)


def _edits_too_fast(user: Account) -> str | None:
    """The per-user edit limit, counted in the database like the flood limit."""
    window = settings.CHAT_EDIT_RATE_WINDOW_SECONDS
    since = timezone.now() - timedelta(seconds=window)
    recent = list(
        MessageVersion.objects.filter(message__author=user, replaced_at__gte=since)
        .order_by("-replaced_at")
        .values_list("replaced_at", flat=True)[: settings.CHAT_EDITS_PER_USER]
    )
    if len(recent) < settings.CHAT_EDITS_PER_USER:
        return None
    wait = fragments.wait_in_words((recent[-1] - since).total_seconds())
    return f"You're editing messages too fast: you can edit again in {wait}. Your text is still here."


# Reactions --------------------------------------------------------------------------------


class ReactionRefused(Exception):
    """The reaction was not changed; the text says why, for the person who tried."""


TOO_MANY_REACTIONS = "You're reacting too fast. Wait a few seconds and try again."


@transaction.atomic
def toggle_reaction(user: Account, message: Message, emoji: str) -> bool:
    """Add the user's `emoji` to the message, or take it back; True when it is there now.

    Counted per user in Django's cache (shared by every process with REDIS_URL), toggles
    included, so flipping one emoji back and forth cannot flood the room with updates.
    """
    refusal = why_not_react(message.room, standing(message.room, user))
    if refusal is None and message.removed_at:
        refusal = "That message was removed."
    if refusal is None and reacting_too_fast(user):
        refusal = TOO_MANY_REACTIONS
    if refusal:
        raise ReactionRefused(refusal)
    taken_back, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
    if not taken_back:
        try:
            with transaction.atomic():  # a savepoint: a double click from two tabs adds one row
                Reaction.objects.create(message=message, user=user, emoji=emoji)
        except IntegrityError:
            return True
    broadcast.reactions_changed(message)
    return not taken_back


def reacting_too_fast(user: Account) -> bool:
    """Count one more reaction in the user's current window; True once it is over the limit."""
    window = settings.CHAT_REACTION_WINDOW_SECONDS
    key = f"reactions:{user.pk}:{int(timezone.now().timestamp() // window)}"
    cache.add(key, 0, timeout=int(window) + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: count this one as the first
        cache.add(key, 1, timeout=int(window) + 1)
        count = 1
    return count > settings.CHAT_REACTIONS_PER_USER
