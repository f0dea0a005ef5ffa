"""The one rendering path: every piece of the room page is a partial of chat/room.html.

The page view renders the whole template; consumers and broadcasts render single partials
with the same context builders here, so the first page load and a live update cannot
drift apart. Broadcast fragments depend on the event and at most the viewer's role, never
on the viewer, so each is rendered once and sent to every socket of that role as it is.
"""

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from chat import services
from chat.forms import MUTE_CHOICES, SLOW_MODE_CHOICES, MessageForm
from chat.models import Message, Room
from chat.standing import MODERATOR, Standing, User, standing

ROOM_TEMPLATE = "chat/room.html"


def _partial(name: str, context: dict) -> str:
    return render_to_string(f"{ROOM_TEMPLATE}#{name}", context)


# Context builders: the page view merges these; the fragment functions below render one each.


def message_context(role: str) -> dict:
    """Messages differ by role only: moderators get moderation controls, members a report button."""
    return {"viewer_role": role, "mute_choices": MUTE_CHOICES}


def history_context(room: Room, role: str, before: int | None = None) -> dict:
    return {"room": room, "history": services.history_page(room, before)} | message_context(role)


def members_context(room: Room) -> dict:
    return {"room": room, "members": services.online_members(room)}


def form_context(room: Room, viewer: Standing, form: MessageForm | None = None) -> dict:
    return {
        "room": room,
        "standing": viewer,
        "form": form or MessageForm(),
        "login_url": f"{reverse('login')}?next={room.get_absolute_url()}",
        "signup_url": f"{reverse('signup')}?next={room.get_absolute_url()}",
    }


def header_context(room: Room) -> dict:
    return {"room": room}


def moderation_context(room: Room) -> dict:
    now = timezone.now()
    return {
        "room": room,
        "slow_mode_choices": SLOW_MODE_CHOICES,
        "slow_mode_values": [seconds for seconds, _ in SLOW_MODE_CHOICES],
        "mutes": room.mutes.filter(until__gt=now).select_related("user").order_by("until"),
        "bans": room.bans.select_related("user").order_by("-created_at"),
    }


# Fragments, each with hx-swap-oob so htmx puts it in place by id.


def history_html(room: Room, role: str) -> str:
    """The recent history replacing #messages whole, for a socket that (re)connects."""
    return _partial("history", history_context(room, role) | {"oob": True})


def reconnect_html(room: Room, role: str) -> str:
    """What a socket gets on (re)connecting: everything it may have missed, except the form."""
    return history_html(room, role) + room_header_html(room)


def older_messages_html(room: Room, role: str, before: int) -> str:
    """The page of history before `before`, swapped in where the 'load older' link was."""
    return _partial("older_messages", history_context(room, role, before))


def new_message_html(message: Message, role: str) -> str:
    """A message appended to the end of #messages, as readers of this role see it."""
    return _partial("new_message", {"message": message} | message_context(role))


def message_html(message: Message) -> str:
    """A message replaced in place, e.g. by its tombstone; the same for every viewer."""
    return _partial("message", {"message": message, "oob": True})


def deleted_message_html(message_id: int) -> str:
    return _partial("deleted_message", {"message_id": message_id})


def members_html(room: Room) -> str:
    return _partial("members", members_context(room) | {"oob": True})


def form_html(room: Room, user: User, form: MessageForm | None = None) -> str:
    """The message form as this user may use it now (sign in, muted, locked, or ready)."""
    return _partial("message_form", form_context(room, standing(room, user), form) | {"oob": True})


def form_html_for_role(room: Room, role: str) -> str:
    """The form for everyone of a role, for room-wide changes such as locking."""
    return _partial("message_form", form_context(room, Standing(role, can_read=True)) | {"oob": True})


def room_header_html(room: Room) -> str:
    return _partial("room_header", header_context(room) | {"oob": True})


def moderation_panel_html(room: Room) -> str:
    return _partial(
        "moderation_panel", moderation_context(room) | {"oob": True, "standing": Standing(MODERATOR, True)}
    )


def notice_html(text: str, error: bool = False) -> str:
    """A line above the form: the outcome of what the user just did."""
    return _partial("notice", {"notice": text, "error": error, "oob": True})


def removed_from_room_html(room: Room, text: str) -> str:
    """What a socket shows as it is closed for good: why, in the form's place."""
    return notice_html(text, error=True) + _partial("closed_form", {"room": room, "notice": text})
