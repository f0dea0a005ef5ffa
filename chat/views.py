from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from functools import wraps
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.csp import CSP
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chat import (
    accounts,
    actions,
    attachments,
    direct,
    fragments,
    involvement,
    mentionmail,
    moderation,
    pagecache,
    queries,
    reading,
    services,
    unread,
    uploads,
)
from chat import search as chat_search
from chat.forms import (
    LevelForm,
    LiveUpdatesForm,
    MentionEmailsForm,
    MessageForm,
    ProposeRoomForm,
    SearchForm,
    SignupForm,
    SnoozeForm,
)
from chat.models import MentionEmails, Message, Room, live_updates_paused
from chat.models import message_permalink as message_permalink_url
from chat.standing import (
    DIRECTS_OFF,
    Account,
    Standing,
    User,
    ban_notice,
    room_and_standing,
    standing,
    why_not_edit,
)


def _readable_room(request: HttpRequest, slug: str) -> tuple[Room, Standing]:
    """The room and the viewer's standing, read fresh on every request."""
    found = room_and_standing(slug, request.user)
    if found is None:
        raise Http404("No such room.")
    _require_reader(*found)
    return found


def _require_reader(room: Room, viewer: Standing) -> None:
    """404 for rooms the viewer may not know of, 403 if banned."""
    if not viewer.can_read:
        if viewer.banned:
            raise PermissionDenied(ban_notice(room))
        raise Http404("No such room.")


@require_safe
def room_list(request: HttpRequest) -> HttpResponse:
    """The rooms this user may open; a cached copy while no room, user or presence changed."""
    key, versions = pagecache.list_key(request.user), pagecache.list_versions(request.user)
    entry = pagecache.lookup(key, versions)
    if entry is None:
        entry = pagecache.store(key, versions, *_room_list_html(request))
    return pagecache.respond(entry, request, request.user)


def _room_list_html(request: HttpRequest) -> tuple[str, datetime | None]:
    """The list with placeholders, and until when it may be kept (the end of a snooze it shows)."""
    user = request.user
    proposals = user.proposed_rooms.order_by("-created_at") if user.is_authenticated else []
    readable = queries.rooms_with_online_counts(user)
    all_counts, levels = unread.unread_and_levels(user, queries.live_processes_cutoff())
    unread_counts = {pk: counts.at_level(levels[pk]) for pk, counts in all_counts.items()}
    for room in readable:
        room.unread = counts = unread_counts.get(room.pk, unread.Unread())  # type: ignore[attr-defined]
        if user.is_authenticated:  # its notification level, as a form (rendered once per process)
            level = levels.get(room.pk, unread.DEFAULT_LEVEL)
            control = fragments.level_control_html(room.pk, room.slug, level, csrf_token=pagecache.CSRF)
            room.level_control = control  # type: ignore[attr-defined]
        # With mentions unread, the card opens the room at the first of them (its permalink).
        first = counts.first_mention
        room.link = message_permalink_url(room.slug, first) if first else room.get_absolute_url()  # type: ignore[attr-defined]
    total = sum(counts.total for counts in unread_counts.values())
    rooms = [room for room in readable if not room.is_direct]
    conversations = [room for room in readable if room.is_direct]
    partners = queries.direct_partners(user, [room.pk for room in conversations])
    for room in conversations:
        room.partner = partners.get(room.pk, "")  # type: ignore[attr-defined]
    context = {"rooms": rooms, "proposals": proposals, "conversations": conversations, "unread_total": total}
    snoozed = involvement.snoozed_until(user) if isinstance(user, Account) else None
    context |= {"snoozed_until": snoozed, "today": timezone.now()}
    html = render_to_string("chat/room_list.html", context | pagecache.placeholders(user), request)
    return html, snoozed


@require_POST
@login_required
def room_level(request: HttpRequest, slug: str) -> HttpResponse:
    """Choose how much to hear of a room (chat/involvement.py), from the room list or its header:
    htmx gets the control back in place; a plain form post goes back to the page it came from."""
    assert isinstance(request.user, Account)  # login_required
    room, _ = _readable_room(request, slug)
    form = LevelForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose Everything, Mentions, Nothing or Hidden.", status=400)
    level = form.cleaned_data["level"]
    involvement.set_level(request.user, room, level, from_tab=form.cleaned_data["tab"])
    if request.headers.get("HX-Request"):
        return HttpResponse(fragments.level_control_answer_html(request, room, level))
    return redirect(_came_from(request, reverse("room-list")))


def _came_from(request: HttpRequest, fallback: str) -> str:
    """The page a form was posted from (this site's only), to go back to."""
    back = request.POST.get("next") or request.headers.get("Referer", "")
    if url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return back
    return fallback


@require_safe
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The room page, authorised afresh every time; rendered once per role and room version.
    With ?before=, ?after= or ?reply= (links followed without script), a page of its own."""
    room, viewer = _readable_room(request, slug)
    # What a form posted without script left to say (Post/Redirect/Get): shown once, never cached.
    # (FastPages hands every request with the messages cookie to Django.)
    said = [str(notice) for notice in messages.get_messages(request)]
    if said:
        return _room_page(request, room, viewer, notice=said[-1])
    if request.GET:
        return _room_page_asked(request, room, viewer)
    key = pagecache.room_key(room, viewer, request.user)
    return _from_page_cache(request, room, key, lambda: _room_html(request, room, viewer))


def _from_page_cache(
    request: HttpRequest, room: Room, key: tuple, render: Callable[[], tuple[str, datetime | None]]
) -> HttpResponse:
    """The room's page (or fragment) kept under `key`, rendered by `render` when none is current."""
    # Versions first: a change committed while this renders leaves the copy stale, never current.
    versions = pagecache.room_versions(room)
    entry = pagecache.lookup(key, versions) or pagecache.store(key, versions, *render())
    return pagecache.respond(entry, request, request.user)


def _room_html(request: HttpRequest, room: Room, viewer: Standing) -> tuple[str, datetime | None]:
    """The page with placeholders, and until when it may be kept (None: until a change)."""
    context = _room_context(request, room, viewer, fragments.history_context(room, viewer.role))
    return _cacheable_room_html(request, context | _live_frame_context())


def _cacheable_room_html(request: HttpRequest, context: dict) -> tuple[str, datetime | None]:
    """A room page's template rendered with placeholders, and until when it may be kept."""
    # The moderators' list of running mutes changes when the first one runs out.
    valid_until = min((mute.until for mute in context.get("mutes", ())), default=None)
    context |= pagecache.placeholders(request.user)
    return render_to_string(fragments.ROOM_TEMPLATE, context, request), valid_until


def _room_page(
    request: HttpRequest,
    room: Room,
    viewer: Standing,
    *,
    notice: str = "",
    error: bool = False,
    form: MessageForm | None = None,
    caption: str = "",
    status: int = 200,
) -> HttpResponse:
    """The room page for this request alone, with a sentence in its notice line and, after a
    refused post or upload, what was typed kept in the composer (or the file's caption)."""
    context = _room_context(request, room, viewer, fragments.history_context(room, viewer.role))
    context |= fragments.form_context(room, viewer, form) | {"notice": notice, "error": error}
    context |= _live_frame_context()
    if caption:
        context |= fragments.upload_form_context(room, viewer, caption)
    return render(request, fragments.ROOM_TEMPLATE, context, status=status)


@require_POST
def room_act(request: HttpRequest, slug: str) -> HttpResponse:
    """A room page's form posted without script: the same actions (chat.actions) as its socket.

    Done: back to the room at the message acted on (Post/Redirect/Get), the outcome shown once.
    Refused: the room page again with the reason and what was typed, and a 4xx status."""
    room, viewer = _readable_room(request, slug)  # banned: 403 with the ban's sentence
    data = {name: value for name, value in request.POST.items() if name != "csrfmiddlewaretoken"}
    if data.get("action") == "catch_up":  # "Show new messages": the page itself is the catch-up
        return _back_to_room(room)
    answer = actions.answer(room, request.user, data, request.session.session_key)
    if answer.refused and data.get("action") == "edit":  # posted from the edit page (no script)
        edit_page = _edit_page_again(request, room, data, answer)
        if edit_page is not None:
            return edit_page
    if answer.refused:  # a refused post's form says why itself; anything else says it in the notice line
        notice = answer.notice or ""
        return _room_page(
            request, room, viewer, notice=notice, error=True, form=answer.form, status=answer.status
        )
    if answer.notice:
        messages.success(request, answer.notice)
    return _back_to_room(room, answer.message_id)


def _edit_page_again(
    request: HttpRequest, room: Room, data: dict, answer: actions.Answer
) -> HttpResponse | None:
    """A refused edit, posted from the edit page: that page again with the reason and the text as
    typed (None when the message is not the user's own in this room: the room page says why)."""
    try:
        message_id = int(data.get("message_id", ""))
    except ValueError:
        return None
    message = room.messages.select_related("author", "room").filter(pk=message_id).first()
    if message is None or message.author_id != request.user.pk:
        return None
    message.body = data.get("message", "")  # shown as typed, never saved
    context = fragments.edit_form_context(message) | {"editing": True, "notice": answer.notice or ""}
    return render(request, "chat/message_page.html", context | _back_to(message), status=answer.status)


def _back_to_room(room: Room, message_id: int | None = None) -> HttpResponse:
    """303 See Other to the room page, scrolled to the message if there is one."""
    anchor = f"#message-{message_id}" if message_id else ""
    return HttpResponseRedirect(room.get_absolute_url() + anchor, status=303)


def _room_context(request: HttpRequest, room: Room, viewer: Standing, history: dict) -> dict:
    """Everything the room page shows around its history (the latest page, or one around a message)."""
    context = (
        history
        | fragments.members_context(room)
        | fragments.form_context(room, viewer)
        | fragments.header_context(room)
        | fragments.upload_form_context(room, viewer)
    )
    if room.is_direct:
        context |= _conversation_context(request.user, room)
    if viewer.is_moderator:
        context |= fragments.moderation_context(room)
    return context


# The room frame's policy: the site's own, but it may be framed by the site's pages (not others').
_FRAMED_BY_ITS_SITE = cast(dict[str, Collection[str]], settings.SECURE_CSP) | {"frame-ancestors": [CSP.SELF]}


def _live_frame_context() -> dict:
    """The room page's newest messages for browsers without script: a frame that reloads itself."""
    return {"live_frame": True, "refresh_seconds": settings.CHAT_NOSCRIPT_REFRESH_SECONDS}


def _room_page_asked(request: HttpRequest, room: Room, viewer: Standing) -> HttpResponse:
    """A page of history before or after a message, or the room with a reply started (the
    composer's reply bar set): what the links of "Load older", "Load newer" and a message's
    Reply open without script. A page of history is cached as the room page is (per role, mute
    and where it starts); a reply started is rendered afresh."""
    try:
        before, after = _message_id(request, "before"), _message_id(request, "after")
        reply = _message_id(request, "reply")
    except ValueError:
        return HttpResponse("Name a message by its number: ?before=, ?after= or ?reply=.", status=400)
    if before is not None or after is not None:
        return _history_page(request, room, viewer, before, after)
    context = _room_context(request, room, viewer, fragments.history_context(room, viewer.role))
    if reply is not None and not viewer.is_visitor and queries.message_in_room(room, reply):
        context["reply_bar"] = fragments.reply_bar_context(room, reply)
    return render(request, fragments.ROOM_TEMPLATE, context | _live_frame_context())


def _history_page(
    request: HttpRequest, room: Room, viewer: Standing, before: int | None, after: int | None
) -> HttpResponse:
    """The room page holding a page of history before or after a message, from the page cache."""

    def render() -> tuple[str, datetime | None]:
        history = fragments.history_page_context(room, viewer.role, before=before, after=after)
        return _cacheable_room_html(request, _room_context(request, room, viewer, history))

    key = pagecache.history_page_key(room, viewer, request.user, before, after)
    return _from_page_cache(request, room, key, render)


def _message_id(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    return None if value is None else int(value)


@require_safe
@xframe_options_sameorigin
@csp_override(_FRAMED_BY_ITS_SITE)
def room_frame(request: HttpRequest, slug: str) -> HttpResponse:
    """The room's newest messages in the room page's frame without script, reloading itself.
    Each load reads the room as a socket opening it does: "New messages" above what came since the
    reader last read it, then read up to the newest message shown (chat/reading.py). Only these
    loads write; a page view with script leaves that to its socket."""
    room, viewer = _readable_room(request, slug)
    user = request.user
    position = unread.reading_position(room, user) if user.is_authenticated else None
    history = fragments.history_context(room, viewer.role)
    shown = history["history"].messages
    if position is not None and shown:
        if position.read_up_to is not None:
            history = fragments.with_new_divider(history, position.first_unread)
        reading.read_up_to(room, user, shown[-1].pk)
        services.mark_mentions_read(room, user)
    context = history | {"refresh_seconds": settings.CHAT_NOSCRIPT_REFRESH_SECONDS}
    return render(request, "chat/room_frame.html", context)


@require_safe
def older_messages(request: HttpRequest, slug: str) -> HttpResponse:
    """The page of history before ?before=<pk>, for the 'load older messages' link."""
    room, viewer = _readable_room(request, slug)
    try:
        before = int(request.GET["before"])
    except (KeyError, ValueError):
        return HttpResponse("Say which message to page back from with ?before=<id>.", status=400)
    key = pagecache.older_key(room, viewer, before)
    return _from_page_cache(
        request, room, key, lambda: (fragments.older_messages_html(room, viewer.role, before), None)
    )


@require_safe
def message_menu(request: HttpRequest, pk: int) -> HttpResponse:
    """A message's ··· menu, for signed-in readers of its room only, as they may act now."""
    message = queries.find_message(pk)
    if message is None:
        raise Http404("No such message.")
    viewer = standing(message.room, request.user)
    _require_reader(message.room, viewer)
    if viewer.is_visitor:
        raise PermissionDenied("Sign in to report or moderate messages.")
    if not request.headers.get("HX-Request"):  # the menu's link, followed without script: a page
        context = fragments.menu_page_context(message, viewer, request.user)
        return render(request, "chat/message_page.html", context | _back_to(message))
    return HttpResponse(fragments.message_menu_html(message, viewer, request.user))


def _back_to(message: Message) -> dict:
    """ "Back to the room", at the message: its permalink (the room opened around it)."""
    return {"room": message.room, "back_url": message_permalink_url(message.room.slug, message.pk)}


@require_safe
def message_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One message as the viewer's role sees it: what Cancel puts back in place of the edit form."""
    message = Message.objects.select_related("room", "author").filter(pk=pk).first()
    if message is None:
        raise Http404("No such message.")
    viewer = standing(message.room, request.user)
    _require_reader(message.room, viewer)
    focus_menu = request.GET.get("focus") == "menu"  # Cancel, Escape: the focus goes to its ··· button
    return HttpResponse(fragments.shown_message_html(message, viewer.role, focus_menu))


@require_safe
def message_edit_form(request: HttpRequest, pk: int) -> HttpResponse:
    """The author's edit form for their message, while they may edit it; else the message as it was
    and why not, in the notice line (the window may have closed since the menu was opened)."""
    message = Message.objects.select_related("room", "author").filter(pk=pk).first()
    if message is None:
        raise Http404("No such message.")
    viewer = standing(message.room, request.user)
    _require_reader(message.room, viewer)
    refusal = why_not_edit(message, request.user, viewer)
    as_page = not request.headers.get("HX-Request")  # the menu page's Edit link, without script
    if refusal and as_page:
        raise PermissionDenied(refusal)
    if refusal:
        shown = fragments.shown_message_html(message, viewer.role)
        return HttpResponse(shown + fragments.notice_html(refusal, error=True))
    if as_page:
        context = fragments.edit_form_context(message) | {"editing": True}
        return render(request, "chat/message_page.html", context | _back_to(message))
    return HttpResponse(fragments.edit_form_html(message))


@require_safe
def mention_suggestions(request: HttpRequest, slug: str) -> HttpResponse:
    """People who may read the room, completing the @name typed last (?message=<the text so far>)."""
    room, viewer = _readable_room(request, slug)
    if viewer.is_visitor:
        raise PermissionDenied("Sign in to mention people.")
    return HttpResponse(fragments.mention_suggestions_html(room, request.GET.get("message", "")))


@require_safe
def reply_bar(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Replying to…" bar for a message the viewer may read; pk 0 is no reply (cancel)."""
    if pk == 0:  # Cancel: with the room and the draft, the message box comes back focused
        slug, draft = request.GET.get("room", ""), request.GET.get("message")
        room = _readable_room(request, slug)[0] if slug and draft is not None else None
        return HttpResponse(fragments.reply_bar_html(room, None, draft))
    message = queries.find_message(pk)
    if message is None:
        raise Http404("That message is gone.")
    viewer = standing(message.room, request.user)
    _require_reader(message.room, viewer)
    if viewer.is_visitor:
        raise PermissionDenied("Sign in to reply.")
    return HttpResponse(fragments.reply_started_html(message, viewer.role, request.GET.get("message")))


@require_safe
def person(request: HttpRequest, username: str) -> HttpResponse:
    """Where an @name links: who they are, and nothing of where they talk."""
    found = get_object_or_404(Account.objects.select_related("bot"), username=username, is_active=True)
    context: dict[str, object] = {"person": found}
    if isinstance(request.user, Account) and request.user != found:
        context["blocked"] = direct.has_blocked(request.user, found)
    return render(request, "chat/person.html", context)


# Direct messages and blocking ----------------------------------------------------------------


def _conversation_context(user: Account | AnonymousUser, room: Room) -> dict:
    """What a direct message's page shows its viewer alone: the other person, and their block."""
    if not isinstance(user, Account):  # only its two people read it
        return {}
    partner = Account.objects.filter(memberships__room=room).exclude(pk=user.pk).select_related("bot").first()
    blocked = partner is not None and direct.has_blocked(user, partner)
    return {"partner": partner, "partner_blocked": blocked}


@login_required
def direct_message(request: HttpRequest, username: str) -> HttpResponse:
    """The conversation with `username`: opened if it exists, started on POST, or why not, plainly."""
    assert isinstance(request.user, Account)  # login_required
    other = get_object_or_404(Account.objects.select_related("bot"), username=username, is_active=True)
    refusal = direct.why_not_start(request.user, other)
    existing = direct.conversation(request.user, other)
    if existing is not None and refusal in (None, DIRECTS_OFF):  # turned off: still readable
        return redirect(existing)
    if refusal:
        return render(request, "chat/direct_start.html", {"person": other, "refusal": refusal}, status=403)
    if request.method == "POST":
        try:
            return redirect(direct.start(request.user, other))
        except direct.Refused as refused:  # blocked or turned off since the check above
            context = {"person": other, "refusal": str(refused)}
            return render(request, "chat/direct_start.html", context, status=403)
    return render(request, "chat/direct_start.html", {"person": other})


@require_POST
@login_required
def block_person(request: HttpRequest, username: str, blocking: bool) -> HttpResponse:
    """Block or unblock from the person's page or the conversation; back to where it was done."""
    assert isinstance(request.user, Account)  # login_required
    other = get_object_or_404(Account, username=username)
    try:
        (direct.block if blocking else direct.unblock)(request.user, other)
    except direct.Refused as refused:
        return HttpResponse(str(refused), status=400)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("person", args=[other.username])
    return redirect(back)


@login_required
def propose_room(request: HttpRequest) -> HttpResponse:
    form = ProposeRoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        assert isinstance(request.user, Account)  # login_required
        try:
            moderation.propose_room(request.user, **form.cleaned_data)
        except moderation.NotAllowed as refusal:
            form.add_error(None, str(refusal))
            return render(request, "chat/propose_room.html", {"form": form}, status=429)
        return redirect("room-list")
    return render(request, "chat/propose_room.html", {"form": form})


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            accounts.start_signup(request)
        except accounts.Refused as refusal:
            return _refused(request, refusal)
        user = form.save()
        login(request, user)
        if user.email:  # nothing is sent there until its owner follows this link
            _send_confirmation(user)
        next_url = request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
            return redirect(next_url)
        return redirect("room-list")
    return render(request, "registration/signup.html", {"form": form})


def counted_login(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """A login view (ours, or the admin's) with each try counted before its password is checked."""

    @wraps(view)
    def counted(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        try:
            attempt = accounts.start_login(request, request.POST.get("username", ""))
        except accounts.Refused as refusal:
            return _refused(request, refusal)
        response = view(request, *args, **kwargs)
        if accounts.logged_in_by(request):
            attempt.succeeded()
        return response

    return counted


login_view = counted_login(auth_views.LoginView.as_view())


def _refused(request: HttpRequest, refusal: accounts.Refused) -> HttpResponse:
    """Too many tries (429), or tries can't be counted (503): one sentence, and when to come back."""
    response = render(
        request, "registration/refused.html", {"sentence": refusal.sentence}, status=refusal.status
    )
    response["Retry-After"] = str(refusal.retry_after)
    return response


# Attachments (chat/attachments.py) ----------------------------------------------------------


@require_POST
def upload_attachment(request: HttpRequest, slug: str) -> HttpResponse:
    """A file from the composer's picker, posted as a message. htmx swaps only 2xx answers, so it
    gets 200 either way with the outcome in the notice line; other clients get the real status."""
    room, viewer = _readable_room(request, slug)
    upload = attachments.post(
        room,
        request.user,
        viewer,
        request.FILES.get("file"),
        request.POST.dict(),
        uploads.name_was_unsafe(request),
    )
    caption = request.POST.get("message", "") if upload.message is None else ""
    if not request.headers.get("HX-Request"):  # a plain form post, without script: a page
        return _upload_page(request, room, viewer, upload, caption)
    html = fragments.upload_form_html(request, room, viewer, caption)
    html += fragments.notice_html(upload.refusal, error=bool(upload.refusal))
    return HttpResponse(html, status=200 if request.headers.get("HX-Request") else upload.status)


def _upload_page(
    request: HttpRequest, room: Room, viewer: Standing, upload: attachments.Upload, caption: str
) -> HttpResponse:
    """Stored: back to the room at the new message. Refused: the room page with why, and the caption."""
    if upload.message is not None:
        return _back_to_room(room, upload.message.pk)
    notice = upload.refusal
    return _room_page(request, room, viewer, notice=notice, error=True, caption=caption, status=upload.status)


@require_safe
def attachment(request: HttpRequest, pk: int, thumbnail: bool = False) -> HttpResponseBase:
    """A message's file, for whoever may read its room now: 404 for anyone else (403 if banned),
    410 once the message was removed or deleted."""
    found = attachments.find(pk)
    if found is None or (thumbnail and not found.thumbnail):
        raise Http404("No such file.")
    _require_reader(found.message.room, standing(found.message.room, request.user))
    if attachments.is_withdrawn(found):
        return HttpResponse("This file was removed.", status=410, content_type="text/plain")
    return attachments.download(found, thumbnail)


# Permalinks, search and the mention-email setting ---------------------------------------------


@require_safe
def message_permalink(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The room opened around one message, highlighted, paging older and newer from there; its
    socket gets the same history on (re)connecting (`?around=`). Rendered afresh, never cached."""
    room, viewer = _readable_room(request, slug)
    if not queries.message_in_room(room, pk):
        raise Http404("No such message in this room.")
    history = fragments.history_around_context(room, viewer.role, pk)
    return render(request, fragments.ROOM_TEMPLATE, _room_context(request, room, viewer, history))


@require_safe
def newer_messages(request: HttpRequest, slug: str) -> HttpResponse:
    """The page of history after ?after=<pk> up to ?until=<pk>, for a permalink's 'load newer'."""
    room, viewer = _readable_room(request, slug)
    try:
        after, until = int(request.GET["after"]), int(request.GET["until"])
    except (KeyError, ValueError):
        return HttpResponse("Say where to page on from with ?after=<id>&until=<id>.", status=400)
    key = pagecache.newer_key(room, viewer, after, until)
    return _from_page_cache(
        request, room, key, lambda: (fragments.newer_messages_html(room, viewer.role, after, until), None)
    )


@require_safe
def message_link(request: HttpRequest, pk: int) -> HttpResponse:
    """A message's permalink when only its id is known (a reply's quote): to its room, if readable."""
    message = Message.objects.select_related("room").filter(pk=pk).first()
    if message is None:
        raise Http404("No such message.")
    _require_reader(message.room, standing(message.room, request.user))
    return redirect(message_permalink_url(message.room.slug, message.pk))


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    """Messages in every room the user may read (or one of them), as a page or, while typing,
    just the results (htmx)."""
    form = SearchForm(request.GET)
    rooms = chat_search.rooms_to_filter(request.user)
    partners = _partners_in(request.user, rooms)
    for room in rooms:  # the filter names a conversation as its page does: the other person
        room.partner = partners.get(room.pk, "")  # type: ignore[attr-defined]
    context: dict = {"form": form, "rooms": rooms, "results": None, "problem": ""}
    if not form.is_valid():
        context["problem"] = "That search can't be run: " + " ".join(
            str(error) for errors in form.errors.values() for error in errors
        )
    elif form.cleaned_data["q"]:
        context |= _search_results(request, form.cleaned_data, rooms, partners)
    if request.headers.get("HX-Request"):  # 200 whatever the sentence: htmx swaps in no 4xx
        return HttpResponse(fragments.search_results_html(context))
    return render(request, fragments.SEARCH, context, status=200 if form.is_valid() else 400)


def _search_results(
    request: HttpRequest, wanted: dict, rooms: QuerySet[Room], partners: dict[int, str]
) -> dict:
    room = None
    if wanted["room"]:
        room = rooms.filter(slug=wanted["room"]).first()
        if room is None:  # the same answer whether it does not exist or may not be read
            return {"problem": "There's no room by that name to search in."}
    order = wanted["order"] or chat_search.BEST
    results = chat_search.search_messages(request.user, wanted["q"], room, wanted["page"] or 1, order)
    # A conversation is named as its page names it: the other person.
    hits = [replace(hit, partner=partners.get(hit.room_id, "")) for hit in results.hits]
    results = replace(results, hits=hits)
    query = {"q": wanted["q"], "room": wanted["room"], "order": order}
    return {
        "results": results,
        "next_url": f"?{urlencode(query | {'page': results.page + 1})}",
        "previous_url": f"?{urlencode(query | {'page': results.page - 1})}",
    }


def _partners_in(user: User, rooms: QuerySet[Room]) -> dict[int, str]:
    """The other person's name in each direct message among these rooms (one query, cached with them)."""
    return queries.direct_partners(user, [room.pk for room in rooms if room.is_direct])


@login_required
def mention_email_settings(request: HttpRequest) -> HttpResponse:
    """Where mention emails go, whether that address is confirmed (a button sends the link again),
    and one checkbox: email me when I'm named in a room I don't have open."""
    user = request.user
    assert isinstance(user, Account)  # login_required
    preference = MentionEmails.objects.filter(user=user).first() or MentionEmails(user=user)
    initial = {"email": user.email, "enabled": preference.enabled}
    if request.method == "POST" and "live_updates" in request.POST:
        return _save_live_updates(request, user, MentionEmailsForm(initial=initial), preference)
    if request.method == "POST" and "resend" in request.POST:
        form = MentionEmailsForm(initial=initial)
        return _settings_page(request, form, preference, link_sent=_send_confirmation(user))
    form = MentionEmailsForm(request.POST or None, initial=initial)
    saved = request.method == "POST" and form.is_valid()
    link_sent = ""
    if saved:
        preference.enabled = form.cleaned_data["enabled"]
        preference.save()
        if user.email != form.cleaned_data["email"]:
            user.email = form.cleaned_data["email"]
            user.save(update_fields=["email"])
            link_sent = _send_confirmation(user) if user.email else ""
    status = 400 if form.is_bound and not saved else 200
    return _settings_page(request, form, preference, saved=saved, link_sent=link_sent, status=status)


@require_POST
@login_required
def snooze(request: HttpRequest) -> HttpResponse:
    """Do not disturb (the settings page): no mention emails for an hour, until tomorrow morning or
    until a chosen time; or "Resume" (there, and on the room list while snoozed)."""
    user = request.user
    assert isinstance(user, Account)  # login_required
    if "resume" in request.POST:
        involvement.resume(user)
        return redirect(_came_from(request, reverse("settings")))
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        preference = MentionEmails.objects.filter(user=user).first() or MentionEmails(user=user)
        emails = MentionEmailsForm(initial={"email": user.email, "enabled": preference.enabled})
        problem = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return _settings_page(request, emails, preference, status=400, snooze_problem=problem)
    now = timezone.now()
    involvement.snooze(
        user, involvement.snooze_end(form.cleaned_data["snooze"], now, form.cleaned_data["until"])
    )
    return redirect(_came_from(request, reverse("settings")))


def _save_live_updates(
    request: HttpRequest, user: Account, form: MentionEmailsForm, preference: MentionEmails
) -> HttpResponse:
    """ "Pause live updates": the person's open rooms switch at once (chat.involvement)."""
    live_form = LiveUpdatesForm(request.POST)
    saved = live_form.is_valid()
    if saved:
        involvement.set_live_updates(user, live_form.cleaned_data["paused"])
    return _settings_page(request, form, preference, live_form=live_form, live_saved=saved)


def _settings_page(
    request: HttpRequest,
    form: MentionEmailsForm,
    preference: MentionEmails,
    saved: bool = False,
    link_sent: str = "",
    status: int = 200,
    snooze_problem: str = "",
    live_form: LiveUpdatesForm | None = None,
    live_saved: bool = False,
) -> HttpResponse:
    assert isinstance(request.user, Account)  # login_required
    snoozed = involvement.still_snoozed(preference.snoozed_until)
    if live_form is None:
        live_form = LiveUpdatesForm(initial={"paused": live_updates_paused(request.user.pk)})
    context = {
        "snoozed_until": snoozed,
        "time_zone": timezone.get_current_timezone_name(),
        "morning_hour": f"{involvement.SNOOZE_MORNING_HOUR:02d}",
        "until_value": request.POST.get("until", "") if snooze_problem else "",
        "snooze_problem": snooze_problem,
        "live_form": live_form,
        "live_saved": live_saved,
        "form": form,
        "saved": saved,
        "address": request.user.email,
        "confirmed": mentionmail.is_confirmed(request.user, preference),
        "link_sent": link_sent,
        "minutes": mentionmail.window_minutes(),
    }
    return render(request, "chat/settings.html", context, status=status)


def _send_confirmation(user: Account) -> str:
    """Email the account's address a confirming link, if the limits allow: the sentence to show."""
    if not user.email:
        return "Enter an address first."
    try:
        accounts.start_confirmation_email(user.pk, user.email)
    except accounts.Refused as refusal:
        return refusal.sentence
    mentionmail.send_confirmation(user)
    return f"We sent a link to {user.email}: follow it to confirm the address."


@require_http_methods(["GET", "POST"])
def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: a page asking to confirm (a POST, so a mail scanner fetching the link
    confirms nothing), then saying it worked; or why the link can't be used."""
    link = mentionmail.check_link(token)
    confirmed = request.method == "POST" and not link.problem
    if confirmed:
        assert link.user is not None  # a link without a problem names its account
        mentionmail.confirm(link.user)
    context = {"link": link, "confirmed": confirmed, "minutes": mentionmail.window_minutes()}
    return render(request, "chat/confirm_email.html", context, status=400 if link.problem else 200)
