"""Presence rows as a server process writes them, with the process's heartbeat as old as asked."""

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from chat.models import Presence, Room, ServerProcess


def present(room: Room, user: AbstractBaseUser | None, socket_id: str, age_seconds: float = 0) -> Presence:
    """A socket open on `room`, held by a process last heard from `age_seconds` ago."""
    process = ServerProcess.objects.create(last_seen=timezone.now() - timedelta(seconds=age_seconds))
    return Presence.objects.create(room=room, user=user, socket_id=socket_id, process=process)
