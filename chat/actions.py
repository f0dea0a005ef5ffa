"""What a form of the room page asks for, sent over its socket or posted without script.

The page's forms name their action in a hidden `action` field (the message form has
none: posting is the default). Each handler validates with a Django form, calls the
service that does the work (and broadcasts), and returns an Answer: the socket sends its
HTML to the sender alone (`handle`), the HTTP view (chat.views.room_act) redirects back
to the room or shows the refusal on the page. Both paths run this same code.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.forms import BaseForm, Form
from django.utils import timezone

from chat import fragments, moderation, queries, services
from chat.forms import (
    EditMessageForm,
    InviteForm,
    MessageActionForm,
    MessageForm,
    MuteForm,
    ReactionForm,
    RoomSettingsForm,
    UserActionForm,
)
from chat.models import Message, Room
from chat.standing import Account, Standing, User, check_session, standing


@dataclass(frozen=True)
class Answer:
    """What came of one action, for either path.

    `html` is what the sender's page gets first over the socket (a form, a picker, a message);
    `notice` the notice line's new text (None: the line is left alone, e.g. a refused post,
    whose form says why). `status` is for HTTP: 200 done, 400 invalid, 403 not allowed, 429
    too soon. `message_id` is the message it was about (the page is shown there); `form` is a
    refused post's bound form, which shows the reason and keeps the text.
    """

    html: str = ""
    notice: str | None = ""
    error: bool = False
    focus: bool = False
    status: int = 200
    message_id: int | None = None
    form: MessageForm | None = None

    @property
    def refused(self) -> bool:
        return self.status >= 400

    def socket_html(self) -> str:
        """The sender's reply frame."""
        if self.notice is None:
            return self.html
        return self.html + fragments.notice_html(self.notice, error=self.error, focus=self.focus)


def refusal(sentence: str, status: int = 403) -> Answer:
    return Answer(notice=sentence, error=True, status=status)


class Incomplete(moderation.NotAllowed):
    """A form's fields are missing or malformed: not from the page as it is (400, not 403)."""


# Every action but posting needs an account; posting tells visitors itself how to join in.
Handler = Callable[[Room, Account, dict], Answer]


def handle(room: Room, user: User, data: dict, session_key: str | None) -> str:
    """The reply to one frame from a socket opened as `user` with the session `session_key`."""
    return answer(room, user, data, session_key).socket_html()


def answer(room: Room, user: User, data: dict, session_key: str | None) -> Answer:
    """Do what `data` (a form's fields) asks as `user`, signed in by the session `session_key`.

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
        return refusal("That action is not something this page can do.", 400)
    if not isinstance(user, Account):
        return refusal("Sign in first.")
    try:
        return handler(room, user, data)
    except moderation.NotAllowed as refused:
        return refusal(str(refused), 400 if isinstance(refused, Incomplete) else 403)


def post(room: Room, user: User, data: dict, viewer: Standing) -> Answer:
    outcome = services.post_message(room, user, data, viewer)
    if outcome.message is None:
        html = fragments.form_html(room, outcome.viewer, outcome.form)
        return Answer(html, notice=None, status=outcome.status, form=outcome.form)
    # A fresh, empty form for the sender only; it carries autofocus so typing goes on.
    return Answer(fragments.form_html(room, outcome.viewer), message_id=outcome.message.pk)


def current_form(room: Room, user: Account, data: dict) -> Answer:
    """The form as the user may use it now, e.g. when a mute has run out."""
    return Answer(fragments.form_html(room, standing(room, user)), notice=None)


def _valid(form: BaseForm) -> dict:
    if not form.is_valid():
        errors = form.errors.items()
        problems = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in errors)
        raise Incomplete(f"That request was incomplete ({problems}).")
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


def done(notice: str, message_id: int | None = None, focus: bool = False) -> Answer:
    return Answer(notice=notice, focus=focus, message_id=message_id)


def remove(room: Room, user: Account, data: dict) -> Answer:
    message, reason = _message(room, data)
    moderation.remove_message(user, message, reason)
    # The message, its menu focused, becomes a tombstone: the focus waits on the outcome.
    return done(f"Removed a message by {message.author}.", message.pk, focus=True)


def report(room: Room, user: Account, data: dict) -> Answer:
    message, reason = _message(room, data)
    try:
        moderation.report_message(user, message, reason)
    except moderation.AlreadyReported as already:
        return done(str(already), message.pk)
    return done("Thanks for reporting it. A moderator will take a look.", message.pk)


def mute(room: Room, user: Account, data: dict) -> Answer:
    target, fields = _target(room, user, data, MuteForm)
    muted = moderation.mute(user, room, target, fields["minutes"], fields["reason"])
    return done(f"{target} is muted until {timezone.localtime(muted.until):%H:%M}.")


def unmute(room: Room, user: Account, data: dict) -> Answer:
    target, _ = _target(room, user, data)
    moderation.unmute(user, room, target)
    # Its row, with the button pressed, leaves the list: the focus waits on the outcome.
    return done(f"{target} can post again.", focus=True)


def ban(room: Room, user: Account, data: dict) -> Answer:
    target, fields = _target(room, user, data)
    moderation.ban(user, room, target, fields["reason"])
    return done(f"{target} is banned from this room.")


def unban(room: Room, user: Account, data: dict) -> Answer:
    target, _ = _target(room, user, data)
    moderation.unban(user, room, target)
    return done(f"{target} is no longer banned.", focus=True)  # as unmute: its row is gone


def lock(room: Room, user: Account, data: dict) -> Answer:
    moderation.update_room(user, room, is_locked=True)
    return done("Locked: only moderators can post now.")


def unlock(room: Room, user: Account, data: dict) -> Answer:
    moderation.update_room(user, room, is_locked=False)
    return done("Unlocked: everyone can post again.")


def room_settings(room: Room, user: Account, data: dict) -> Answer:
    moderation.require_moderator(room, user)
    fields = _valid(RoomSettingsForm(data, instance=room))
    moderation.update_room(user, room, **fields)
    return done("Room settings saved.")


def invite(room: Room, user: Account, data: dict) -> Answer:
    username = _valid(InviteForm(data))["username"]
    target = Account.objects.filter(username=username).first()
    if target is None:
        raise Incomplete(f"There is no user called {username}.")
    moderation.invite(user, room, target)
    return done(f"{target} is a member of this room now.")


def edit(room: Room, user: Account, data: dict) -> Answer:
    """The author's new text: shown to everyone in place; a refusal leaves the form as typed."""
    form = EditMessageForm(data)
    if not form.is_valid():
        if "message" not in form.errors:
            _valid(form)  # raises: the message id is missing or malformed
        return refusal(" ".join(map(str, form.errors["message"])), 400)
    message = _message_in(room, form.cleaned_data["message_id"])
    try:
        changed = services.edit_message(user, message, form.cleaned_data["message"])
    except services.Refused as refused:
        return refusal(str(refused))
    if changed:  # the broadcast puts the new text in the form's place; focus waits on the notice
        return done("Your edit is saved.", message.pk, focus=True)
    # Nothing to store: put the message back for this page only.
    role = standing(room, user).role
    return Answer(fragments.edited_message_html(message, role)[role], message_id=message.pk)


def delete(room: Room, user: Account, data: dict) -> Answer:
    message, _ = _message(room, data)
    try:
        services.delete_own_message(user, message)
    except services.Refused as refused:
        return refusal(str(refused))
    return done("Message deleted.", message.pk, focus=True)  # its menu, focused, is gone


def _message_in(room: Room, message_id: int) -> Message:
    message = room.messages.select_related("author", "room").filter(pk=message_id).first()
    if message is None:
        raise moderation.NotAllowed("That message is not in this room.")
    return message


def react(room: Room, user: Account, data: dict) -> Answer:
    """Toggle the user's emoji on a message; they get their menu's buttons back, pressed or not."""
    fields = _valid(ReactionForm(data))
    message = _message_in(room, fields["message_id"])
    try:
        services.toggle_reaction(user, message, fields["emoji"])
    except services.ReactionRefused as refused:
        return refusal(str(refused))
    picker = fragments.reaction_picker_html(message, standing(room, user), user, pressed=fields["emoji"])
    return Answer(picker, message_id=message.pk)


def clear_reactions(room: Room, user: Account, data: dict) -> Answer:
    message, reason = _message(room, data)
    cleared = moderation.clear_reactions(user, message, reason)
    if not cleared:
        return done("That message has no reactions to clear.", message.pk)
    return done(f"Cleared {cleared} reaction{'s' if cleared != 1 else ''}.", message.pk)


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
