"""Parley settings: everything an operator changes comes from the environment.

The defaults are for local development (SQLite, in-memory channel layer, DEBUG on).
Production sets at least DEBUG=false, SECRET_KEY, ALLOWED_HOSTS, and usually
DATABASE_URL and REDIS_URL.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # daphne first: its runserver serves HTTP and websockets from one process.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # chat before django_tasks_db: chat's `db_worker` command (retries, recovery of tasks a killed
    # worker left running; chat/jobs.py) takes the place of the one django-tasks-db ships.
    "chat",
    "django_tasks_db",
]

# Cached pages are served in front of these (chat/pagecache.py): change its MIRRORED_MIDDLEWARE and
# FastPages.finishers with them, or every page is left to Django (`manage.py check` warns, chat.W001).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A lost database or cache answers 503 with a sentence, not a 500 (chat/unavailable.py).
    "chat.unavailable.ServiceUnavailable",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Pages compress ~8x. BREACH: the only secret in a page is the CSRF token, which Django masks
    # afresh for every response, and GZipMiddleware pads each response by a random length too.
    # Below WhiteNoise, which serves its own precompressed files.
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Before CSRF, which reads the POST body first: an upload's file name with path characters is
    # remembered for the upload view to refuse (Django would quietly cut the path off).
    "chat.uploads.strict_upload_names",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "site_config.urls"
ASGI_APPLICATION = "site_config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Reuse connections: Channels' database_sync_to_async closes any older than this, so 0
        # would open a new database connection for every frame a socket sends.
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several server processes may share one SQLite file: wait for locks, don't fail. In WAL mode,
    # synchronous=NORMAL syncs at checkpoints, not on every commit: a commit still survives the
    # process crashing, and only an operating-system crash or power loss can undo the last ones.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

REDIS_URL = os.environ.get("REDIS_URL", "")
# Which channels-redis layer carries events between processes (docs/performance.md, "Which Redis layer").
REDIS_CHANNEL_LAYER = os.environ.get("REDIS_CHANNEL_LAYER", "pubsub")
if REDIS_URL and REDIS_CHANNEL_LAYER == "pubsub":
    # One PUBLISH per group send; each process's hub subscribes once per group, and group
    # membership lives in each process, so nothing expires and nothing is dropped at a capacity.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # One hub channel per process carries every room's events (chat/hub.py);
                # a burst must not be dropped silently.
                "capacity": 10000,
                # Group membership outlives daphne's default 24 h websocket timeout.
                "group_expiry": 86400 * 2,
            },
        }
    }
else:
    # One hub channel per process carries every room's events (chat/hub.py): give it room.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.layers.DirectInMemoryChannelLayer", "CONFIG": {"capacity": 10000}}
    }

# The page cache's versions (chat/broadcast.py): per process by default; shared through Redis when
# several processes serve the same rooms, so a change made through one invalidates pages in all.
CACHES: dict[str, dict]
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
# Rendered pages are kept at most this long even without a change, for what expires with time
# alone (presence rows of a crashed process, mutes running out in the moderators' list).
CHAT_PAGE_CACHE_SECONDS = float(os.environ.get("CHAT_PAGE_CACHE_SECONDS", "10"))
# Without script, the room's newest messages are a frame that reloads itself this often (whole seconds).
CHAT_NOSCRIPT_REFRESH_SECONDS = int(os.environ.get("CHAT_NOSCRIPT_REFRESH_SECONDS", "20"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "room-list"
LOGOUT_REDIRECT_URL = "room-list"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Uploaded files (attachments): `manage.py backup` includes them. Never served from a URL of its
# own: chat/attachments.py checks who may read the room on every download. No MEDIA_URL.
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(BASE_DIR / "media"))

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Attachments in an S3-compatible bucket instead of MEDIA_ROOT (needs `pip install django-storages[s3]`;
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY as boto3 reads them). Files stay
# private: every download goes through Parley's view, never a bucket URL.
if os.environ.get("S3_BUCKET"):
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["S3_BUCKET"],
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "default_acl": "private",
            "file_overwrite": False,
        },
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Content-Security-Policy: only our own files and nonce'd htmx may run; no inline script, no eval.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# HTTPS hardening: on by default in production, each switchable for a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# One line per event (site_config/logs.py). What Parley logs names rooms, users' ids, event types and
# exception classes, never message text or session keys; daphne's access log adds path and client.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "one_line": {
            "()": "site_config.logs.OneLine",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "filters": {"expected_exceptions": {"()": "site_config.logs.ExpectedExceptions"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "one_line",
            "filters": ["expected_exceptions"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "INFO"}},
}

# /healthz (chat/health.py): each part (database, channel layer) must answer within this many seconds.
HEALTHZ_TIMEOUT_SECONDS = float(os.environ.get("HEALTHZ_TIMEOUT_SECONDS", "2"))

# Chat limits (see chat/services.py).
CHAT_MESSAGE_MAX_LENGTH = 2000
# What one message may render to (chat/formatting.py): past a bound the post is refused with a
# sentence (saves with nobody to tell store the text escaped). 50 messages at the cap, a history
# page, stay well under daphne's 1 MiB frame. Past the floor, HTML is at most RATIO x the typed bytes.
CHAT_MESSAGE_MAX_HTML_BYTES = int(os.environ.get("CHAT_MESSAGE_MAX_HTML_BYTES", str(16 * 1024)))
CHAT_MESSAGE_MAX_HTML_RATIO = int(os.environ.get("CHAT_MESSAGE_MAX_HTML_RATIO", "10"))
CHAT_MESSAGE_HTML_RATIO_FLOOR_BYTES = int(os.environ.get("CHAT_MESSAGE_HTML_RATIO_FLOOR_BYTES", "4096"))
# Links of any kind (typed, bare URLs, @mentions), and links made from a reference definition.
CHAT_MESSAGE_MAX_LINKS = int(os.environ.get("CHAT_MESSAGE_MAX_LINKS", "50"))
CHAT_MESSAGE_MAX_REFERENCE_LINKS = int(os.environ.get("CHAT_MESSAGE_MAX_REFERENCE_LINKS", "20"))
CHAT_HISTORY_PAGE_SIZE = 50
# Flood control: at most this many messages per window per user (across tabs and processes).
CHAT_FLOOD_MESSAGES = int(os.environ.get("CHAT_FLOOD_MESSAGES", "5"))
CHAT_FLOOD_WINDOW_SECONDS = float(os.environ.get("CHAT_FLOOD_WINDOW_SECONDS", "5"))
# Presence: each open socket refreshes its row this often; rows older than the TTL
# (a crashed process never said goodbye) no longer count as online.
CHAT_PRESENCE_HEARTBEAT_SECONDS = float(os.environ.get("CHAT_PRESENCE_HEARTBEAT_SECONDS", "30"))
CHAT_PRESENCE_TTL_SECONDS = float(os.environ.get("CHAT_PRESENCE_TTL_SECONDS", "90"))
# The member list is sent to a room at most once per this many seconds, however many join.
CHAT_MEMBERS_BROADCAST_SECONDS = float(os.environ.get("CHAT_MEMBERS_BROADCAST_SECONDS", "1"))
# Joins and leaves within this many seconds are written to the database together.
# How often each process PINGs the broker (Redis) to notice an outage and its end.
CHAT_BROKER_CHECK_SECONDS = float(os.environ.get("CHAT_BROKER_CHECK_SECONDS", "1"))
# On SIGTERM, how long sockets get to answer the frame in hand before the process stops (0: don't wait).
CHAT_SHUTDOWN_GRACE_SECONDS = float(os.environ.get("CHAT_SHUTDOWN_GRACE_SECONDS", "10"))
CHAT_PRESENCE_BATCH_SECONDS = float(os.environ.get("CHAT_PRESENCE_BATCH_SECONDS", "0.05"))
# A big room lists this many names and counts the rest.
CHAT_MEMBER_NAMES_SHOWN = int(os.environ.get("CHAT_MEMBER_NAMES_SHOWN", "50"))
# Reactions toggled per user per window (counted in Django's cache, shared with REDIS_URL).
CHAT_REACTIONS_PER_USER = int(os.environ.get("CHAT_REACTIONS_PER_USER", "20"))
CHAT_REACTION_WINDOW_SECONDS = float(os.environ.get("CHAT_REACTION_WINDOW_SECONDS", "10"))
# "alice is typing…" goes to a room at most once per this many seconds, and lasts this long
# after someone's last typing signal (the composer sends one at most every 3 seconds).
CHAT_TYPING_BROADCAST_SECONDS = float(os.environ.get("CHAT_TYPING_BROADCAST_SECONDS", "0.5"))
CHAT_TYPING_SHOWN_SECONDS = float(os.environ.get("CHAT_TYPING_SHOWN_SECONDS", "6"))
# Largest websocket text frame the consumer reads; larger ones get an error notice.
CHAT_MAX_FRAME_BYTES = 16 * 1024
# Open sockets per signed-in user and per visitors' address, in each server process (chat/sockets.py).
CHAT_SOCKETS_PER_USER = int(os.environ.get("CHAT_SOCKETS_PER_USER", "20"))
CHAT_SOCKETS_PER_ADDRESS = int(os.environ.get("CHAT_SOCKETS_PER_ADDRESS", "50"))
# Bytes a socket may leave unread before it is closed (1011, so the page reconnects and catches up).
CHAT_SOCKET_SEND_BUFFER_BYTES = int(os.environ.get("CHAT_SOCKET_SEND_BUFFER_BYTES", str(1024 * 1024)))
# The kernel's share of a socket's unread bytes (SO_SNDBUF; Linux reserves twice this): without
# it the kernel grows each connection's queue up to net.ipv4.tcp_wmem's maximum (chat/sockets.py).
CHAT_SOCKET_KERNEL_BUFFER_BYTES = int(os.environ.get("CHAT_SOCKET_KERNEL_BUFFER_BYTES", str(128 * 1024)))

# Frames and pages in bytes (docs/configuration.md, "Limits on frames and pages"). daphne refuses to
# send a websocket message over its --websocket-max-message-size (1 MiB by default): change both or neither.
CHAT_WEBSOCKET_MAX_MESSAGE_BYTES = int(os.environ.get("CHAT_WEBSOCKET_MAX_MESSAGE_BYTES", str(1024 * 1024)))
# The history one page, frame, "Load older" or "Load newer" carries, at most: older messages are
# a "Load older" away (one message always shows, however large).
CHAT_HISTORY_MAX_BYTES = int(os.environ.get("CHAT_HISTORY_MAX_BYTES", str(256 * 1024)))
# What a history frame carries besides its messages (the room's header, "New messages", wrappers).
CHAT_FRAME_CHROME_BYTES = 16 * 1024
# Stored message HTML over this (only older versions stored such) is shown as the text typed, escaped.
CHAT_MESSAGE_SHOWN_HTML_BYTES = min(64 * 1024, CHAT_HISTORY_MAX_BYTES // 4)


def largest_frame_bytes() -> int:
    """The largest frame Parley builds: a history with its header (every other frame is smaller)."""
    return CHAT_HISTORY_MAX_BYTES + CHAT_FRAME_CHROME_BYTES


if largest_frame_bytes() > CHAT_WEBSOCKET_MAX_MESSAGE_BYTES:
    raise ImproperlyConfigured(
        f"CHAT_HISTORY_MAX_BYTES ({CHAT_HISTORY_MAX_BYTES}) plus {CHAT_FRAME_CHROME_BYTES} bytes of "
        f"header must fit in CHAT_WEBSOCKET_MAX_MESSAGE_BYTES ({CHAT_WEBSOCKET_MAX_MESSAGE_BYTES}, "
        "daphne's cap): lower the first, or raise the second and daphne's --websocket-max-message-size."
    )
if largest_frame_bytes() > CHAT_SOCKET_SEND_BUFFER_BYTES:
    raise ImproperlyConfigured(
        f"CHAT_SOCKET_SEND_BUFFER_BYTES ({CHAT_SOCKET_SEND_BUFFER_BYTES}) must hold the largest frame "
        f"({largest_frame_bytes()}: CHAT_HISTORY_MAX_BYTES plus its header), or every socket that opens "
        "the room would count as falling behind and be closed as it gets its history."
    )

# Abuse limits (chat/accounts.py, chat/moderation.py). Reports and proposals are counted in the
# database; failed logins and signups in Django's cache (Redis with REDIS_URL), which every
# process shares. When that cache can't be reached, logins and signups are refused (503).
CHAT_REPORTS_PER_USER = int(os.environ.get("CHAT_REPORTS_PER_USER", "10"))
CHAT_REPORT_WINDOW_SECONDS = float(os.environ.get("CHAT_REPORT_WINDOW_SECONDS", "600"))
CHAT_PROPOSALS_PER_USER = int(os.environ.get("CHAT_PROPOSALS_PER_USER", "3"))
CHAT_PROPOSAL_WINDOW_SECONDS = float(os.environ.get("CHAT_PROPOSAL_WINDOW_SECONDS", "86400"))
# Editing your own messages (chat/standing.py, chat/services.py): for this long after sending
# (0: no limit), and at most this many edits per user per rate window.
CHAT_EDIT_WINDOW_SECONDS = float(os.environ.get("CHAT_EDIT_WINDOW_SECONDS", "3600"))
CHAT_EDITS_PER_USER = int(os.environ.get("CHAT_EDITS_PER_USER", "10"))
CHAT_EDIT_RATE_WINDOW_SECONDS = float(os.environ.get("CHAT_EDIT_RATE_WINDOW_SECONDS", "60"))
# Direct messages (chat/standing.py): off closes every conversation to new messages, and none
# can be started; what was written stays readable by its two people.
CHAT_DIRECT_MESSAGES_ENABLED = env_bool("CHAT_DIRECT_MESSAGES_ENABLED", True)

# Outgoing webhooks (chat/webhooks.py). Loopback and private addresses are refused unless this is on
# (a bot on the same host or network); link-local, multicast and reserved ones always are.
CHAT_WEBHOOK_ALLOW_PRIVATE = env_bool("CHAT_WEBHOOK_ALLOW_PRIVATE", False)
# How long one POST may take, connecting and reading the answer included.
CHAT_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("CHAT_WEBHOOK_TIMEOUT_SECONDS", "5"))
# Tries per delivery, waiting between them as every job does (CHAT_TASK_BACKOFF_SECONDS, doubling).
CHAT_WEBHOOK_ATTEMPTS = int(os.environ.get("CHAT_WEBHOOK_ATTEMPTS", "4"))
# Failed logins for one account from one address, and from one address for any accounts.
CHAT_LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("CHAT_LOGIN_FAILURES_PER_ACCOUNT", "10"))
CHAT_LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("CHAT_LOGIN_FAILURES_PER_ADDRESS", "30"))
CHAT_LOGIN_WINDOW_SECONDS = float(os.environ.get("CHAT_LOGIN_WINDOW_SECONDS", "900"))
CHAT_SIGNUPS_PER_ADDRESS = int(os.environ.get("CHAT_SIGNUPS_PER_ADDRESS", "5"))
CHAT_SIGNUP_WINDOW_SECONDS = float(os.environ.get("CHAT_SIGNUP_WINDOW_SECONDS", "3600"))
# The client's address is REMOTE_ADDR unless this names a header set by your own proxy (e.g.
# X-Forwarded-For, whose last entry is used: the one that proxy appended). Never set it without a
# proxy that overwrites or appends the header, or anyone can pick their own address.
CLIENT_IP_HEADER = os.environ.get("CLIENT_IP_HEADER", "")

# Attachments (chat/uploads.py, chat/attachments.py): the largest file accepted, the most pixels an
# image may decode to (at 4 bytes a pixel: 100 MB; kinds that cost more per pixel get fewer), how
# many images one process decodes at once (a person's second one at the same time is refused; the
# others wait up to CHAT_UPLOAD_DECODE_WAIT_SECONDS for a slot), and the box thumbnails fit in.
CHAT_UPLOAD_MAX_BYTES = int(os.environ.get("CHAT_UPLOAD_MAX_BYTES", str(10 * 1024 * 1024)))
CHAT_UPLOAD_MAX_PIXELS = int(os.environ.get("CHAT_UPLOAD_MAX_PIXELS", str(25_000_000)))
CHAT_UPLOAD_DECODES = int(os.environ.get("CHAT_UPLOAD_DECODES", "2"))
CHAT_UPLOAD_DECODE_WAIT_SECONDS = float(os.environ.get("CHAT_UPLOAD_DECODE_WAIT_SECONDS", "10"))
CHAT_THUMBNAIL_SIZE = (480, 360)

# Background work (chat/jobs.py): Django's tasks framework with django-tasks-db, whose queue is a table
# in the database above, run by `manage.py db_worker` (`make run` starts one; production supervises its
# own). TASKS_BACKEND=immediate runs each task inside the process that enqueues it, at once (after the
# commit): for tests that are not about the worker, never for production (a slow mail server would
# hold up the post, and nothing is retried).
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
}
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[os.environ.get("TASKS_BACKEND", "database")]}}
# A job that raises RetryLater runs again after CHAT_TASK_BACKOFF_SECONDS, then twice that, and so on
# (at most CHAT_TASK_BACKOFF_MAX_SECONDS), until its attempts are spent; then it is marked failed.
CHAT_TASK_BACKOFF_SECONDS = float(os.environ.get("CHAT_TASK_BACKOFF_SECONDS", "30"))
CHAT_TASK_BACKOFF_MAX_SECONDS = float(os.environ.get("CHAT_TASK_BACKOFF_MAX_SECONDS", "3600"))
# A task still running this long after a worker took it is taken to be lost with its worker (kill -9,
# a crash, the machine gone) and is queued again, counted as an attempt. Every job must finish well
# within it (mail and webhooks time out after seconds). Workers look for such tasks every
# CHAT_TASK_SWEEP_SECONDS.
CHAT_TASK_STALE_SECONDS = float(os.environ.get("CHAT_TASK_STALE_SECONDS", "300"))
CHAT_TASK_SWEEP_SECONDS = float(os.environ.get("CHAT_TASK_SWEEP_SECONDS", "30"))

# Email for missed mentions (chat/mentionmail.py), through Django's mailers. EMAIL_BACKEND: `console`
# (development's default: emails are printed), `file` (one file per email in EMAIL_FILE_PATH; the
# end-to-end tests read them there) or `smtp` (production's default, EMAIL_HOST and so on).
EMAIL_BACKEND_NAME = os.environ.get("EMAIL_BACKEND", "console" if DEBUG else "smtp")
_MAILER_OPTIONS: dict[str, dict] = {
    "console": {},
    "file": {"file_path": os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))},
    "smtp": {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": int(os.environ.get("EMAIL_PORT", "25")),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        # Seconds: a stuck mail server holds up the worker (and its shutdown) no longer.
        "timeout": float(os.environ.get("EMAIL_TIMEOUT", "10")),
    },
}
_MAIL_BACKENDS = {"console": "console", "file": "filebased", "smtp": "smtp"}
MAILERS = {
    "default": {
        "BACKEND": f"django.core.mail.backends.{_MAIL_BACKENDS[EMAIL_BACKEND_NAME]}.EmailBackend",
        "OPTIONS": _MAILER_OPTIONS[EMAIL_BACKEND_NAME],
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Parley <parley@localhost>")
# The address links in emails start with (the site as its users reach it).
CHAT_SITE_URL = os.environ.get("CHAT_SITE_URL", "http://127.0.0.1:8000")
# One email per person and room, and per address and room, per this many seconds at most.
CHAT_MENTION_EMAIL_WINDOW_SECONDS = float(os.environ.get("CHAT_MENTION_EMAIL_WINDOW_SECONDS", "600"))
# Confirming an address before any mention email goes to it: how long the emailed link works, how
# often one account may ask for a link, and how many links one address gets a day from all accounts.
CHAT_EMAIL_CONFIRMATION_MAX_AGE_SECONDS = int(
    os.environ.get("CHAT_EMAIL_CONFIRMATION_MAX_AGE_SECONDS", "259200")
)
CHAT_CONFIRMATION_RESEND_SECONDS = float(os.environ.get("CHAT_CONFIRMATION_RESEND_SECONDS", "60"))
CHAT_CONFIRMATION_EMAILS_PER_ADDRESS = int(os.environ.get("CHAT_CONFIRMATION_EMAILS_PER_ADDRESS", "5"))
