"""The one rendering path: every piece of the room page is a partial of a template in chat/parts/.

The page view renders chat/room.html, which includes those partials; consumers and broadcasts
render single partials with the same context builders here, so the first page load and a live
update cannot drift apart. Broadcast fragments depend on the event and at most the viewer's
role, never on the viewer, so each is rendered once and sent to every socket of that role.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from html import unescape

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.safestring import SafeString

from chat import formatting, queries
from chat.forms import MUTE_CHOICES, SLOW_MODE_CHOICES, MessageForm
from chat.models import REACTION_EMOJI, Message, Role, Room
from chat.queries import HistoryPage, ShownMessage, utf8_size
from chat.standing import Standing, User, why_not_delete, why_not_edit, why_not_react
from chat.unread import Unread

ROOM_TEMPLATE = "chat/room.html"
MESSAGES = "chat/parts/messages.html"
COMPOSER = "chat/parts/composer.html"
MODERATION = "chat/parts/moderation.html"
MEMBERS = "chat/parts/members.html"
REPLIES = "chat/parts/replies.html"


def _partial(template: str, name: str, context: dict) -> str:
    return render_to_string(f"{template}#{name}", context)


# Context builders: the page view merges these; the fragment functions below render one each.


def message_context(role: Role) -> dict:
    """Messages differ by role in one thing only: signed-in readers get a menu, loaded when opened
    (what it offers depends on the reader), so members and moderators share one rendering."""
    return {"has_menu": role != Role.VISITOR}


def history_context(room: Room, role: Role, before: int | None = None) -> dict:
    """The latest page of history (or the one before `before`): its newest messages that fit
    CHAT_HISTORY_MAX_BYTES, the rest a "Load older" away."""
    history = queries.history_page(room, before)
    looks = _looks(history.messages, role)
    kept = _fitting(reversed(looks))
    if kept < len(looks):
        history = replace(history, messages=history.messages[-kept:], older_than=history.messages[-kept].pk)
        looks = _looks(history.messages, role)  # its new first message shows in full
    return _history_context(room, history, looks)


def _looks(messages: list[ShownMessage], role: Role) -> list[str]:
    """A page of messages, oldest first, as shown: each grouped with the one before it."""
    return [_message_html(message, role) for message in grouped(messages)]


def _history_context(room: Room, history: HistoryPage, looks: list[str]) -> dict:
    return {"room": room, "history": history, "messages_html": SafeString("".join(looks))}


def _fitting(looks: Iterable[str]) -> int:
    """How many of these messages, taken in this order, fit in CHAT_HISTORY_MAX_BYTES: a page, a
    frame, a "Load older" or "Load newer" stays under the transport's limit. The first always does."""
    room_left, count = settings.CHAT_HISTORY_MAX_BYTES, 0
    for html in looks:
        room_left -= utf8_size(html)
        if room_left < 0 and count:
            break
        count += 1
    return count


# Consecutive messages by one person this close together read as one block: the later ones show
# no avatar or name.
GROUP_WITHIN = timedelta(minutes=5)


def continues(previous: queries.Preceding | ShownMessage | None, message: ShownMessage) -> bool:
    """Whether `message` shows as the continuation of `previous`, the room's message just before it.

    Decided from those two alone, never from the viewer, so a live message (rendered once for
    every reader when it is posted) and every history page holding both agree. A page's first
    message can't see the one before it and shows in full; so does a reply, and anything after a
    tombstone or a day break."""
    return (
        previous is not None
        and previous.author_id == message.author_id
        and previous.removed_at is None
        and previous.deleted_at is None
        and message.removed_at is None
        and message.deleted_at is None
        and message.reply_to_id is None
        and timedelta(0) <= message.created_at - previous.created_at <= GROUP_WITHIN
        and timezone.localdate(previous.created_at) == timezone.localdate(message.created_at)
    )


def grouped(messages: list[ShownMessage]) -> list[ShownMessage]:
    """A page of messages, oldest first, each marked continued or not after the one before it."""
    previous: list[ShownMessage | None] = [None, *messages]  # one longer: its last is nobody's
    return [
        replace(message, continued=True) if continues(before, message) else message
        for before, message in zip(previous, messages, strict=False)
    ]


def _in_place(message: Message, shown: ShownMessage | None = None) -> ShownMessage:
    """A single message as a page holding the one before it shows it (one query for that one)."""
    shown = shown or ShownMessage.of(message)
    return replace(shown, continued=True) if continues(queries.message_before(message), shown) else shown


def menu_context(message: Message, viewer: Standing, user: User) -> dict:
    return {
        "message": ShownMessage.of(message),
        "room_slug": message.room.slug,  # where its forms post without script (chat.views.room_act)
        "standing": viewer,
        "own": message.author_id == user.pk,
        "mute_choices": MUTE_CHOICES,
        "can_edit": why_not_edit(message, user, viewer) is None,
        "can_delete": why_not_delete(message, user, viewer) is None,
    }


def members_context(room: Room) -> dict:
    return {"room": room, "members": queries.online_members(room)}


def form_context(room: Room, viewer: Standing, form: MessageForm | None = None) -> dict:
    return {
        "room": room,
        # A form sent back with an error keeps its reply bar (if the original is still there).
        "reply_bar": reply_bar_context(room, form.data.get("reply_to") if form and form.is_bound else None),
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


def history_html(room: Room, role: Role) -> str:
    """The recent history replacing #messages whole, for a socket that (re)connects."""
    return _partial(MESSAGES, "history", history_context(room, role) | {"oob": True})


def reconnect_html(room: Room, role: Role) -> str:
    """What a socket gets on (re)connecting: everything it may have missed, except the form."""
    return history_html(room, role) + room_header_html(room)


def older_messages_html(room: Room, role: Role, before: int) -> str:
    """The page of history before `before`, swapped in where the 'load older' link was."""
    context = history_context(room, role, before) | {"loaded_older": True}  # with the focus marker
    return _partial(MESSAGES, "older_messages", context)


def _message_html(message: ShownMessage, role: Role, oob: bool = False) -> str:
    """One message as readers of a role see it."""
    return _message_look_html(message, oob, **message_context(role))


@lru_cache(maxsize=10_000)
def _message_look_html(message: ShownMessage, oob: bool, has_menu: bool) -> str:
    """Cached: the key holds every field the HTML shows, so a removed or changed message (read
    fresh with each page) is a new key, never a stale hit.

    The looks differ only in the menu (`has_menu`), so a message is rendered once for both: the
    visitors' look is the signed-in one without its menu, which costs a render of the menu alone
    (a new message's two looks were a quarter of a post's database thread)."""
    if not has_menu:
        return _without_menu(message, _message_look_html(message, oob, True))
    return _partial(MESSAGES, "message", {"message": message, "oob": oob, "has_menu": True})


def _without_menu(message: ShownMessage, html: str) -> str:
    """The message's HTML with its menu taken out (the last of it: the menu comes after the text);
    tombstones have none."""
    before, menu, after = html.rpartition(_partial(MESSAGES, "message_actions", {"message": message}))
    return SafeString(before + after) if menu else html  # rendered HTML still: not escaped again


def new_message_html(message: Message) -> dict[Role, str]:
    """A message appended to the end of #messages, for each role: one rendering per look, and
    its announcement (the same for everyone)."""
    shown = _in_place(message)
    announcement = announcement_html(shown)
    looks = {
        has_menu: _partial(
            MESSAGES,
            "new_message",
            {"message_html": _message_look_html(shown, False, has_menu), "announcement_html": announcement},
        )
        for has_menu in (False, True)
    }
    return {role: looks[message_context(role)["has_menu"]] for role in Role}


# Block ends and line breaks become spaces, so "<p>a</p><p>b</p>" is read "a b", not "ab".
_BREAKS = re.compile(r"</(?:p|li|h[1-6]|pre|blockquote|div)>|<br\s*/?>", re.IGNORECASE)


def spoken_text(shown: ShownMessage) -> str:
    """A message's text as the screen reader's announcement reads it: plain words, no markup."""
    if shown.typed_text:
        return shown.typed_text
    if not shown.has_text:
        return ""
    return " ".join(unescape(strip_tags(_BREAKS.sub(" ", shown.body_html))).split())


def announcement_html(shown: ShownMessage) -> SafeString:
    """ "alice: the text", appended to the live region #announcements for every reader."""
    return SafeString(_partial(MESSAGES, "announcement", {"message": shown, "spoken": spoken_text(shown)}))


def live_mode_html(paused: bool) -> str:
    """Live updates as this person wants them (Settings, "Pause live updates"): sent on connect,
    and to their open rooms when they change it."""
    return _partial(MESSAGES, "live_mode", {"paused": paused, "oob": True})


@lru_cache(maxsize=1)
def announcements_emptied_html() -> str:
    """Every slot of the live region emptied (out of hearing: sent while it is hidden, as live
    updates are turned back on), so lines held meanwhile are not read out when it shows again."""
    return _partial(MESSAGES, "announcements_emptied", {})


def message_html(message: Message) -> str:
    """A message replaced in place, e.g. by its tombstone; the same for every viewer."""
    return _message_html(ShownMessage.of(message), Role.VISITOR, oob=True)


def edited_message_html(message: Message, *roles: Role) -> dict[Role, str]:
    """A message replaced in place by its new text (closing its author's edit form), for each
    of `roles`; its reactions are read once for all of them."""
    shown = _in_place(message, queries.with_reactions([ShownMessage.of(message)])[0])
    return {role: _message_html(shown, role, oob=True) for role in roles}


def regrouped_message_html(message: Message, was_continued: bool) -> dict[Role, str]:
    """The message after one that was removed or deleted, redrawn for each role if that changed how
    it groups (it showed under the removed one without its name); empty if nothing changed."""
    shown = _in_place(message, queries.with_reactions([ShownMessage.of(message)])[0])
    if shown.continued == was_continued:
        return {}
    return {role: _message_html(shown, role, oob=True) for role in Role}


def shown_message_html(message: Message, role: Role, focus_menu: bool = False) -> str:
    """One message as the page shows it, e.g. to put back in place of its edit form; `focus_menu`:
    with its ··· button autofocused (Cancel and Escape, whose form the swap removes)."""
    if not focus_menu:
        return _message_html(_in_place(message), role)
    context = {"message": _in_place(message), "oob": False, "focus_menu": True} | message_context(role)
    return _partial(MESSAGES, "message", context)


def edit_form_context(message: Message) -> dict:
    multiline = "\n" in message.body  # a textarea keeps its line breaks; one line: Enter saves
    return {"message": message, "max_length": settings.CHAT_MESSAGE_MAX_LENGTH, "multiline": multiline}


def edit_form_html(message: Message) -> str:
    """The author's edit form in the message's place, filled with its text as typed."""
    return _partial(MESSAGES, "edit_form", edit_form_context(message))


def message_menu_html(message: Message, viewer: Standing, user: User) -> str:
    """The ··· menu of one message for this viewer: moderators act, members report."""
    context = menu_context(message, viewer, user) | reaction_menu_context(message, viewer, user)
    return _partial(MESSAGES, "message_menu", context)


def menu_page_context(message: Message, viewer: Standing, user: User) -> dict:
    """The ··· menu as a page of its own (without script), under the message as the room shows it:
    Reply and Edit are links to pages there, where the menu's buttons fetch fragments."""
    context = menu_context(message, viewer, user) | reaction_menu_context(message, viewer, user)
    # In full (never as the continuation of the one before), with no ··· of its own.
    shown = _message_html(queries.with_reactions([ShownMessage.of(message)])[0], Role.VISITOR)
    return context | {"as_page": True, "message_html": SafeString(shown)}


def deleted_message_html(message_id: int) -> str:
    return _partial(MESSAGES, "deleted_message", {"message_id": message_id})


def members_html(room: Room) -> str:
    """The room's member list as stored now, to swap in by id."""
    return members_list_html(queries.online_members(room))


def members_list_html(members: queries.Members) -> str:
    """A member list to swap in by id, rendered once per distinct list (a joining socket is shown
    the last list announced with itself in it: many joins between two announcements look alike)."""
    return _members_html(tuple(members.usernames), members.guests, members.more)


@lru_cache(maxsize=1024)
def _members_html(usernames: tuple[str, ...], guests: int, more: int) -> str:
    members = queries.Members(list(usernames), guests, more)
    return _partial(MEMBERS, "members", {"members": members, "oob": True})


def form_html(room: Room, viewer: Standing, form: MessageForm | None = None) -> str:
    """The message form as this viewer may use it now (sign in, muted, locked, or ready)."""
    if form is None:
        return _fresh_form_html(room, viewer)
    return _partial(COMPOSER, "message_form", form_context(room, viewer, form) | {"oob": True})


# Empty forms by everything they show: every accepted post answers with one.
_fresh_forms: dict[tuple, str] = {}


def _fresh_form_html(room: Room, viewer: Standing) -> str:
    """The empty form is the same for everyone of one standing in the room as it is now: kept."""
    muted_until = viewer.muted_until if viewer.is_muted else None
    # A direct message's form also depends on whether it is closed for this one of its two.
    shown = (
        room.is_locked,
        room.slow_mode_seconds,
        room.kind,
        viewer.role,
        muted_until,
        viewer.closed_because,
    )
    key = (room.pk, room.name, room.slug, *shown)
    html = _fresh_forms.get(key)
    if html is None:
        if len(_fresh_forms) >= 1_000:
            _fresh_forms.clear()
        html = _partial(COMPOSER, "message_form", form_context(room, viewer) | {"oob": True})
        _fresh_forms[key] = html
    return html


def form_html_for_role(room: Room, role: Role) -> str:
    """The form and the file picker for everyone of a role, for room-wide changes such as locking."""
    viewer = Standing(role, can_read=True)
    # keep_box: the message box already on a page stays, with its draft and focus (hx-preserve).
    form = _partial(COMPOSER, "message_form", form_context(room, viewer) | {"oob": True, "keep_box": True})
    return form + upload_picker_html(room, viewer)


def room_header_html(room: Room) -> str:
    return _partial(ROOM_TEMPLATE, "room_header", header_context(room) | {"oob": True})


def moderation_panel_html(room: Room) -> str:
    return _partial(MODERATION, "moderation_panel", moderation_context(room) | {"oob": True})


@lru_cache(maxsize=1_000)
def notice_html(text: str, error: bool = False, focus: bool = False) -> str:
    """A line above the form: the outcome of what the user just did. `focus`: it takes the focus,
    for an action whose control the outcome replaces (an edit form, a deleted message's menu)."""
    return _partial(COMPOSER, "notice", {"notice": text, "error": error, "oob": True, "focus": focus})


def removed_from_room_html(room: Room, text: str) -> str:
    """What a socket shows as it is closed for good: why, in the form's place."""
    return notice_html(text, error=True) + _partial(COMPOSER, "closed_form", {"room": room, "notice": text})


def session_ended_html(text: str) -> str:
    """What every socket of a session that ended shows as it closes: the same in any room."""
    return notice_html(text, error=True) + _partial(COMPOSER, "closed_form", {"notice": text})


def socket_refused_html(text: str) -> str:
    """What a socket refused on connect shows (e.g. too many tabs): why, in the form's place."""
    return notice_html(text, error=True) + _partial(COMPOSER, "closed_form", {"notice": text})


def moderation_panel_gone_html() -> str:
    """Takes the Moderate panel off a page whose viewer no longer moderates."""
    return _partial(ROOM_TEMPLATE, "moderation_gone", {})


# Reactions and typing ---------------------------------------------------------------------


def reaction_menu_context(message: Message, viewer: Standing, user: User) -> dict:
    """The emoji buttons of one viewer's menu, pressed where they reacted already."""
    if not user.is_authenticated:
        return {"reaction_choices": REACTION_EMOJI, "my_reactions": set()}
    mine = set(message.reactions.filter(user_id=user.pk).values_list("emoji", flat=True))
    return {"reaction_choices": REACTION_EMOJI, "my_reactions": mine}


def reactions_html(message_id: int) -> str:
    """The counts under a message, to swap in by id: the same for every reader."""
    reactions = queries.reactions_of([message_id]).get(message_id, ())
    return _partial(MESSAGES, "reactions", {"message_id": message_id, "reactions": reactions, "oob": True})


def reaction_picker_html(message: Message, viewer: Standing, user: User, pressed: str = "") -> str:
    """The emoji buttons again for the one who just clicked one: which are pressed changed. The
    one just pressed keeps the focus (autofocus), which replacing the buttons would otherwise drop."""
    context = {
        "message": message,
        "room_slug": message.room.slug,
        "standing": viewer,
        "oob": True,
        "pressed": pressed,
    }
    return _partial(MESSAGES, "reaction_picker", context | reaction_menu_context(message, viewer, user))


def typing_html(names: list[str]) -> str:
    """ "alice is typing…" above the form; empty when nobody (else) is."""
    return _partial(COMPOSER, "typing", {"typing": typing_in_words(names), "oob": True})


def typing_in_words(names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    others = len(names) - 1
    return f"{names[0]} and {others} others are typing…"


def wait_in_words(seconds: float) -> str:
    """How long someone must wait, rounded up, in the largest unit that reads naturally."""
    minutes = math.ceil(seconds / 60)
    if seconds <= 90:
        count, unit = max(1, math.ceil(seconds)), "second"
    elif minutes <= 90:
        count, unit = minutes, "minute"
    else:
        count, unit = math.ceil(seconds / 3600), "hour"
    return f"{count} {unit}{'s' if count != 1 else ''}"


# Mentions and replies ---------------------------------------------------------------------


def reply_bar_context(room: Room | None, message_id: object) -> dict:
    original = queries.reply_target(room, message_id) if room and message_id else None
    if room is None or original is None:
        return {"original": None}
    return {"original": original, "excerpt": ShownMessage.of_quote(original), "room_slug": room.slug}


def reply_bar_html(room: Room | None, message_id: int | None, box_text: str | None = None) -> str:
    """The bar above the composer: "Replying to alice: first words…", or empty when cancelled.
    Cancel sends the message box's text along (`box_text`): the focus goes back into an empty box,
    or to the notice line when the box holds a draft (see message_input_html)."""
    bar = _partial(REPLIES, "reply_bar", {"reply_bar": reply_bar_context(room, message_id)})
    if room is None or box_text is None:
        return bar
    return bar + (notice_html("Reply cancelled.", focus=True) if box_text else message_input_html(room))


def message_input_html(room: Room) -> str:
    """The composer's text box alone, empty and focused (autofocus): after Reply or its Cancel,
    whose buttons the swap removes, the focus goes where the person will type. Only for an empty
    box: a box sent afresh with a draft would get the caret before the draft (focus() puts it at
    the start), so typing on would go in front of it."""
    context = {"room": room, "draft": "", "max_length": settings.CHAT_MESSAGE_MAX_LENGTH, "oob": True}
    return _partial(COMPOSER, "message_input", context)


def reply_started_html(message: Message, role: Role, box_text: str | None = None) -> str:
    """What Reply in a message's menu gets: the bar put in place by id, and the menu closed
    (a fresh ··· in its place, as the message shows it to this role). The focus, which was on
    Reply, goes into the message box if it is empty (`box_text`, sent along), else to the bar."""
    focus_bar = bool(box_text)
    context = {"reply_bar": reply_bar_context(message.room, message.pk), "oob": True, "focus_bar": focus_bar}
    bar = _partial(REPLIES, "reply_bar", context)
    actions = _partial(MESSAGES, "message_actions", {"message": message} | message_context(role))
    box = message_input_html(message.room) if box_text == "" else ""
    return actions + bar + box


def quotes_html(replies: list[Message]) -> str:
    """The quotes in these replies, as they read now (e.g. "Original message deleted")."""
    return "".join(
        _partial(REPLIES, "quote", {"message": ShownMessage.of(reply), "oob": True}) for reply in replies
    )


def mention_suggestions_html(room: Room, text: str) -> str:
    """A datalist completing the @name being typed at the end of `text` with people who may read
    the room; each option is the whole text with the name filled in."""
    typed = formatting.TRAILING_MENTION.search(text)
    names = queries.people_to_mention(room, typed[1]) if typed else []
    before = text[: typed.start()] if typed else ""
    options = [(f"{before}@{name} ", name) for name in names]
    return _partial(REPLIES, "suggestions", {"options": options})


# Attachments --------------------------------------------------------------------------------

ATTACHMENTS = "chat/parts/attachments.html"


def upload_form_context(room: Room, viewer: Standing, caption: str = "") -> dict:
    """The composer's file picker, for those who may post now (the server checks again anyway):
    not visitors, the muted, members of a locked room, nor either side of a blocked conversation."""
    can_upload = why_not_react(room, viewer) is None  # the same people as may react or type
    return {
        "room": room,
        "can_upload": can_upload,
        "caption": caption,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
    }


def upload_picker_html(room: Room, viewer: Standing) -> str:
    """The picker put in place by id, shown or hidden as the viewer may post now (a block, a mute,
    a lock): sent over the socket with the form."""
    return _partial(ATTACHMENTS, "upload_form", upload_form_context(room, viewer) | {"oob": True})


def upload_form_html(request: HttpRequest, room: Room, viewer: Standing, caption: str = "") -> str:
    """A fresh picker after an upload (the caption kept when refused); rendered with the request
    for its CSRF token, so only ever as an HTTP response."""
    return render_to_string(f"{ATTACHMENTS}#upload_form", upload_form_context(room, viewer, caption), request)


# Unread counts and the "New messages" divider ----------------------------------------------
# Rendered per (numbers) and cached: a room-list socket that counts one more message costs a
# dictionary lookup, not a render.

UNREAD = "chat/parts/unread.html"


@lru_cache(maxsize=4096)
def room_unread_html(room_id: int, counts: Unread) -> str:
    """A room's unread messages and mentions on the room list, swapped in by id."""
    return _partial(UNREAD, "room_unread", {"room_id": room_id, "counts": counts, "oob": True})


@lru_cache(maxsize=1024)
def room_online_html(room_id: int, online: int) -> str:
    """A room's "N online" on the room list, swapped in by id."""
    return _partial(UNREAD, "room_online", {"room_id": room_id, "online": online, "oob": True})


@lru_cache(maxsize=1024)
def list_title_html(total: int) -> str:
    """The room list's <title> text, "(3) Rooms · Parley": swapped into the title's content."""
    return _partial(UNREAD, "title", {"total": total})


@lru_cache(maxsize=1024)
def new_divider_html(message_id: int | None) -> str:
    """ "New messages" above that message, or at the top of the history when it is older."""
    return _partial(UNREAD, "new_divider", {"message_id": message_id})


# Notification levels (chat/involvement.py) ----------------------------------------------------

INVOLVEMENT = "chat/parts/involvement.html"
# Each level as its control offers it: value, name, what it does.
LEVEL_CHOICES = (
    ("everything", "Everything", "Count every new message; email me when I'm mentioned."),
    ("mentions", "Mentions", "Count only messages that mention me, and email me about them."),
    ("nothing", "Nothing", "No counts, no emails. The room stays in my list."),
    ("hidden", "Hidden", "Take it off my list, unless I'm mentioned there. No emails."),
)


def level_control_context(
    room_id: int, slug: str, level: str, *, opened: bool = False, oob: bool = False
) -> dict:
    return {
        "room_id": room_id,
        "slug": slug,
        "level": level,
        "level_choices": LEVEL_CHOICES,
        "open": opened,
        "oob": oob,
    }


@lru_cache(maxsize=4096)
def level_control_html(
    room_id: int, slug: str, level: str, *, oob: bool = False, csrf_token: str = ""
) -> str:
    """A room's level control, closed, rendered once per process per room and level: on the room
    list (`csrf_token`: the page cache's placeholder, so the form also posts without htmx), into the
    room header when its socket connects, and into the person's other tabs when they change it
    (`oob`; no CSRF field: those pages send htmx's posts with the token in a header, hx-headers)."""
    context = level_control_context(room_id, slug, level, oob=oob)
    if csrf_token:
        context["csrf_token"] = csrf_token
    return _partial(INVOLVEMENT, "level_control", context)


def live_level_control_html(room_id: int, slug: str, level: str) -> str:
    return level_control_html(room_id, slug, level, oob=True)


def snooze_line_html(until: datetime | None) -> str:
    """The room list's snooze line as a live update to the person's open lists: "snoozed until" with
    Resume, rendered once per snooze for every tab; or taken down (resumed, or the snooze ended)."""
    if until is None:
        return _snooze_line_gone_html()
    context = {"snoozed_until": until, "today": timezone.now(), "oob": True}
    return _partial(INVOLVEMENT, "snooze_line", context)


@lru_cache(maxsize=1)
def _snooze_line_gone_html() -> str:
    """The empty line, the same whenever a snooze ends: rendered once per process."""
    return _partial(INVOLVEMENT, "snooze_line", {"oob": True})


def tab_id_html(socket_id: str) -> str:
    """The page's socket tells the page its id: a level chosen there names the tab it came from."""
    return _partial(INVOLVEMENT, "tab_slot", {"socket_id": socket_id, "oob": True})


def level_control_answer_html(request: HttpRequest, room: Room, level: str) -> str:
    """The answer to choosing a level: the control in place, open on the button just pressed."""
    context = level_control_context(room.pk, room.slug, level, opened=True)
    return render_to_string(f"{INVOLVEMENT}#level_control", context, request)


# Permalinks and search ----------------------------------------------------------------------

SEARCH = "chat/search.html"


def history_around_context(room: Room, role: Role, pk: int) -> dict:
    """The history around message `pk` (a permalink), with "Load older" and "Load newer".

    The message is preceded by a marker with `autofocus`: the browser focuses it on loading the
    page, and htmx after every swap of the history, which scrolls it into view (the scroller
    otherwise stays at the newest messages)."""
    history = _around_within_budget(queries.history_around(room, pk), role, pk)
    marker = _partial(MESSAGES, "permalink_marker", {})
    messages = "".join(
        (marker if shown.pk == pk else "") + _message_html(shown, role) for shown in grouped(history.messages)
    )
    return {"room": room, "history": history, "messages_html": SafeString(messages), "around": pk}


def _around_within_budget(history: HistoryPage, role: Role, pk: int) -> HistoryPage:
    """What fits CHAT_HISTORY_MAX_BYTES around message `pk`: it and the ones after it first (read
    next), then the ones before it, nearest first; what is left out is a "Load older/newer" away."""
    looks = [_message_html(message, role) for message in history.messages]
    split = next((i for i, message in enumerate(history.messages) if message.pk >= pk), len(looks))
    kept = _fitting([*looks[split:], *reversed(looks[:split])])
    newer = min(kept, len(looks) - split)
    older = kept - newer
    messages = history.messages[split - older : split + newer]
    if not messages:
        return history
    return replace(
        history,
        messages=messages,
        older_than=messages[0].pk if older < split else history.older_than,
        newer_than=messages[-1].pk if newer < len(looks) - split else history.newer_than,
    )


def around_reconnect_html(room: Room, role: Role, pk: int) -> tuple[str, int | None]:
    """What a permalink page's socket gets on (re)connecting: the history around its message
    again (rendered for this socket alone: such pages are few), and the header; with the newest
    message it covers (the rest by "Load newer"), whose broadcasts the socket skips."""
    context = history_around_context(room, role, pk)
    history = _partial(MESSAGES, "history", context | {"oob": True})
    return history + room_header_html(room), context["history"].until


def newer_messages_html(room: Room, role: Role, after: int, until: int) -> str:
    """The page of history after `after` (up to `until`), in place of the 'load newer' button."""
    history, looks = _newer_fitting(room, role, after, until)
    return _partial(MESSAGES, "newer_messages", _history_context(room, history, looks))


def _newer_fitting(room: Room, role: Role, after: int, until: int) -> tuple[HistoryPage, list[str]]:
    """The page after `after` up to `until`, as much of it as fits CHAT_HISTORY_MAX_BYTES, and its looks."""
    history = queries.newer_page(room, after, until)
    looks = _looks(history.messages, role)
    kept = _fitting(looks)
    if kept < len(looks):
        history = replace(history, messages=history.messages[:kept], newer_than=history.messages[kept - 1].pk)
    return history, looks[:kept]


def search_results_html(context: dict) -> str:
    """The results of a search, swapped in under the search box as the user types."""
    return _partial(SEARCH, "results", context)


# Pages without script (docs/no-script.md) ---------------------------------------------------


def history_page_context(room: Room, role: Role, *, before: int | None, after: int | None) -> dict:
    """A page of history as a page of its own (the room page's `?before=` or `?after=`, the links
    "Load older" and "Load newer" followed without script), linking on both ways from it."""
    newest = queries.newest_message_id(room)
    if after is None:
        context = history_context(room, role, before)
        history = context["history"]
        if history.messages and history.messages[-1].pk < newest:
            context["history"] = replace(history, newer_than=history.messages[-1].pk, until=newest)
    else:
        history, looks = _newer_fitting(room, role, after, newest)
        first = history.messages[0].pk if history.messages else None
        older_than = first if first and queries.has_message_before(room, first) else None
        context = _history_context(room, replace(history, older_than=older_than), looks)
    return context | {"history_page": True}


def with_new_divider(context: dict, first_unread: int | None) -> dict:
    """The history with "New messages" above the first unread message, or at its top when that one
    is older than the page: as the socket puts it on connecting, here in the page itself."""
    if first_unread is None:
        return context
    html: str = context["messages_html"]
    divider = _partial(UNREAD, "new_divider_line", {})
    found = html.find(f'id="message-{first_unread}"')
    start = html.rfind("<article", 0, found) if found >= 0 else 0
    return context | {"messages_html": SafeString(html[:start] + divider + html[start:])}
