"""How much each person hears of each room (their notification level), and "do not disturb".

The level lives in one place, `Involvement` (no row: EVERYTHING, in rooms and direct messages
alike), which the room list's counts and title (chat/unread.py, chat/room_list_consumer.py) and
mention emails (chat/mentionmail.py) all read:

- EVERYTHING: every unread message counts; a missed mention is emailed.
- MENTIONS: only unread mentions count; they are emailed.
- NOTHING: nothing counts, nothing is emailed; the room stays in the list.
- HIDDEN: the room leaves the list except while it has an unread mention of you (then it shows
  with its mention count); nothing is emailed.

Snoozing (per person, every room) stops mention emails until a time; counts still show. It is
`MentionEmails.snoozed_until`, compared with now wherever it matters, so it ends by itself. Open
room lists of the person show it live, and take its line down when it ends.

"Pause live updates" (Settings, `LiveUpdates`) is here too: also how much a person hears, and
switched live on their open room pages.
"""

from datetime import datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from chat import broadcast, fragments
from chat.models import Involvement, LiveUpdates, MentionEmails, Room
from chat.standing import Account
from chat.unread import DEFAULT_LEVEL, Level

LEVELS: tuple[Level, ...] = tuple(Involvement.Level.values)
SNOOZE_MORNING_HOUR = 8  # "until tomorrow 08:00", in the site's time zone (settings.TIME_ZONE)


def level_of(user: Account, room: Room | int) -> Level:
    """The user's level in the room (one query)."""
    room_id = room if isinstance(room, int) else room.pk
    found = Involvement.objects.filter(user_id=user.pk, room_id=room_id).values_list("level", flat=True)
    return found.first() or DEFAULT_LEVEL


def levels_by_room(user: Account) -> dict[int, Level]:
    """Every level the user chose, by room id (one query); rooms missing from it are DEFAULT_LEVEL."""
    return dict(Involvement.objects.filter(user_id=user.pk).values_list("room_id", "level"))


def set_level(user: Account, room: Room, level: Level, from_tab: str = "") -> Involvement:
    """Store the user's level in the room; after the commit, their cached room list is stale and
    every open tab of theirs (room lists and this room's page, on every process) shows it.

    `from_tab`: the id of the socket of the page it was chosen on, which shows the answer to its post
    instead (a live copy would replace the control that has the focus)."""
    assert level in LEVELS, f"not a level: {level!r}"
    with transaction.atomic():
        stored, _ = Involvement.objects.update_or_create(user=user, room=room, defaults={"level": level})
        _level_shown(user, room, level, from_tab)
    return stored


def forget_level(user: Account, room: Room) -> None:
    """Back to the default (no row), e.g. staff deleting the row in the admin: shown live alike."""
    with transaction.atomic():
        Involvement.objects.filter(user=user, room=room).delete()
        _level_shown(user, room, DEFAULT_LEVEL)


def _level_shown(user: Account, room: Room, level: Level, from_tab: str = "") -> None:
    control = fragments.live_level_control_html(room.pk, room.slug, level)
    broadcast.level_changed(user.pk, room.pk, level, control, from_tab)


# Do not disturb ------------------------------------------------------------------------------


def snoozed_until(user: Account, now: datetime | None = None) -> datetime | None:
    """Until when the user's mention emails are snoozed, or None if they are not (any more)."""
    until = MentionEmails.objects.filter(user=user).values_list("snoozed_until", flat=True).first()
    return still_snoozed(until, now)


def still_snoozed(until: datetime | None, now: datetime | None = None) -> datetime | None:
    """A stored snooze's end while it is ahead, None once it has passed (it ends by itself)."""
    return until if until is not None and until > (now or timezone.now()) else None


def snooze(user: Account, until: datetime) -> None:
    """No mention emails until `until` (the room list shows it until then)."""
    _store_snooze(user, until)


def resume(user: Account) -> None:
    _store_snooze(user, None)


def _store_snooze(user: Account, until: datetime | None) -> None:
    """Store it; after the commit the cached room list is stale and every open room list of the
    person (any tab, any process) shows the line, rendered once here."""
    with transaction.atomic():
        MentionEmails.objects.update_or_create(user=user, defaults={"snoozed_until": until})
        broadcast.snooze_changed(user.pk, until, fragments.snooze_line_html(until))


def snooze_end(choice: str, now: datetime, chosen: datetime | None = None) -> datetime:
    """When a snooze chosen on the settings page ends: in an hour, tomorrow morning (site time), or
    at the time chosen (already checked to be in the future by chat.forms.SnoozeForm)."""
    if choice == "hour":
        return now + timedelta(hours=1)
    if choice == "morning":
        tomorrow = timezone.localtime(now).date() + timedelta(days=1)
        return timezone.make_aware(datetime.combine(tomorrow, time(SNOOZE_MORNING_HOUR)))
    assert chosen is not None, "a chosen time comes with the 'until' choice"
    return chosen


# Pause live updates ---------------------------------------------------------------------------


def set_live_updates(user: Account, paused: bool) -> None:
    """Pause live updates in rooms, or turn them back on (Settings). After the commit, every open
    room page of the person switches at once, on every process (chat.broadcast.live_mode_changed);
    rooms opened later read it on connect (chat.models.live_updates_paused)."""
    with transaction.atomic():
        LiveUpdates.objects.update_or_create(user=user, defaults={"paused": paused})
        broadcast.live_mode_changed(user.pk, paused)
