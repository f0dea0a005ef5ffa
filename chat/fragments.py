"""The one rendering path: every piece of the room page is a partial of chat/room.html.

The page view renders the whole template; consumers render single partials with the
same context builders here, so the first page load and a live update cannot drift apart.
Broadcast fragments depend only on the event, never on the viewer, so they are
rendered once and sent to every socket as they are.
"""

from django.template.loader import render_to_string
from django.urls import reverse

from chat import services
from chat.forms import MessageForm
from chat.models import Message, Room

ROOM_TEMPLATE = "chat/room.html"


def _partial(name: str, context: dict) -> str:
    return render_to_string(f"{ROOM_TEMPLATE}#{name}", context)


def history_context(room: Room, before: int | None = None) -> dict:
    return {"room": room, "history": services.history_page(room, before)}


def members_context(room: Room) -> dict:
    return {"room": room, "members": services.online_members(room)}


def form_context(room: Room, user: services.User, form: MessageForm | None = None) -> dict:
    return {
        "room": room,
        "user": user,
        "form": form or MessageForm(),
        "login_url": f"{reverse('login')}?next={room.get_absolute_url()}",
    }


def new_message_html(message: Message) -> str:
    """A message appended to the end of #messages in every browser on the room."""
    return _partial("new_message", {"message": message})


def history_html(room: Room) -> str:
    """The recent history replacing #messages whole, for a socket that (re)connects."""
    return _partial("history", history_context(room) | {"oob": True})


def older_messages_html(room: Room, before: int) -> str:
    """The page of history before `before`, swapped in where the 'load older' link was."""
    return _partial("older_messages", history_context(room, before))


def members_html(room: Room) -> str:
    return _partial("members", members_context(room) | {"oob": True})


def form_html(room: Room, user: services.User, form: MessageForm | None = None) -> str:
    return _partial("message_form", form_context(room, user, form) | {"oob": True})


def notice_html(text: str) -> str:
    return _partial("notice", {"notice": text, "oob": True})
