from django import forms
from django.conf import settings


class MessageForm(forms.Form):
    """The chat input. The same form validates a websocket frame and any HTTP post."""

    message = forms.CharField(
        max_length=settings.CHAT_MESSAGE_MAX_LENGTH,
        error_messages={
            "required": "Write something before sending.",
            "max_length": "Messages can be at most %(limit_value)s characters (this one has %(show_value)s).",
        },
    )
