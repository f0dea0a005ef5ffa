from django.conf import settings
from django.db import models
from django.urls import reverse


class Room(models.Model):
    """A place to talk. Created with just a name and slug, a room is open and public."""

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.CharField(max_length=200, blank=True)
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


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    body = models.TextField(max_length=settings.CHAT_MESSAGE_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["room", "-id"], name="message_room_recent"),
            # Flood control counts a user's messages in the last few seconds.
            models.Index(fields=["author", "created_at"], name="message_author_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.author} in {self.room}: {self.body[:40]}"


class Presence(models.Model):
    """One open websocket on a room; a user with two tabs has two rows and is listed once.

    Rows live in the database, not in process memory, so every server process sees
    the same member list. `last_seen` is refreshed by a heartbeat so rows left behind
    by a crashed process expire on their own.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    channel_name = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.user or 'guest'} in {self.room}"
