"""What a frame from the room page asks for, answered with the sender's reply fragment.

The page's forms name their action in a hidden `action` field (the message form has
none: posting is the default). Each handler validates with a Django form, calls the
service that does the work (and broadcasts), and returns HTML for the sender alone.
"""

from collections.abc import Callable

from django.forms import BaseForm, Form
from django.utils import timezone

from chat import fragments, moderation, queries, services
from chat.forms import (
    EditMessageForm,
    InviteForm,
    MessageActionForm,
    MuteForm,
    ReactionForm,
    RoomSettingsForm,
    UserActionForm,
)
from chat.models import Message, Room
from chat.standing import Account, Standing, User, check_session, standing

# Every action but posting needs an account; posting tells visitors itself how to join in.
Handler = Callable[[Room, Account, dict], str]


def handle(room: Room, user: User, data: dict, session_key: str | None) -> str:
    """The reply to one frame from a socket opened as `user` with the session `session_key`.

    Raises standing.SessionEnded when that session no longer signs the user in (signed out,
    disabled, password changed): nothing is done, and the socket closes with the reason.
    """
    check_session(user, session_key)  # which reloads the user
    room, viewer = queries.fresh_standing(room, user)
    action = data.get("action") or "post"
    if action == "post":
        return post(room, user, data, viewer)
    handler = HANDLERS.get(action)
    if handler is None:
        return fragments.notice_html("That action is not something this page can do.", error=True)
    if not isinstance(user, Account):
        return fragments.notice_html("Sign in first.", error=True)
    try:
        return handler(room, user, data)
    except moderation.NotAllowed as refusal:
        return fragments.notice_html(str(refusal), error=True)


def post(room: Room, user: User, data: dict, viewer: Standing) -> str:
    outcome = services.post_message(room, user, data, viewer)
    if outcome.message is None:
        return fragments.form_html(room, outcome.viewer, outcome.form)
    # A fresh, empty form for the sender only; it carries autofocus so typing goes on.
    return fragments.form_html(room, outcome.viewer) + fragments.notice_html("")


def current_form(room: Room, user: Account, data: dict) -> str:
    """The form as the user may use it now, e.g. when a mute has run out."""
    return fragments.form_html(room, standing(room, user))


def _valid(form: BaseForm) -> dict:
    if not form.is_valid():
        errors = form.errors.items()
        problems = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in errors)
        raise moderation.NotAllowed(f"That request was incomplete ({problems}).")
    return form.cleaned_data


def _message(room: Room, data: dict) -> tuple[Message, str]:
    fields = _valid(MessageActionForm(data))
    message = room.messages.select_related("author", "room").filter(pk=fields["message_id"]).first()
    if message is None:
        raise moderation.NotAllowed("That message is not in this room.")
    return message, fields["reason"]


def _target(
    room: Room, actor: Account, data: dict, form_class: type[Form] = UserActionForm
) -> tuple[Account, dict]:
    fields = _valid(form_class(data))
    return moderation.target_in_room(room, actor, fields["user_id"]), fields


def remove(room: Room, user: Account, data: dict) -> str:
    message, reason = _message(room, data)
    moderation.remove_message(user, message, reason)
    # The message, its menu focused, becomes a tombstone: the focus waits on the outcome.
    return fragments.notice_html(f"Removed a message by {message.author}.", focus=True)


def report(room: Room, user: Account, data: dict) -> str:
    message, reason = _message(room, data)
    try:
        moderation.report_message(user, message, reason)
    except moderation.AlreadyReported as already:
        return fragments.notice_html(str(already))
    return fragments.notice_html("Thanks for reporting it. A moderator will take a look.")


def mute(room: Room, user: Account, data: dict) -> str:
    target, fields = _target(room, user, data, MuteForm)
    muted = moderation.mute(user, room, target, fields["minutes"], fields["reason"])
    return fragments.notice_html(f"{target} is muted until {timezone.localtime(muted.until):%H:%M}.")


def unmute(room: Room, user: Account, data: dict) -> str:
    target, _ = _target(room, user, data)
    moderation.unmute(user, room, target)
    return fragments.notice_html(f"{target} can post again.")


def ban(room: Room, user: Account, data: dict) -> str:
    target, fields = _target(room, user, data)
    moderation.ban(user, room, target, fields["reason"])
    return fragments.notice_html(f"{target} is banned from this room.")


def unban(room: Room, user: Account, data: dict) -> str:
    target, _ = _target(room, user, data)
    moderation.unban(user, room, target)
    return fragments.notice_html(f"{target} is no longer banned.")


def lock(room: Room, user: Account, data: dict) -> str:
    moderation.update_room(user, room, is_locked=True)
    return fragments.notice_html("Locked: only moderators can post now.")


def unlock(room: Room, user: Account, data: dict) -> str:
    moderation.update_room(user, room, is_locked=False)
    return fragments.notice_html("Unlocked: everyone can post again.")


def room_settings(room: Room, user: Account, data: dict) -> str:
    moderation.require_moderator(room, user)
    fields = _valid(RoomSettingsForm(data, instance=room))
    moderation.update_room(user, room, **fields)
    return fragments.notice_html("Room settings saved.")


def invite(room: Room, user: Account, data: dict) -> str:
    username = _valid(InviteForm(data))["username"]
    target = Account.objects.filter(username=username).first()
    if target is None:
        raise moderation.NotAllowed(f"There is no user called {username}.")
    moderation.invite(user, room, target)
    return fragments.notice_html(f"{target} is a member of this room now.")


def edit(room: Room, user: Account, data: dict) -> str:
    """The author's new text: shown to everyone in place; a refusal leaves the form as typed."""
    form = EditMessageForm(data)
    if not form.is_valid():
        if "message" not in form.errors:
            _valid(form)  # raises: the message id is missing or malformed
        return fragments.notice_html(" ".join(map(str, form.errors["message"])), error=True)
    message = _message_in(room, form.cleaned_data["message_id"])
    try:
        changed = services.edit_message(user, message, form.cleaned_data["message"])
    except services.Refused as refusal:
        return fragments.notice_html(str(refusal), error=True)
    if changed:  # the broadcast puts the new text in the form's place; focus waits on the notice
        return fragments.notice_html("Your edit is saved.", focus=True)
    # Nothing to store: put the message back for this page only.
    role = standing(room, user).role
    return fragments.edited_message_html(message, role)[role] + fragments.notice_html("")


def delete(room: Room, user: Account, data: dict) -> str:
    message, _ = _message(room, data)
    try:
        services.delete_own_message(user, message)
    except services.Refused as refusal:
        return fragments.notice_html(str(refusal), error=True)
    return fragments.notice_html("Message deleted.", focus=True)  # its menu, focused, is gone


def _message_in(room: Room, message_id: int) -> Message:
    message = room.messages.select_related("author", "room").filter(pk=message_id).first()
    if message is None:
        raise moderation.NotAllowed("That message is not in this room.")
    return message


def react(room: Room, user: Account, data: dict) -> str:
    """Toggle the user's emoji on a message; they get their menu's buttons back, pressed or not."""
    fields = _valid(ReactionForm(data))
    message = room.messages.select_related("author", "room").filter(pk=fields["message_id"]).first()
    if message is None:
        raise moderation.NotAllowed("That message is not in this room.")
    try:
        services.toggle_reaction(user, message, fields["emoji"])
    except services.ReactionRefused as refusal:
        return fragments.notice_html(str(refusal), error=True)
    picker = fragments.reaction_picker_html(message, standing(room, user), user, pressed=fields["emoji"])
    return picker + fragments.notice_html("")


def clear_reactions(room: Room, user: Account, data: dict) -> str:
    message, reason = _message(room, data)
    cleared = moderation.clear_reactions(user, message, reason)
    if not cleared:
        return fragments.notice_html("That message has no reactions to clear.")
    return fragments.notice_html(f"Cleared {cleared} reaction{'s' if cleared != 1 else ''}.")


HANDLERS: dict[str, Handler] = {
    "remove": remove,
    "report": report,
    "mute": mute,
    "unmute": unmute,
    "ban": ban,
    "unban": unban,
    "lock": lock,
    "unlock": unlock,
    "settings": room_settings,
    "invite": invite,
    "form": current_form,
    "edit": edit,
    "delete": delete,
    "react": react,
    "clear_reactions": clear_reactions,
}
