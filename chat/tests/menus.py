"""A message's ··· menu as a reader gets it: the page and live frames carry only a lazy link,
and the controls come from GET /messages/<pk>/menu/ when the reader opens it."""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import Client

# Marks a message rendered with a menu (for signed-in readers); visitors' messages have none.
MENU = 'class="message-actions'


def message_id(html: str, body: str) -> int:
    """The id of the message showing `body` in a page or frame."""
    match = re.search(rf'id="message-(\d+)"(?:(?!</article>).)*?{re.escape(body)}', html, re.DOTALL)
    assert match, f"no message showing {body!r}"
    return int(match.group(1))


def fetch_menu(user: AbstractBaseUser | None, message_pk: int) -> HttpResponse:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(f"/messages/{message_pk}/menu/")


def menu_of(user: AbstractBaseUser | None, message_pk: int) -> str:
    """The menu's HTML as `user` gets it on opening, or "" when refused."""
    response = fetch_menu(user, message_pk)
    return response.text if response.status_code == 200 else ""
