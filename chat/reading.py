"""Reading positions: how far each person has read each room (chat.models.LastRead).

A position moves when a socket of theirs opens the room (to its newest message) and when it
closes (to the newest message it showed), never per message shown: "read while open" is free.
It only ever moves forward, so tabs and processes closing in any order agree.
"""

from django.db import transaction

from chat import broadcast, unread
from chat.models import LastRead, Room
from chat.standing import User


def open_room(room: Room, user: User) -> unread.ReadingPosition:
    """A socket of `user` opened the room: where they stood (for the "New messages" divider),
    then the room counts as read up to its newest message."""
    position = unread.reading_position(room, user)
    read_up_to(room, user, position.newest)
    return position


@transaction.atomic
def read_up_to(room: Room, user: User, message_id: int) -> bool:
    """Move the user's position in the room forward to `message_id`; True if it moved (or is new).

    One UPDATE when the row exists; its first time, an insert as well.
    """
    assert user.is_authenticated, "visitors have no reading position"
    moved = LastRead.objects.filter(user_id=user.pk, room=room, message_id__lt=message_id).update(
        message_id=message_id
    )
    if not moved:
        _, moved = LastRead.objects.get_or_create(
            user_id=user.pk, room=room, defaults={"message_id": message_id}
        )
    if moved:
        broadcast.room_read(room.pk, user.pk)
    return bool(moved)
