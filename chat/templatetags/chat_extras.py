from django import template

register = template.Library()

AVATAR_HUES = 8


@register.filter
def avatar_hue(username: str) -> int:
    """A stable colour class (0-7) per username, so CSS can tint avatars without inline styles."""
    return sum(map(ord, username)) % AVATAR_HUES
