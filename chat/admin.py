"""Staff run the site here. Every change that a room shows goes through chat.moderation,
so it is checked, recorded in the audit log and shown live in open browsers."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from chat import bots, involvement, moderation, outbound, webhooks
from chat.forms import name_taken
from chat.models import (
    AuditEntry,
    Ban,
    Bot,
    Involvement,
    Membership,
    Message,
    MessageVersion,
    Mute,
    Report,
    Role,
    Room,
    Sanction,
    WebhookDelivery,
)
from chat.standing import Account


def staff_member(request: HttpRequest) -> Account:
    """The signed-in staff member acting: the admin site lets nobody else in."""
    assert isinstance(request.user, Account), "the admin site only serves signed-in staff"
    return request.user


# Direct messages are their two people's alone: staff see a reported one in the moderation queue
# (ReportAdmin, with context) and nowhere else, so every other list, filter and page leaves them out.


class OrdinaryRoomFilter(admin.RelatedFieldListFilter):
    """A filter by room that lists rooms only, never direct messages."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to={"kind": Room.Kind.ROOM}
        )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class MessageVersionInline(admin.TabularInline):
    """Earlier texts of an edited message, oldest first; read here, never changed."""

    model = MessageVersion
    extra = 0
    can_delete = False
    fields = ("body", "written_at", "replaced_at")
    readonly_fields = ("body", "written_at", "replaced_at")
    verbose_name = "earlier version"

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "is_public", "is_locked", "slow_mode_seconds", "proposed_by"]
    list_filter = ["status", "is_public", "is_locked"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return super().get_queryset(request).filter(kind=Room.Kind.ROOM)

    search_fields = ["name", "slug"]
    inlines = [MembershipInline]
    actions = ["approve", "reject"]

    def get_readonly_fields(self, request: HttpRequest, room: Room | None = None) -> list[str]:
        # Approval goes through the Approve/Reject actions, which record it; not through this field.
        return ["status", "proposed_by", "created_at"] if room else ["proposed_by", "created_at"]

    def save_model(self, request, room: Room, form, change: bool) -> None:
        super().save_model(request, room, form, change)
        changed = {
            field: form.cleaned_data[field]
            for field in moderation.SETTINGS_FIELDS
            if field in form.changed_data
        }
        if change and changed:
            moderation.room_settings_changed(
                staff_member(request), room, changed, reason="changed in the admin"
            )

    def save_formset(self, request, form, formset, change: bool) -> None:
        """Roles go through the service, so a promoted or removed user's open page redraws."""
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            moderation.set_role(staff_member(request), membership.room, membership.user, None)
        for membership in memberships:
            moderation.set_role(staff_member(request), form.instance, membership.user, Role(membership.role))

    @admin.action(description="Approve selected rooms")
    def approve(self, request: HttpRequest, rooms: QuerySet[Room]) -> None:
        for room in rooms:
            moderation.review_room(staff_member(request), room, approve=True)
        self.message_user(request, f"Approved {len(rooms)} room(s).")

    @admin.action(description="Reject selected rooms")
    def reject(self, request: HttpRequest, rooms: QuerySet[Room]) -> None:
        for room in rooms:
            moderation.review_room(staff_member(request), room, approve=False)
        self.message_user(request, f"Rejected {len(rooms)} room(s).")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "room", "author", "body", "removed_at"]
    list_filter = [("room", OrdinaryRoomFilter), ("removed_at", admin.EmptyFieldListFilter)]
    search_fields = ["body", "author__username"]
    list_select_related = ["room", "author"]
    readonly_fields = [
        "room",
        "author",
        "body",
        "created_at",
        "removed_at",
        "removed_by",
        "edited_at",
        "deleted_at",
    ]
    actions = ["remove"]
    inlines = [MessageVersionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).filter(room__kind=Room.Kind.ROOM)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Remove selected messages (leave a tombstone)")
    def remove(self, request: HttpRequest, selected: QuerySet[Message]) -> None:
        for message in selected.select_related("room", "author"):
            moderation.remove_message(staff_member(request), message, reason="removed in the admin")
        self.message_user(request, f"Removed {len(selected)} message(s).")

    def delete_model(self, request: HttpRequest, message: Message) -> None:
        moderation.delete_message(staff_member(request), message, reason="deleted in the admin")

    def delete_queryset(self, request: HttpRequest, selected: QuerySet[Message]) -> None:
        for message in selected.select_related("room", "author"):
            moderation.delete_message(staff_member(request), message, reason="deleted in the admin")


class OpenReportsFilter(admin.SimpleListFilter):
    """The queue shows open reports unless asked otherwise."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved"), ("all", "All")]

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "open") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, reports):
        status = self.value() or "open"
        if status == "open":
            return reports.filter(resolved_at__isnull=True)
        if status == "resolved":
            return reports.filter(resolved_at__isnull=False)
        return reports


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderation queue: each open report with its message, context and one-click actions."""

    list_display = ["created_at", "room", "reported_message", "author", "reporter", "reason", "queue_actions"]
    list_filter = [OpenReportsFilter, ("message__room", OrdinaryRoomFilter)]
    list_select_related = ["message__room", "message__author", "reporter"]
    search_fields = [
        "message__body",
        "reported_body",
        "reason",
        "reporter__username",
        "message__author__username",
    ]
    # Reports are read here, never edited: every field shows, none is a form input.
    readonly_fields = (
        "reported_message",
        "context",
        "reporter",
        "reason",
        "created_at",
        "resolution",
        "resolved_by",
        "resolved_at",
        "queue_actions",
    )
    fields = readonly_fields
    ACTIONS = {"resolve": "Resolve", "remove": "Remove message", "ban": "Ban author"}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(request, {"title": "Moderation queue", **(extra_context or {})})

    @admin.display(description="room", ordering="message__room__name")
    def room(self, report: Report) -> Room:
        return report.message.room

    @admin.display(description="author")
    def author(self, report: Report) -> str:
        return report.message.author.username

    @admin.display(description="message")
    def reported_message(self, report: Report) -> str:
        """The text as reported, whatever its author did to the message since."""
        removed = " (removed)" if report.message.removed_at else ""
        if report.message.deleted_at:
            removed = " (since deleted by its author)"
        elif report.message.edited_at and report.message.body != report.reported_body:
            removed += " (since edited by its author)"
        return f"{report.reported_body[:200]}{removed}"

    @admin.display(description="context")
    def context(self, report: Report) -> str:
        """The reported message with the three messages before and after it."""
        message = report.message
        nearby = message.room.messages.select_related("author")
        before = list(nearby.filter(pk__lt=message.pk).order_by("-pk")[:3])[::-1]
        after = list(nearby.filter(pk__gt=message.pk).order_by("pk")[:3])
        return render_to_string(
            "admin/chat/report_context.html",
            {
                "messages": [*before, message, *after],
                "reported": message,
                "reported_body": report.reported_body,
            },
        )

    @admin.display(description="actions")
    def queue_actions(self, report: Report) -> str:
        if report.resolved_at:
            return f"Resolved: {report.resolution}"
        # Buttons submit the admin's own CSRF-protected form to our action URL: one click, no script.
        return format_html_join(
            " ",
            '<button type="submit" class="button" formaction="{}" formmethod="post">{}</button>',
            [
                (reverse(f"admin:chat_report_{name}", args=[report.pk]), label)
                for name, label in self.ACTIONS.items()
            ],
        )

    def get_urls(self):
        return [
            path(
                f"<int:report_id>/{name}/",
                self.admin_site.admin_view(self.act(name)),
                name=f"chat_report_{name}",
            )
            for name in self.ACTIONS
        ] + super().get_urls()

    def act(self, name: str):
        @require_POST
        def view(request: HttpRequest, report_id: int) -> HttpResponseRedirect:
            if not self.has_change_permission(request):
                raise moderation.NotAllowed("You may not work the moderation queue.")
            report = get_object_or_404(
                Report.objects.select_related("message__room", "message__author"), pk=report_id
            )
            message, room = report.message, report.message.room
            if name == "remove":
                moderation.remove_message(staff_member(request), message, reason=f"report #{report.pk}")
            elif name == "ban":
                moderation.ban(staff_member(request), room, message.author, reason=f"report #{report.pk}")
            else:
                moderation.resolve_report(staff_member(request), report, "no action needed")
            self.message_user(
                request, f"Report #{report.pk}: {self.ACTIONS[name].lower()} done.", messages.SUCCESS
            )
            return HttpResponseRedirect(back_to_queue(request))

        return view


def back_to_queue(request: HttpRequest) -> str:
    """Where the queue's buttons return to: the page they were on, if it is on this site."""
    referer = request.META.get("HTTP_REFERER", "")
    if url_has_allowed_host_and_scheme(referer, {request.get_host()}, request.is_secure()):
        return referer
    return reverse("admin:chat_report_changelist")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Roles and private-room memberships; changes redraw the user's open pages."""

    list_display = ["user", "room", "role", "created_at"]
    list_filter = ["role", ("room", OrdinaryRoomFilter)]
    list_select_related = ["room", "user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).filter(room__kind=Room.Kind.ROOM)

    autocomplete_fields = ["user", "room"]
    search_fields = ["user__username", "room__name"]

    def get_readonly_fields(self, request: HttpRequest, membership: Membership | None = None) -> list[str]:
        # A membership is one user in one room: change the role here, not whom it is about.
        return ["room", "user", "created_at"] if membership else ["created_at"]

    def save_model(self, request, membership: Membership, form, change: bool) -> None:
        moderation.set_role(staff_member(request), membership.room, membership.user, Role(membership.role))

    def delete_model(self, request: HttpRequest, membership: Membership) -> None:
        moderation.set_role(staff_member(request), membership.room, membership.user, None)

    def delete_queryset(self, request: HttpRequest, selected: QuerySet[Membership]) -> None:
        for membership in selected.select_related("room", "user"):
            self.delete_model(request, membership)


@admin.register(Involvement)
class InvolvementAdmin(admin.ModelAdmin):
    """Notification levels people chose per room (no row: Everything). Changes go through
    chat.involvement, so the person's open room lists and room pages follow them live."""

    list_display = ["user", "room", "level"]
    list_filter = ["level", ("room", OrdinaryRoomFilter)]
    list_select_related = ["room", "user"]
    autocomplete_fields = ["user", "room"]
    search_fields = ["user__username", "room__name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Involvement]:
        return super().get_queryset(request).filter(room__kind=Room.Kind.ROOM)

    def get_readonly_fields(self, request: HttpRequest, chosen: Involvement | None = None) -> list[str]:
        # One person in one room: change the level here, not whom it is about.
        return ["room", "user"] if chosen else []

    def save_model(self, request, chosen: Involvement, form, change: bool) -> None:
        chosen.pk = involvement.set_level(chosen.user, chosen.room, chosen.level).pk  # for the admin's log

    def delete_model(self, request: HttpRequest, chosen: Involvement) -> None:
        involvement.forget_level(chosen.user, chosen.room)

    def delete_queryset(self, request: HttpRequest, selected: QuerySet[Involvement]) -> None:
        for chosen in selected.select_related("room", "user"):
            self.delete_model(request, chosen)


class SanctionAdmin(admin.ModelAdmin):
    """Mutes and bans made here go through the same services as the room page."""

    list_select_related = ["room", "user", "created_by"]
    autocomplete_fields = ["user", "room"]
    search_fields = ["user__username", "room__name"]

    def get_readonly_fields(self, request: HttpRequest, sanction: Sanction | None = None) -> list[str]:
        # A sanction is one user in one room: retargeting it would leave the first in force.
        return ["room", "user", "created_by", "created_at"] if sanction else ["created_by", "created_at"]

    def delete_queryset(self, request: HttpRequest, selected: QuerySet) -> None:
        for sanction in selected.select_related("room", "user"):
            self.delete_model(request, sanction)


@admin.register(Mute)
class MuteAdmin(SanctionAdmin):
    list_display = ["user", "room", "until", "reason", "created_by"]
    fields = ["room", "user", "until", "reason", "created_by", "created_at"]

    def save_model(self, request, mute: Mute, form, change: bool) -> None:
        moderation.mute_until(staff_member(request), mute.room, mute.user, mute.until, mute.reason)

    def delete_model(self, request: HttpRequest, mute: Mute) -> None:
        moderation.unmute(staff_member(request), mute.room, mute.user)


@admin.register(Ban)
class BanAdmin(SanctionAdmin):
    list_display = ["user", "room", "reason", "created_by", "created_at"]
    fields = ["room", "user", "reason", "created_by", "created_at"]

    def save_model(self, request, ban: Ban, form, change: bool) -> None:
        moderation.ban(staff_member(request), ban.room, ban.user, ban.reason)

    def delete_model(self, request: HttpRequest, ban: Ban) -> None:
        moderation.unban(staff_member(request), ban.room, ban.user)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the services and never edited."""

    list_display = [
        "created_at",
        "actor",
        "action",
        "shown_room",
        "target_user",
        "shown_message",
        "reason",
        "detail",
    ]
    list_filter = ["action", ("room", OrdinaryRoomFilter)]
    readonly_fields = (
        "created_at",
        "actor",
        "action",
        "shown_room",
        "target_user",
        "shown_message",
        "reason",
        "detail",
    )
    fields = readonly_fields
    search_fields = ["actor__username", "target_user__username", "reason", "detail"]
    list_select_related = ["actor", "room", "target_user", "message"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="room")
    def shown_room(self, entry: AuditEntry) -> str:
        if entry.room is None:
            return "-"
        return "a direct message" if entry.room.is_direct else str(entry.room)

    @admin.display(description="message")
    def shown_message(self, entry: AuditEntry) -> str:
        """The message, by its text only in rooms: a direct message's text is read in the queue alone."""
        if entry.message_id is None:
            return "-"
        if entry.room is not None and entry.room.is_direct:
            return f"message #{entry.message_id} (direct message)"
        return str(entry.message)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# Outgoing webhooks: what staff need to see why a bot did not answer. Never a direct message's text.


def _delivered_message(delivery: WebhookDelivery) -> str:
    room = delivery.message.room
    where = "a direct message" if room.is_direct else f"#{room.slug}"
    return f"message #{delivery.message_id} in {where}"


_DELIVERY_COLUMNS = ("delivered_message", "status", "attempts", "response_status", "last_error", "updated")


@admin.display(description="last webhook deliveries")
def last_deliveries(bot: Bot) -> str:
    """The bot's 20 newest deliveries on its page, read-only (not an inline: nothing to submit), with
    a link to all of them."""
    if bot.pk is None:
        return "-"
    recent = list(bot.deliveries.select_related("message__room").order_by("-created")[:20])
    if not recent:
        return "none yet"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                f"{delivery.created:%Y-%m-%d %H:%M:%S}",
                _delivered_message(delivery),
                delivery.get_status_display(),
                delivery.attempts,
                delivery.response_status or "-",
                delivery.last_error or "-",
            )
            for delivery in recent
        ),
    )
    every = reverse("admin:chat_webhookdelivery_changelist") + f"?bot__id__exact={bot.pk}"
    return format_html(
        '<table class="deliveries"><thead><tr><th>when</th><th>message</th><th>outcome</th>'
        "<th>attempts</th><th>answer</th><th>last error</th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}">All of this bot\'s deliveries</a></p>',
        rows,
        every,
    )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every delivery with its outcome; written by chat/webhooks.py, never edited here."""

    list_display = ("created", "bot", *_DELIVERY_COLUMNS)
    list_filter = ["status", "bot"]
    list_select_related = ["bot__account", "message__room"]
    fields = readonly_fields = ("created", "bot", *_DELIVERY_COLUMNS)
    date_hierarchy = "created"
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whoever may change bots may send their deliveries again."""
        return request.user.has_perm("chat.change_bot")

    @admin.action(description="Send the selected failed deliveries again", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        selected = queryset.count()
        count = webhooks.retry(queryset)
        skipped = selected - count
        note = f" ({skipped} not failed, left as they are)" if skipped else ""
        self.message_user(request, f"{count} deliveries queued to be sent again{note}.")

    @admin.display(description="message")
    def delivered_message(self, delivery: WebhookDelivery) -> str:
        return _delivered_message(delivery)


# Bots -----------------------------------------------------------------------------------------


class BotForm(forms.ModelForm):
    """A bot's name is its account's username, chosen once, under the same rules as people's."""

    name = forms.CharField(
        max_length=150, help_text="Shown on its messages. English letters, digits and @ . + - _ only."
    )

    class Meta:
        model = Bot
        fields = ["name", "initial", "rooms", "webhook_url"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        rooms = self.fields["rooms"]
        assert isinstance(rooms, forms.ModelMultipleChoiceField)
        rooms.queryset = Room.objects.filter(kind=Room.Kind.ROOM)  # never a direct message
        self.fields["initial"].required = False
        if self.instance.pk:
            self.fields["name"].disabled = True
            self.fields["name"].initial = self.instance.account.username

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if self.instance.pk:
            return self.instance.account.username
        taken = name_taken(name)
        if taken:
            raise forms.ValidationError(taken)
        return name

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        refusal = url and outbound.why_refused_now(url, settings.CHAT_WEBHOOK_ALLOW_PRIVATE)
        if refusal:
            raise forms.ValidationError(refusal)
        return url


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    """Staff create bots here. A bot's key is shown once, on the page after creating it or
    resetting it, never stored in a message or cookie: only its hash is kept."""

    form = BotForm
    list_display = ["name", "initial", "room_names", "webhook_url", "key_start", "created"]
    list_select_related = ["account"]
    search_fields = ["account__username"]
    readonly_fields = ["key_start", "webhook_secret", "created", "last_deliveries"]
    last_deliveries = staticmethod(last_deliveries)
    actions = ["reset_keys"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Bot]:
        return super().get_queryset(request).prefetch_related("rooms")

    @admin.display(description="name", ordering="account__username")
    def name(self, bot: Bot) -> str:
        return bot.account.username

    @admin.display(description="rooms")
    def room_names(self, bot: Bot) -> str:
        return ", ".join(f"#{room.slug}" for room in bot.rooms.all()) or "none"

    @admin.display(description="key")
    def key_start(self, bot: Bot) -> str:
        """Enough of the key to tell which one a tool holds; the secret part is never kept."""
        return f"{bots.KEY_PREFIX}_{bot.key_id}_…" if bot.key_id else "made when saved"

    def save_model(self, request: HttpRequest, bot: Bot, form: BotForm, change: bool) -> None:
        if not change:
            request._bot_key = bots.prepare(bot, form.cleaned_data["name"])  # type: ignore[attr-defined]
        super().save_model(request, bot, form, change)

    def save_related(self, request: HttpRequest, form: BotForm, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        bots.sync_memberships(form.instance)

    def response_add(
        self, request: HttpRequest, bot: Bot, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._show_keys(request, [(bot, request._bot_key)], "created")  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, bot: Bot) -> None:
        bots.retire(bot)

    def delete_queryset(self, request: HttpRequest, selected: QuerySet[Bot]) -> None:
        for bot in selected:
            bots.retire(bot)

    @admin.action(description="Reset the key of selected bots (their old keys stop working at once)")
    def reset_keys(self, request: HttpRequest, selected: QuerySet[Bot]) -> HttpResponse:
        return self._show_keys(request, [(bot, bots.reset_key(bot)) for bot in selected], "given a new key")

    def _show_keys(self, request: HttpRequest, keys: list[tuple[Bot, str]], done: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Copy the key now",
            "keys": keys,
            "done": done,
            "opts": self.model._meta,
        }
        response = render(request, "admin/chat/bot_keys.html", context)
        add_never_cache_headers(response)  # shown once: not kept by the browser or any cache
        return response
