"""The bots' HTTP API: post to a room and page through it, with a key, answering JSON.

    POST /api/rooms/<slug>/messages   text/plain or text/markdown body, Slack-style JSON
                                      {"text": …}, or multipart with a "file" (and "text")
                                      -> 201, Location: the message's permalink
    GET  /api/rooms/<slug>/messages?before=<id>|after=<id>&limit=<n>  -> {"messages": […]}

The key comes in `Authorization: Bearer parley_…`, never in the URL, so it stays out of access
logs, proxies' logs and browser history. Every refusal is `{"error": "<sentence>"}` with its
status, and stores nothing. These views alone skip CSRF: they ignore cookies and sessions
entirely (the key is the only credential), so a forged cross-site request carries nothing.
"""

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, RawPostDataException
from django.views.decorators.csrf import csrf_exempt

from chat import attachments, bots, uploads
from chat.models import Bot, Message, Room, message_permalink
from chat.standing import Standing

# A text body's bytes: the longest message in 4-byte characters, plus room for JSON around it.
MAX_TEXT_BODY = settings.CHAT_MESSAGE_MAX_LENGTH * 4 + 4096
TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown", "")


@csrf_exempt
def room_messages(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD", "POST"):
        response = refuse(bots.Refusal("Use GET to read messages or POST to send one.", 405))
        response["Allow"] = "GET, HEAD, POST"
        return response
    bot = bots.authenticate(request.headers.get("Authorization", ""))
    if bot is None:
        return refuse(bots.BAD_KEY)
    found = bots.room_for(bot, slug)
    if isinstance(found, bots.Refusal):
        return refuse(found)
    room, viewer = found
    if request.method == "POST":
        return _post(request, room, bot, viewer)
    return _page(request, room)


def refuse(refusal: bots.Refusal) -> JsonResponse:
    response = _json({"error": refusal.sentence}, status=refusal.status)
    if refusal.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="parley"'
    if refusal.retry_after:
        response["Retry-After"] = str(refusal.retry_after)
    return response


def _json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


# Posting ------------------------------------------------------------------------------------


def _post(request: HttpRequest, room: Room, bot: Bot, viewer: Standing) -> HttpResponse:
    if request.content_type == "multipart/form-data":
        return _post_file(request, room, bot, viewer)
    text = _text_of(request)
    if isinstance(text, bots.Refusal):
        return refuse(text)
    posted = bots.post(room, bot, viewer, text)
    if isinstance(posted, bots.Refusal):
        return refuse(posted)
    return _created(request, room, posted)


def _text_of(request: HttpRequest) -> str | bots.Refusal:
    """The message text of a text, JSON or Slack-style form body, or why it can't be read."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_TEXT_BODY:
        return _too_big()
    try:
        body = request.body
    except (RequestDataTooBig, RawPostDataException):
        return _too_big()
    if len(body) > MAX_TEXT_BODY:
        return _too_big()
    content_type = request.content_type or ""
    if content_type == "application/x-www-form-urlencoded":  # Slack's older `payload=<JSON>` form
        return _slack_text(request.POST.get("payload", "")) if "payload" in request.POST else _unreadable()
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        return bots.Refusal("The body is not UTF-8 text.", 400)
    if content_type == "application/json":
        return _slack_text(decoded)
    if content_type in TEXT_TYPES:
        return decoded
    readable = "text/plain, text/markdown, application/json or multipart/form-data"
    return bots.Refusal(f"Parley reads {readable}, not {content_type}.", 415)


def _slack_text(document: str) -> str | bots.Refusal:
    try:
        payload = json.loads(document)
    except ValueError:
        return bots.Refusal("The body is not valid JSON.", 400)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        return _unreadable()
    return payload["text"]


def _unreadable() -> bots.Refusal:
    return bots.Refusal('Send the message as {"text": "…"}.', 400)


def _too_big() -> bots.Refusal:
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    return bots.Refusal(f"The body is too big: a message can be at most {limit} characters.", 413)


def _post_file(request: HttpRequest, room: Room, bot: Bot, viewer: Standing) -> HttpResponse:
    """A file (field "file", or "attachment" as Campfire names it) with an optional "text"."""
    try:
        upload = request.FILES.get("file") or request.FILES.get("attachment")
        caption = request.POST.get("text", request.POST.get("message", ""))
    except RequestDataTooBig:
        return refuse(_too_big())
    if upload is None:
        return refuse(bots.Refusal('Attach the file as the multipart field "file".', 400))
    early = bots.why_not(room, bot, viewer, caption or "a file")
    if early:
        return refuse(early)
    outcome = attachments.post(
        room, bot.account, viewer, upload, {"message": caption}, uploads.name_was_unsafe(request)
    )
    if outcome.message is None:
        waiting = bots.waiting(room, bot, viewer)  # a post that came in first, under the lock
        return refuse(waiting or bots.Refusal(outcome.refusal, outcome.status))
    return _created(request, room, outcome.message)


def _created(request: HttpRequest, room: Room, message: Message) -> HttpResponse:
    link = request.build_absolute_uri(message_permalink(room.slug, message.pk))
    response = _json({"id": message.pk, "room": room.slug, "permalink": link}, status=201)
    response["Location"] = link
    return response


# Reading ------------------------------------------------------------------------------------


def _page(request: HttpRequest, room: Room) -> HttpResponse:
    try:
        before, after = _cursor(request, "before"), _cursor(request, "after")
        limit = _cursor(request, "limit") or 50
    except ValueError:
        return refuse(bots.Refusal("before, after and limit are whole numbers (message ids, a count).", 400))
    if before is not None and after is not None:
        return refuse(bots.Refusal("Page with before or after, not both.", 400))
    messages = bots.page(room, before=before, after=after, limit=limit)
    return _json({"messages": [_shown(request, room, message) for message in messages]})


def _cursor(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    number = int(value)
    if number < 0:
        raise ValueError(name)
    return number


def _shown(request: HttpRequest, room: Room, message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "author": message.author.username,
        "is_bot": hasattr(message.author, "bot"),
        "text": message.body,
        "html": message.body_html,
        "created": message.created_at.isoformat(),
        "edited": message.edited_at.isoformat() if message.edited_at else None,
        "permalink": request.build_absolute_uri(message_permalink(room.slug, message.pk)),
    }
