"""What the chat does, independent of transport: HTTP views and consumers both call these.

Each service checks, writes, then broadcasts after the commit. Reads live in chat.queries.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.formats import time_format

from chat import broadcast
from chat.forms import MessageForm
from chat.models import Message, Presence, Room
from chat.standing import Account, Standing, User, standing


@dataclass(frozen=True)
class PostOutcome:
    """A bound form (with errors when refused) and the stored message when accepted."""

    form: MessageForm
    message: Message | None


def post_message(room: Room, user: User, data: dict) -> PostOutcome:
    """Check the poster may post, validate, store, then show it to the room."""
    form = MessageForm(data)
    if not isinstance(user, Account):
        form.add_error(None, "Sign in to post messages.")
        return PostOutcome(form, None)
    viewer = standing(room, user)
    refusal = why_not_post(room, viewer)
    if refusal is None and form.is_valid():
        refusal = why_wait(room, user, viewer)
    if refusal:
        form.add_error(None, refusal)
    if not form.is_valid():
        return PostOutcome(form, None)
    message = Message.objects.create(room=room, author=user, body=form.cleaned_data["message"])
    broadcast.new_message(message)
    return PostOutcome(form, message)


def why_not_post(room: Room, viewer: Standing) -> str | None:
    """Why this signed-in user may not post in the room at all right now, or None if they may."""
    if not viewer.can_read:
        return "You can't post in this room."
    if viewer.is_moderator:
        return None
    if room.is_locked:
        return "This room is locked: only moderators can post."
    if viewer.is_muted:
        return (
            f"You're muted in this room until {time_format(timezone.localtime(viewer.muted_until), 'H:i T')}."
        )
    return None


def why_wait(room: Room, user: Account, viewer: Standing) -> str | None:
    """Slow mode and flood control: how long to wait before the next message, if at all."""
    if room.slow_mode_seconds and not viewer.is_moderator:
        last = room.messages.filter(author=user).order_by("-pk").values_list("created_at", flat=True).first()
        if last:
            wait = room.slow_mode_seconds - (timezone.now() - last).total_seconds()
            if wait > 0:
                return f"Slow mode is on: you can post again in {int(wait) + 1} seconds."
    if is_flooding(user):
        return "You're sending messages too fast. Wait a few seconds; your text is still here."
    return None


def is_flooding(user: Account) -> bool:
    """True when the user already sent the allowed number of messages in the flood window.

    Counted in the database, so the limit holds across tabs and server processes.
    """
    since = timezone.now() - timedelta(seconds=settings.CHAT_FLOOD_WINDOW_SECONDS)
    # Counting stops at the limit: a flooder's backlog costs no more than an ordinary user's.
    recent = Message.objects.filter(author=user, created_at__gte=since)[
        : settings.CHAT_FLOOD_MESSAGES
    ].count()
    return recent >= settings.CHAT_FLOOD_MESSAGES


# Presence ---------------------------------------------------------------------------------


def join_room(room: Room, user: User, channel_name: str) -> None:
    """A socket opened on the room: everyone's member list updates."""
    Presence.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "room": room,
            "user": user if user.is_authenticated else None,
            "last_seen": timezone.now(),
        },
    )
    broadcast.members(room)


def leave_room(channel_name: str) -> None:
    """A socket closed: everyone's member list updates."""
    presence = Presence.objects.select_related("room").filter(channel_name=channel_name).first()
    if presence:
        presence.delete()
        broadcast.members(presence.room)


def touch_presence(channel_name: str) -> None:
    Presence.objects.filter(channel_name=channel_name).update(last_seen=timezone.now())
