from datetime import datetime

from django import template
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

AVATAR_HUES = 8


@register.filter
def avatar_hue(username: str) -> int:
    """A stable colour class (0-7) per username, so CSS can tint avatars without inline styles."""
    return sum(map(ord, username)) % AVATAR_HUES


# The live region #announcements keeps this many lines (chat/parts/messages.html): a new message's
# line replaces the slot of its id, so a tab open for days holds no more than these.
ANNOUNCEMENT_SLOTS = 20


@register.simple_tag
def announcement_slots() -> range:
    return range(ANNOUNCEMENT_SLOTS)


@register.filter
def announcement_slot(message_id: int) -> int:
    return message_id % ANNOUNCEMENT_SLOTS


@register.simple_tag
def message_time(value: datetime) -> SafeString:
    """A message's <time>: what the `date` filter gives for 'c', 'DATETIME_FORMAT e' and 'H:i',
    with the locale's long format looked up once. Four filters cost a third of a message's render."""
    local = timezone.localtime(value)
    title = f"{formats.date_format(local, 'DATETIME_FORMAT')} {local.tzname() or ''}"
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(), title, f"{local:%H:%M}")
