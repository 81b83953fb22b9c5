"""Settings of the baseline: what the services use, minus everything but one insert.

Same server-side choices as the services (no debug, persistent connections with health
checks, JSON only, the same two middlewares), no authentication, one app with one table.
"""

import os

import dj_database_url

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "insecure-bench-baseline-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "rest_framework", "rows"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "baseline_site.urls"
DATABASES = {
    "default": dict(
        dj_database_url.parse(
            os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/bench_baseline",
            conn_max_age=None,
            conn_health_checks=True,
        )
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
