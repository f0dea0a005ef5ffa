"""Live effects: fragments rendered once per event and sent through the channel layer.

Every service that changes what a room shows calls one of these, so an action taken in
the admin shows in open browsers exactly like one taken from the room page. Sends wait
for the database commit: nobody sees what was not stored.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat import fragments
from chat.models import Message, Role, Room


async def _send(events: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    for group, event in events:
        # Each process's hub subscribes once to many groups: the event says which one it is for.
        await layer.group_send(group, event | {"group": group})


def _after_commit(group: str, event: dict) -> None:
    _all_after_commit([(group, event)])


def _all_after_commit(events: list[tuple[str, dict]]) -> None:
    """Several events in one hop to the event loop: each hop from this thread costs a round trip."""
    transaction.on_commit(lambda: async_to_sync(_send)(events), robust=False)


def html_to_room(room: Room, html: str) -> None:
    _after_commit(room.group_name, {"type": "room.html", "html": html})


def new_message(message: Message) -> None:
    """One render per role however many readers: moderators' copy carries their controls."""
    _all_after_commit(
        [
            (
                message.room.role_group_name(role),
                {"type": "room.html", "html": fragments.new_message_html(message, role)},
            )
            for role in Role
        ]
    )


def message_removed(message: Message) -> None:
    html_to_room(message.room, fragments.message_html(message))


def message_deleted(room: Room, message_id: int) -> None:
    html_to_room(room, fragments.deleted_message_html(message_id))


def members_event(room: Room) -> tuple[str, dict]:
    """The member list, rendered once; chat.hub sends it at most once per room per second."""
    group = room.group_name
    return group, {"type": "room.members", "group": group, "html": fragments.members_html(room)}


def standing_changed(room: Room, user_id: int) -> None:
    """A user was muted, banned, promoted...: their own sockets re-check and redraw."""
    _after_commit(room.user_group_name(user_id), {"type": "room.standing"})


def room_changed(room: Room, access_narrowed: bool = False) -> None:
    """Settings changed: redraw the header for all and the form for each role (once per role)."""
    html_to_room(room, fragments.room_header_html(room))
    _after_commit(
        room.group_name,
        {
            "type": "room.form",
            Role.MEMBER: fragments.form_html_for_role(room, Role.MEMBER),
            Role.MODERATOR: fragments.form_html_for_role(room, Role.MODERATOR),
        },
    )
    moderation_panel(room)
    if access_narrowed:
        # Made private: sockets of people who may no longer read it close themselves.
        _after_commit(room.group_name, {"type": "room.access"})


def moderation_panel(room: Room) -> None:
    _after_commit(
        room.role_group_name(Role.MODERATOR),
        {"type": "room.html", "html": fragments.moderation_panel_html(room)},
    )
