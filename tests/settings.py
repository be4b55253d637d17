"""Test settings; ``GEARTRAIN_TEST_DB`` picks sqlite, postgresql or mysql."""

from __future__ import annotations

import os
import tempfile

from geartrain.compat import TASKS_APP

DB = os.environ.get("GEARTRAIN_TEST_DB", "sqlite")
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
# Every admin test logs a user in; PBKDF2's million-odd rounds cost up to a second
# each on a slow machine. Django's own advice for test settings.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *([TASKS_APP] if TASKS_APP else []),
    "geartrain",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"

_SQLITE_FILE = os.environ.get(
    "GEARTRAIN_SQLITE_FILE",
    os.path.join(tempfile.gettempdir(), "geartrain-tests.sqlite3"),
)

if DB == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("GEARTRAIN_PG_NAME", "postgres"),
            "USER": os.environ.get("GEARTRAIN_PG_USER", "postgres"),
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "TEST": {
                "NAME": os.environ.get("GEARTRAIN_PG_TEST_NAME", "geartrain_test")
            },
        }
    }
elif DB == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("GEARTRAIN_MYSQL_NAME", "test"),
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": os.environ.get("GEARTRAIN_MYSQL_TEST_NAME", "geartrain_test")
            },
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _SQLITE_FILE,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": _SQLITE_FILE},
        }
    }

TASKS = {
    "default": {
        "BACKEND": "geartrain.backends.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
    }
}

GEARTRAIN = {
    "POLL_INTERVAL": 0.05,
    "HEARTBEAT_INTERVAL": 0.5,
    "REAP_INTERVAL": 0.5,
    "LEASE_SECONDS": 3.0,
    "RETRY_DELAY": 0.0,
    "RETRY_JITTER": False,
    "SHUTDOWN_TIMEOUT": 10.0,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"geartrain": {"handlers": ["console"], "level": "WARNING"}},
}
