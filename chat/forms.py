import re
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.db.models import F, Value
from django.db.models.functions import Lower, Replace
from django.utils import timezone

from chat.models import REACTION_EMOJI, Involvement, Room


class MessageForm(forms.Form):
    """The chat input. The same form validates a websocket frame and any HTTP post."""

    message = forms.CharField(
        max_length=settings.CHAT_MESSAGE_MAX_LENGTH,
        error_messages={
            "required": "Write something before sending.",
            "max_length": "Messages can be at most %(limit_value)s characters (this one has %(show_value)s).",
        },
    )
    # The id of the message this one answers, from the reply bar; checked against the room on posting.
    reply_to = forms.CharField(required=False, max_length=20)


class CaptionForm(MessageForm):
    """The text sent with an attachment: the same rules as a message, but it may be left empty."""

    message = forms.CharField(
        required=False,
        max_length=settings.CHAT_MESSAGE_MAX_LENGTH,
        error_messages=MessageForm.base_fields["message"].error_messages,
    )


class EditMessageForm(MessageForm):
    """The author's new text for one of their messages: the same rules as posting it."""

    message_id = forms.IntegerField(min_value=1)


class RoomSettingsForm(forms.ModelForm):
    """What moderators may change about their room, on the room page and in the admin."""

    class Meta:
        model = Room
        fields = ["description", "is_public", "is_locked", "slow_mode_seconds"]


class ModerationForm(forms.Form):
    """Fields shared by the moderation actions sent from the room page."""

    reason = forms.CharField(max_length=200, required=False, strip=True)


class MessageActionForm(ModerationForm):
    message_id = forms.IntegerField(min_value=1)


class ReactionForm(forms.Form):
    """A click on one emoji of a message's menu: toggles the clicker's reaction."""

    message_id = forms.IntegerField(min_value=1)
    emoji = forms.ChoiceField(
        choices=[(emoji, emoji) for emoji in REACTION_EMOJI],
        error_messages={"invalid_choice": "Pick one of the emoji in the menu."},
    )


class UserActionForm(ModerationForm):
    user_id = forms.IntegerField(min_value=1)


SLOW_MODE_CHOICES = [
    (0, "Off"),
    (5, "5 seconds"),
    (10, "10 seconds"),
    (30, "30 seconds"),
    (60, "1 minute"),
    (300, "5 minutes"),
]
MUTE_CHOICES = [(10, "10 minutes"), (60, "1 hour"), (24 * 60, "1 day"), (7 * 24 * 60, "1 week")]


class MuteForm(UserActionForm):
    minutes = forms.TypedChoiceField(choices=MUTE_CHOICES, coerce=int, initial=10)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150, strip=True)


class ProposeRoomForm(forms.Form):
    name = forms.CharField(max_length=80, strip=True)
    description = forms.CharField(max_length=200, required=False, strip=True)
    is_public = forms.BooleanField(label="Public (anyone can read it)", required=False, initial=True)


# ASCII pairs that read alike in many fonts (from Unicode's confusables, UTS #39), folded away to
# compare names: before lowercasing (capital I vs small l), then after it.
_ALIKE_CASED = [("I", "l"), ("1", "l"), ("0", "O")]
_ALIKE_LOWER = [("rn", "m"), ("vv", "w")]


def lookalike_key(username: str) -> str:
    """What a name looks like: two names with the same key are too alike to tell apart."""
    for old, new in _ALIKE_CASED:
        username = username.replace(old, new)
    username = username.lower()
    for old, new in _ALIKE_LOWER:
        username = username.replace(old, new)
    return username


def _lookalike_key_sql() -> Lower | Replace:
    """lookalike_key() in SQL, to compare against every stored name in one query."""
    expression: Lower | Replace | F = F("username")
    for old, new in _ALIKE_CASED:
        expression = Replace(expression, Value(old), Value(new))
    expression = Lower(expression)
    for old, new in _ALIKE_LOWER:
        expression = Replace(expression, Value(old), Value(new))
    return expression


class SignupForm(UserCreationForm):
    """Usernames are ASCII (letters, digits, @ . + - _), so no other script can imitate a name,
    and a name that differs from a taken one only in case or in look-alike characters is taken."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
        labels = {"email": "Email address (optional)"}
        help_texts = {
            "username": "Up to 150 English letters, digits and @ . + - _ only.",
            "email": "For an email when you're mentioned while away, once you confirm it by a link we send.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].validators.append(ASCIIUsernameValidator())

    def clean_username(self) -> str:
        username = super().clean_username()  # refuses names taken in another case
        if username and looks_taken(username):
            raise forms.ValidationError(LOOKALIKE, code="lookalike")
        return username


LOOKALIKE = "That name looks too much like someone else's. Please choose another."


def looks_taken(username: str) -> bool:
    """Whether a stored name differs from this one only in case or look-alike characters."""
    return User.objects.alias(key=_lookalike_key_sql()).filter(key=lookalike_key(username)).exists()


def name_taken(username: str) -> str | None:
    """Why a new account (a bot's, made by staff) may not take this name, or None."""
    if not ASCII_NAME.match(username):
        return "Use English letters, digits and @ . + - _ only."
    if looks_taken(username):
        return LOOKALIKE
    return None


ASCII_NAME = re.compile(r"^[\w.@+-]+\Z", re.ASCII)


class SearchForm(forms.Form):
    """The search box: words to find, in one room or all, best match or newest first, which page."""

    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Search messages",
        error_messages={
            "max_length": "it is %(show_value)d characters long, and a search can be at most "
            "%(limit_value)d. Try a few of its words."
        },
    )
    room = forms.SlugField(required=False, max_length=80)
    order = forms.ChoiceField(
        required=False, choices=[("best", "Best match"), ("newest", "Newest")], initial="best"
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=1000)

    @property
    def q_shown(self) -> str:
        """What the box shows: no more than it accepts (a browser keeps a longer value put in it)."""
        return str(self["q"].value() or "")[: self.fields["q"].max_length]  # type: ignore[attr-defined]


class MentionEmailsForm(forms.Form):
    """The settings page: where mention emails go, and whether they are sent at all."""

    email = forms.EmailField(required=False, label="Email address")
    enabled = forms.BooleanField(required=False, label="Email me when I'm mentioned while away")


class LevelForm(forms.Form):
    """A room's notification level, as its control sends it (chat/involvement.py)."""

    level = forms.ChoiceField(choices=Involvement.Level.choices)
    # The id of the page's socket (chat/parts/involvement.html#tab_slot): that tab gets no live copy.
    tab = forms.CharField(required=False, max_length=64)


class SnoozeForm(forms.Form):
    """Do not disturb: for an hour, until tomorrow morning, or until a chosen time (in the site's
    time zone, as `<input type=datetime-local>` sends it: no zone of its own)."""

    MOST_DAYS = 365

    snooze = forms.ChoiceField(
        choices=[("hour", "1 hour"), ("morning", "Tomorrow morning"), ("until", "Until")]
    )
    until = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if cleaned.get("snooze") != "until":
            return cleaned
        until = cleaned.get("until")
        if until is None:
            if "until" not in self.errors:
                self.add_error("until", "Choose the date and time to snooze until.")
        elif until <= timezone.now():
            self.add_error("until", "Choose a time in the future.")
        elif until > timezone.now() + timedelta(days=self.MOST_DAYS):
            self.add_error("until", f"Snooze for at most {self.MOST_DAYS} days.")
        return cleaned


class LiveUpdatesForm(forms.Form):
    """The settings page's "Live updates" part (its own form, told apart by `live_updates`)."""

    paused = forms.BooleanField(
        required=False,
        label="Pause live updates in rooms",
        widget=forms.CheckboxInput(attrs={"aria-describedby": "live-updates-help"}),
    )
