from django import forms
from django.conf import settings

from chat.models import Room


class MessageForm(forms.Form):
    """The chat input. The same form validates a websocket frame and any HTTP post."""

    message = forms.CharField(
        max_length=settings.CHAT_MESSAGE_MAX_LENGTH,
        error_messages={
            "required": "Write something before sending.",
            "max_length": "Messages can be at most %(limit_value)s characters (this one has %(show_value)s).",
        },
    )


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
