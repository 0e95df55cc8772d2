"""Settings, all from the environment, with a development default for each.

Production differs from the demo only by environment variables: see
``.env.example`` for the full list with their defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote

import environ
import structlog
from django.core.exceptions import ImproperlyConfigured

from notifications.mailers import mailers_from_url
from shop.local.bootstrap import PROJECT_ROOT, bootstrap, broker_dir
from shop.pipeline.queues import DEAD_LETTER_QUEUE, DELIVERY_LIMIT, celery_queues, celery_routes, is_rabbitmq
from shop.pipeline.request_context import add_request_id

# Every entry point (manage.py, the Celery CLI, WSGI, pytest) reads these settings,
# so this is where the embedded default is decided: see shop/local/bootstrap.py.
bootstrap()

BASE_DIR = PROJECT_ROOT
env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# No key from the repository ever signs anything outside DEBUG: the app refuses to start.
# (manage.py gives a checkout without SECRET_KEY a generated one of its own: shop/local/bootstrap.py.)
PLACEHOLDER_SECRET_KEYS = frozenset(
    {"dev-only-insecure-key-change-me-in-production-0123456789", "change-me-to-a-long-random-string", "change-me"}
)
SECRET_KEY = env.str("SECRET_KEY", default="").strip()
if not DEBUG and (not SECRET_KEY or SECRET_KEY in PLACEHOLDER_SECRET_KEYS):
    raise ImproperlyConfigured(
        "SECRET_KEY is unset, empty or a placeholder from the repository, and DEBUG is off. Set it to a long "
        "random value: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
SECRET_KEY = SECRET_KEY or "debug-only-insecure-key"
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # Swagger UI from its own static files: /api/docs works offline
    "django_structlog",
    "shop",
    "shop.pipeline",
    "shop.storefront",
    "orders",
    "orders.payments",
    "orders.fraud",
    "inventory",
    "shipping",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "shop.middleware.RequestIdMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "shop.middleware.ApiBodyGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.storefront.context_processors.cart",
            ],
        },
    },
]

# The database is the truth. Django's psycopg pool with CONN_MAX_AGE=0: a WSGI
# worker reuses connections without holding one per idle thread.
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/shop")}
# A Unix-socket URL carries its directory percent-encoded as the host (the form psql understands).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env.bool("DATABASE_POOL", default=False):  # Django's pool is psycopg-pool's ConnectionPool
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": env.int("DATABASE_POOL_SIZE", default=8)}
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_shop")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Serve the apps' static files directly too, so a checkout without collectstatic still has its CSS.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / ".demo" / "media")))
LOGIN_URL = "admin:login"

# Bad input never gets a 500: a body larger than this is answered 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=64 * 1024)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"

# Email: SMTP in production (EMAIL_URL=smtp://user:password@host:587), the stored mailbox in
# the demo. Django 6.1's MAILERS (the EMAIL_BACKEND/EMAIL_HOST family is deprecated); see
# notifications/mailers.py. EMAIL_TIMEOUT bounds each SMTP socket operation.
MAILERS = mailers_from_url(env.str("EMAIL_URL", default=""), timeout=env.float("EMAIL_TIMEOUT", default=10.0))
# A claim in "sending" older than this, with no outcome recorded, is "in doubt": no live sender
# holds a claim longer (a worker's task is killed at CELERY_TASK_TIME_LIMIT).
EMAIL_CLAIM_SECONDS = env.float("EMAIL_CLAIM_SECONDS", default=120.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="orders@shop.example")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# ---- Celery: at-least-once delivery that survives crashes ------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//")
_rabbit = is_rabbitmq(CELERY_BROKER_URL)
if _rabbit:
    # A publish is done only when RabbitMQ confirmed it (required by quorum queues).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
else:
    from shop.local.fs_transport import transport_options

    # The same delivery limit and dead-letter queue as the quorum queues on RabbitMQ.
    CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(
        broker_dir(), delivery_limit=DELIVERY_LIMIT, dead_letter_queue=DEAD_LETTER_QUEUE
    )
CELERY_TASK_QUEUES = celery_queues(rabbitmq=_rabbit)
CELERY_TASK_ROUTES = celery_routes()
CELERY_TASK_DEFAULT_QUEUE = "orders"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False  # a failed message is rejected: dead-lettered on RabbitMQ
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_HEARTBEAT = 10
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env.float("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", default=10.0)
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TASK_IGNORE_RESULT = True  # the order's state in PostgreSQL is the truth
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A fraud review holds stock and an authorisation: past this deadline the order is
# cancelled with its compensations (hours in production, ``manage.py demo`` sets 120 s).
# A beat sweep enforces it, never a countdown task.
FRAUD_REVIEW_DEADLINE_SECONDS = env.float("FRAUD_REVIEW_DEADLINE_SECONDS", default=24 * 3600)
FRAUD_REVIEW_SWEEP_SECONDS = env.float("FRAUD_REVIEW_SWEEP_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE = {
    "carrier-tracking": {
        "task": "shipping.tasks.poll_carrier",
        "schedule": env.float("CARRIER_POLL_SECONDS", default=1.0),
        "options": {"expires": 10},  # a backlog of polls is worthless: drop stale ones
    },
    "fraud-review-deadline": {
        "task": "orders.fraud.tasks.expire_reviews",
        "schedule": FRAUD_REVIEW_SWEEP_SECONDS,
        "options": {"queue": "fraud", "expires": max(10.0, 2 * FRAUD_REVIEW_SWEEP_SECONDS)},  # the next sweep replaces it
    },
}

# ---- The simulated outside world (fault switches: see shop/pipeline/faults.py) -------
# Off unless the demo, the chaos runner or the tests turn it on: a production
# configuration ignores FAULT_* variables and FaultSetting rows, and the admin refuses changes.
FAULTS_ENABLED = env.bool("FAULTS_ENABLED", default=False)
PIPELINE_MAX_RETRIES = env.int("PIPELINE_MAX_RETRIES", default=8)
# How long the simulated gateway holds an authorisation; a capture after that is declined.
GATEWAY_AUTHORIZATION_TTL_SECONDS = env.float("GATEWAY_AUTHORIZATION_TTL_SECONDS", default=7 * 24 * 3600)
PIPELINE_RETRY_BACKOFF_MAX = env.int("PIPELINE_RETRY_BACKOFF_MAX", default=60)
OUTBOX_CLAIM_SECONDS = env.int("OUTBOX_CLAIM_SECONDS", default=30)
OUTBOX_SWEEP_SECONDS = env.float("OUTBOX_SWEEP_SECONDS", default=1.0)
# A row that fails to publish backs off on its own (base * 2^n with jitter, capped) and is
# parked as a dead letter after this many attempts; a publisher confirm is awaited at most this long.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
OUTBOX_BACKOFF_BASE = env.float("OUTBOX_BACKOFF_BASE", default=1.0)
OUTBOX_BACKOFF_MAX = env.float("OUTBOX_BACKOFF_MAX", default=60.0)
OUTBOX_CONFIRM_TIMEOUT = env.float("OUTBOX_CONFIRM_TIMEOUT", default=10.0)

# ---- Logs: structlog, one line per event, the request id on every line ---------
# Readable lines by default (the demo's console); LOG_FORMAT=json for a log collector.
# Standard-library loggers (Django, Celery, the pipeline) go through the same renderer.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'console' or 'json', not {LOG_FORMAT!r}")
_LOG_PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_request_id,
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"routine": {"()": "shop.pipeline.request_context.RoutineWorkFilter"}},
    "formatters": {
        "console": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Plain tracebacks: rich's would print every frame's local variables (card fields too).
                structlog.dev.ConsoleRenderer(
                    colors=False, pad_level=False, pad_event_to=0, exception_formatter=structlog.dev.plain_traceback
                ),
            ],
            "foreign_pre_chain": _LOG_PRE_CHAIN,
        },
        "json": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            "foreign_pre_chain": _LOG_PRE_CHAIN,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["routine"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every request it makes at INFO (the demo's own readiness checks among them).
    # Flower's inspector warns each time a worker misses its 1 s inspect reply (a worker still
    # booting, or busy on 2 cores) and asks again by itself: not an operator's matter.
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "flower.inspector": {"level": "ERROR"},
    },
}
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *_LOG_PRE_CHAIN,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
# django-structlog: a request_started/request_finished pair per request (the order page polls
# the API every second: successes at DEBUG, 4xx/5xx stay visible), and with Celery enabled
# the logging context travels in the message headers to the task that handles it.
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG  # "task_enqueued": the worker logs its receipt anyway
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_STATUS_2XX_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # no client addresses in the logs
