"""What an operator runs before going live, with production values in the environment."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7Qp-production-like-secret-key-with-plenty-of-entropy-3fK9zLmN2vB8",
    "ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://parley:secret@db.example.com:5432/parley",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in PRODUCTION}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**clean, "DJANGO_SETTINGS_MODULE": "site_config.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_redis_url_switches_the_channel_layer_to_redis():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.CHANNEL_LAYERS['default']['BACKEND'])",
        **PRODUCTION,
    )
    assert result.stdout.strip().splitlines()[-1] == "channels_redis.pubsub.RedisPubSubChannelLayer", (
        result.stderr
    )
