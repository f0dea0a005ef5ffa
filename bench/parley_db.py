"""Parley's side of the benchmark database, run in a subprocess with the servers' environment.

    python -m bench.parley_db setup '{"senders": 16, "rooms": ["a", "b"], "seeded": {"page": 50}}'
    python -m bench.parley_db count '{"room": "a", "prefix": "post-"}'

Each prints one line of JSON: the senders' session keys and a bot's key, or how often each body is
stored.
"""

import json
import sys
from collections.abc import Callable

import django

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Count  # noqa: E402

from chat import bots  # noqa: E402
from chat.models import Message, Room  # noqa: E402
from chat.standing import Account  # noqa: E402
from testsupport.sessions import session_key_for  # noqa: E402


def make_senders(count: int) -> list[str]:
    password = make_password(None)  # unusable: nobody logs in with it
    users = [Account(username=f"sender{i:02d}", password=password) for i in range(count)]
    Account.objects.bulk_create(users)
    return [
        session_key_for(user)
        for user in Account.objects.filter(username__startswith="sender").order_by("username")
    ]


def seed(slug: str, count: int, author: Account) -> None:
    room = Room.objects.get(slug=slug)
    Message.objects.bulk_create(
        Message(room=room, author=author, body=f"Seed message {i} with a few words in it")
        for i in range(count)
    )


def make_bot(rooms: list[str]) -> str:
    """A bot that belongs to the bot-posting rooms; its key."""
    bot, key = bots.create("benchbot", "b")
    bots.set_rooms(bot, list(Room.objects.filter(slug__in=rooms)))
    return key


@transaction.atomic
def setup(senders: int, rooms: list[str], seeded: dict[str, int]) -> dict:
    sessions = make_senders(senders)
    Room.objects.bulk_create(Room(slug=slug, name=slug) for slug in rooms)
    for slug, count in seeded.items():
        seed(slug, count, Account.objects.get(username="sender00"))
    return {"sessions": sessions, "bot_key": make_bot([slug for slug in rooms if slug.endswith("-bot")])}


def count(room: str, prefix: str) -> dict:
    rows = (
        Message.objects.filter(room__slug=room, body__startswith=prefix)
        .values("body")
        .annotate(n=Count("id"))
        .values_list("body", "n")
    )
    return {"stored": dict(rows)}


COMMANDS: dict[str, Callable[..., dict]] = {"setup": setup, "count": count}

if __name__ == "__main__":
    command, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(COMMANDS[command](**arguments)))
