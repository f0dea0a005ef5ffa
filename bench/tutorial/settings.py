"""The Channels tutorial's chat as a tiny project: no database, in-memory channel layer."""

SECRET_KEY = "bench-tutorial-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
ASGI_APPLICATION = "bench.tutorial.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
DATABASES: dict = {}
USE_TZ = True
