import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.functions import Lower
from django.db.models.signals import post_delete
from django.urls import reverse

from chat import formatting

# Slugs taken by URLs under /rooms/ (see chat/urls.py).
RESERVED_ROOM_SLUGS = frozenset({"propose"})


class Role(models.TextChoices):
    """Who someone is in a room: the one vocabulary for permissions, channel groups and memberships."""

    VISITOR = "visitor", "Visitor"
    MEMBER = "member", "Member"
    MODERATOR = "moderator", "Moderator"


# A membership gives one of these; visitors are everyone else.
MEMBERSHIP_ROLES = [(role.value, role.label) for role in (Role.MEMBER, Role.MODERATOR)]


def account_group_name(user_id: int) -> str:
    """Every socket a user has open, in any room, for news about the account itself: signed out,
    disabled, password or staff flag changed. The one group name not starting with room.<pk>."""
    return f"account.{user_id}"


# A direct message's slug: its two people's ids, lower first (see direct_slug).
DIRECT_SLUG = re.compile(r"^dm-\d+-\d+$")


def direct_slug(first_user_id: int, second_user_id: int) -> str:
    """The one slug of the conversation between two people, whoever starts it."""
    low, high = sorted((first_user_id, second_user_id))
    return f"dm-{low}-{high}"


def not_reserved(slug: str) -> None:
    if slug in RESERVED_ROOM_SLUGS or DIRECT_SLUG.match(slug):
        raise ValidationError(f"“{slug}” is used by the site itself; choose another slug.")


class Room(models.Model):
    """A place to talk. Created with just a name and slug, a room is open, public and approved."""

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Waiting for approval"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=80, unique=True, validators=[not_reserved])
    description = models.CharField(max_length=200, blank=True)
    is_public = models.BooleanField(
        "public", default=True, help_text="Public rooms can be read by anyone; private ones by members only."
    )
    is_locked = models.BooleanField("locked", default=False, help_text="Only moderators can post.")
    slow_mode_seconds = models.PositiveIntegerField(
        "slow mode (seconds)",
        default=0,
        help_text="At most one message per this many seconds per member; 0 is off.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPROVED)

    class Kind(models.TextChoices):
        ROOM = "room", "Room"
        DIRECT = "direct", "Direct message"

    # A direct message is a private room of exactly two people (chat/standing.py keeps it theirs).
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ROOM, editable=False)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="proposed_rooms",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("room-detail", kwargs={"slug": self.slug})

    @property
    def group_name(self) -> str:
        """The channel-layer group every socket open on this room joins."""
        return f"room.{self.pk}"

    def role_group_name(self, role: Role) -> str:
        """One group per role ("visitor", "member", "moderator"); each socket is in exactly one."""
        return f"room.{self.pk}.{role}"

    def user_group_name(self, user_id: int) -> str:
        """Every socket a user has open on this room, for news about that user alone."""
        return f"room.{self.pk}.user.{user_id}"

    @property
    def is_approved(self) -> bool:
        return self.status == self.Status.APPROVED

    @property
    def is_direct(self) -> bool:
        return self.kind == self.Kind.DIRECT

    @staticmethod
    def is_direct_slug(slug: str) -> bool:
        """Slugs of the form only direct messages take (no ordinary room may)."""
        return bool(DIRECT_SLUG.match(slug))


def message_permalink(room_slug: str, message_id: int) -> str:
    """Where a message lives for good: its room opened around it, scrolled to it."""
    path = reverse("message-permalink", kwargs={"slug": room_slug, "pk": message_id})
    return f"{path}#message-{message_id}"


class MessageManager(models.Manager["Message"]):
    def bulk_create(self, objs: Iterable["Message"], *args: Any, **kwargs: Any) -> list["Message"]:
        """bulk_create skips save(): the rows it writes are rendered here instead."""
        messages = list(objs)
        for message in messages:
            if not message.body_html:
                message.render_body()
        return super().bulk_create(messages, *args, **kwargs)


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    # What the author typed: the admin, reports and the audit log show this, as plain text.
    body = models.TextField(max_length=settings.CHAT_MESSAGE_MAX_LENGTH)
    # The body's Markdown as sanitized HTML, rendered on every save that writes the body, so
    # readers and broadcasts never render it (chat/formatting.py). Only the room page shows it.
    body_html = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # A removed message stays stored for the audit log; the room shows a tombstone instead.
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set by the author's edits (earlier texts are MessageVersions) and deletion (text erased).
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The ids of the people the body links by @name, space-separated, rendered with body_html:
    # the message carries them for the per-reader "mentions you" CSS rule.
    mentions = models.CharField(max_length=300, editable=False, default="", blank=True)
    # The message this one answers. No database constraint: deleting the original keeps the id,
    # so the reply can say the original was deleted (the join simply finds nothing).
    reply_to = models.ForeignKey(
        "self",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="replies",
    )

    objects = MessageManager()

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["room", "-id"], name="message_room_recent"),
            # Flood control counts a user's messages in the last few seconds.
            models.Index(fields=["author", "created_at"], name="message_author_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.author} in {self.room}: {self.body[:40]}"

    def save(self, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "body" in update_fields:
            # A body the caller has just rendered (to check it, see services) is not rendered twice.
            if self.__dict__.pop("_rendered_body", None) != self.body:
                self.render_body()
            if update_fields is not None:
                kwargs["update_fields"] = [*update_fields, "body_html", "mentions"]
        super().save(**kwargs)

    def render_body(self) -> str | None:
        """Render the body into body_html; say why, when it renders too big to format (the HTML
        is then the text escaped, see chat/formatting.py). The next save() stores this rendering."""
        rendered = formatting.render_message(self.body, find_people)
        self.body_html = rendered.html
        # Naming yourself is no news to you.
        self.mentions = " ".join(str(pk) for pk in rendered.mentioned_ids if pk != self.author_id)
        self._rendered_body = self.body
        return rendered.refusal

    @property
    def mentioned_ids(self) -> list[int]:
        return [int(user_id) for user_id in self.mentions.split()]


def find_people(names: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Active users by lowercased username (names are unique whatever their case, see SignupForm)."""
    wanted = {name.lower() for name in names}
    if not wanted:
        return {}
    people = get_user_model().objects.alias(name=Lower("username"))
    found = people.filter(is_active=True, name__in=wanted).values_list("pk", "username")
    return {username.lower(): (pk, username) for pk, username in found}


class Mention(models.Model):
    """A reader of the room named in a message: counted on their room list until they open the room.

    Only people who may read the room get one: naming anyone else tells them nothing.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mention_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions")
    # The message's room, kept here so the room list counts without a join.
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mentions")
    # Read once the user opens the room, or at once if they had it open when they were named.
    seen = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="one_mention_per_message")]
        indexes = [models.Index(fields=["user", "seen", "room"], name="mention_unseen")]

    def __str__(self) -> str:
        return f"{self.user} named in message {self.message_id}"


class MessageVersion(models.Model):
    """A text a message had before its author edited it; staff read them in the admin.

    Erased with the message's own text when the author deletes it.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="versions")
    body = models.TextField()
    # When this text was written (sent or edited), and when an edit replaced it.
    written_at = models.DateTimeField()
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "replaced_at"]
        # The per-user edit limit counts a user's recent edits.
        indexes = [models.Index(fields=["replaced_at"], name="version_replaced_recent")]

    def __str__(self) -> str:
        return f"Version of message {self.message_id} until {self.replaced_at:%Y-%m-%d %H:%M}"


class ServerProcess(models.Model):
    """One running server process. Its single heartbeat keeps all of its sockets' presence alive.

    A process that crashes stops beating; its presence rows then stop counting and are deleted
    (with it) by the next heartbeat of any other process.
    """

    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"server process {self.pk}, last seen {self.last_seen:%H:%M:%S}"


class Presence(models.Model):
    """One open websocket on a room; a user with two tabs has two rows and is listed once.

    Rows live in the database, not in process memory, so every server process sees the same
    member list. A row is written once when the socket opens and deleted when it closes; it
    counts only while its server process is alive (see ServerProcess).
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    socket_id = models.CharField(max_length=64, unique=True)
    process = models.ForeignKey(ServerProcess, on_delete=models.CASCADE, related_name="presences")

    def __str__(self) -> str:
        return f"{self.user or 'guest'} in {self.room}"


class Membership(models.Model):
    """A user's place in a room: membership of a private room, or the moderator role."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=MEMBERSHIP_ROLES, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="one_membership_per_room")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) in {self.room}"


class Sanction(models.Model):
    """A moderator's measure against one user in one room; at most one of each kind at a time."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="%(class)ss")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="%(class)ss")
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="one_%(class)s_per_room")]


class Mute(Sanction):
    """The user can read the room but not post until `until`."""

    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user} muted in {self.room} until {self.until:%Y-%m-%d %H:%M}"


class Ban(Sanction):
    """The user may not read or post in the room until unbanned."""

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room}"


class Report(models.Model):
    """A member flags a message for the moderators; staff work the queue in the admin."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution = models.CharField(max_length=100, blank=True)
    # The text as it was when reported: the author may edit or delete the message afterwards.
    reported_body = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["resolved_at", "-created_at"]
        constraints = [
            # Reporting again adds nothing for the moderators; once resolved, it may be reported anew.
            models.UniqueConstraint(
                fields=["message", "reporter"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_report_per_reporter",
            )
        ]
        # The per-user report limit counts a reporter's recent reports.
        indexes = [models.Index(fields=["reporter", "created_at"], name="report_reporter_recent")]

    def __str__(self) -> str:
        return f"Report by {self.reporter} on message {self.message_id}"

    def save(self, **kwargs: Any) -> None:
        if self._state.adding and not self.reported_body:
            self.reported_body = self.message.body
        super().save(**kwargs)


# The emoji a message can get, in the order they are offered and shown.
REACTION_EMOJI = ("👍", "❤️", "😂", "🎉", "😮", "🙏")


class Reaction(models.Model):
    """One person's emoji on one message; toggled from the message menu."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions")
    emoji = models.CharField(max_length=8, choices=[(emoji, emoji) for emoji in REACTION_EMOJI])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="one_reaction_per_emoji")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.emoji} on message {self.message_id}"


class AuditEntry(models.Model):
    """Who did what to whom, when and why. Written by every moderation service; never edited."""

    class Action(models.TextChoices):
        REMOVE_MESSAGE = "remove message"
        DELETE_MESSAGE = "delete message"
        REPORT_MESSAGE = "report message"
        RESOLVE_REPORT = "resolve report"
        MUTE = "mute"
        UNMUTE = "unmute"
        BAN = "ban"
        UNBAN = "unban"
        INVITE = "invite"
        SET_ROLE = "set role"
        LOCK_ROOM = "lock room"
        UNLOCK_ROOM = "unlock room"
        SET_SLOW_MODE = "set slow mode"
        CHANGE_ROOM_SETTINGS = "change room settings"
        PROPOSE_ROOM = "propose room"
        APPROVE_ROOM = "approve room"
        REJECT_ROOM = "reject room"
        CLEAR_REACTIONS = "clear reactions"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    room = models.ForeignKey(Room, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action}"


class Block(models.Model):
    """`blocker` wants no direct messages from `blocked`: neither can write in a conversation of theirs.

    Only the blocker sees it (on the person's page and in the conversation); the blocked person is
    told only when they try to write.
    """

    blocker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="one_block_per_pair")]

    def __str__(self) -> str:
        return f"{self.blocker} blocked {self.blocked}"


class Attachment(models.Model):
    """A file posted with a message (chat/uploads.py decides what is accepted, by content).

    Stored through Django's storage API under a random name, never one derived from the user's;
    served only by chat/attachments.py, which checks who may read the room every time.
    """

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="attachment")
    file = models.FileField(max_length=200)
    # Images only: a small WebP shown inline in the message.
    thumbnail = models.FileField(max_length=200, blank=True)
    # The sender's file name, cleaned, for showing and for the download's name only.
    name = models.CharField(max_length=200)
    # Decided by the content, never by the name or the browser's claim.
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumb_width = models.PositiveIntegerField(null=True, blank=True)
    thumb_height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} on message {self.message_id}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    def stored_names(self) -> list[str]:
        return [name for name in (self.file.name, self.thumbnail.name) if name]

    @staticmethod
    def known_absent(message: Message) -> None:
        """Tell `message` it has no attachment, so showing it asks the database nothing."""
        Message.attachment.related.set_cached_value(message, None)


def _attachment_deleted(sender: type, instance: Attachment, **kwargs: object) -> None:
    """The row is gone (the author deleted the message, staff deleted it, or its room): so are its
    files, once the deletion is committed (a rollback keeps both)."""
    names, storage = instance.stored_names(), instance.file.storage

    def delete_files() -> None:
        for name in names:
            storage.delete(name)

    transaction.on_commit(delete_files)


post_delete.connect(_attachment_deleted, sender=Attachment, dispatch_uid="attachment-files-deleted")


class LastRead(models.Model):
    """How far a person has read a room: messages after `message_id` count as unread for them.

    One row per (user, room), moved forward (never back) when a socket of theirs opens the room
    and when it closes, so "read while open" costs nothing per message (see chat/reading.py).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    # A message id, not a foreign key: the message may be deleted, the position stays.
    message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="one_last_read_per_room")]

    def __str__(self) -> str:
        return f"{self.user} read {self.room} up to {self.message_id}"


class MentionEmails(models.Model):
    """Whether a user is emailed when named in a room they don't have open (on unless turned off),
    and the address they proved is theirs by following an emailed link (chat/mentionmail.py).

    Mention emails go only while the account's address equals `confirmed_email`: changing the
    address, however it is changed (settings, admin, SQL), leaves it unconfirmed.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField("Email me when I'm mentioned while away", default=True)
    confirmed_email = models.EmailField(blank=True, default="")
    # Do not disturb: no mention emails before this time (counts still show). Past means off, so
    # it ends by itself without a job (chat/involvement.py).
    snoozed_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Mention emails for {self.user}: {'on' if self.enabled else 'off'}"


class Involvement(models.Model):
    """How much one person hears of one room (chat/involvement.py). No row: EVERYTHING.

    Counts on the room list, its title and mention emails all read this one row.
    """

    class Level(models.TextChoices):
        EVERYTHING = "everything", "Everything"
        MENTIONS = "mentions", "Mentions"
        NOTHING = "nothing", "Nothing"
        HIDDEN = "hidden", "Hidden"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.EVERYTHING)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="one_involvement_per_room")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room}: {self.level}"


# Levels that never email (nor count anything but, for HIDDEN, mentions).
QUIET_LEVELS = (Involvement.Level.NOTHING, Involvement.Level.HIDDEN)


class Bot(models.Model):
    """An account that posts and reads through the API with a key, never by signing in.

    Its account keeps an unusable password, and chat.accounts refuses every login of it even if
    one is set: no login form, session or socket acts as a bot. The key is shown once as
    `parley_<key_id>_<secret>`; only the secret's SHA-256 is stored (it is a random token, so a
    fast hash is enough: there is nothing to guess from). Resetting replaces both parts.
    """

    account = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bot")
    initial = models.CharField(max_length=1, help_text="The letter its avatar shows.")
    # Rooms it may post in and read; kept equal to its memberships of rooms (chat/bots.py), so
    # private rooms, member lists and mentions treat it as any member.
    rooms = models.ManyToManyField("chat.Room", related_name="bots", blank=True)
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=128, editable=False)
    webhook_url = models.URLField(
        blank=True, help_text="Called when someone mentions the bot or writes to it directly."
    )
    # The HMAC-SHA256 key that signs outgoing webhook deliveries, for the receiver to check them.
    webhook_secret = models.CharField(max_length=64, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account__username"]

    def __str__(self) -> str:
        return f"bot {self.account.username}"


class WebhookDelivery(models.Model):
    """One message POSTed (or to be) to one bot's webhook URL (chat/webhooks.py).

    One row per bot and message, whatever the retries: its id is the X-Parley-Delivery header,
    which receivers de-duplicate on. Staff read the outcome in the admin; the room never shows a
    failure.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="webhook_deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    # The receiver's HTTP status on the last attempt that got an answer.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The bot's answer, posted in the room: stored with the outcome, so a retry never posts twice.
    reply = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["bot", "message"], name="one_delivery_per_bot")]
        indexes = [models.Index(fields=["bot", "-created"], name="delivery_bot_recent")]

    def __str__(self) -> str:
        return f"delivery {self.pk} of message {self.message_id} to {self.bot}: {self.status}"


class LiveUpdates(models.Model):
    """Whether a person has paused live updates (WCAG 2.2.2, "Pause, Stop, Hide"): new messages
    in an open room then wait unseen and unannounced until they ask for them. No row: not paused.

    Read when a room's socket connects, which sends that person's live mode (see
    chat.fragments.live_mode_html); saved with chat.involvement.set_live_updates, which switches
    their open rooms at once. Broadcasts stay the same for everyone.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    paused = models.BooleanField("Pause live updates", default=False)

    def __str__(self) -> str:
        return f"Live updates for {self.user}: {'paused' if self.paused else 'on'}"


def live_updates_paused(user_id: int) -> bool:
    return LiveUpdates.objects.filter(user_id=user_id, paused=True).exists()
