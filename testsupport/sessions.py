"""Sessions as a login leaves them, made directly (no password hashing): for scripts that run in a
real server's database (`manage.py shell -c`), the bench and tests that hand a browser or socket a
signed-in cookie."""

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.backends.db import SessionStore

BACKEND = "django.contrib.auth.backends.ModelBackend"


def session_key_for(user: AbstractBaseUser) -> str:
    """The key of a new database session signing `user` in: the value of a `sessionid` cookie."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None  # create() saved it under a fresh key
    return session.session_key
