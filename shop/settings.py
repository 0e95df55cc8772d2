"""Settings, all from the environment, with a development default for each.

Production differs from the demo only by environment variables: see
``.env.example`` for the full list with their defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from notifications.mailers import mailers_from_url
from shop.connections import configure as configure_database
from shop.local.bootstrap import PROJECT_ROOT, bootstrap, broker_dir
from shop.logging_config import configure_structlog, logging_settings
from shop.pipeline.queues import DEAD_LETTER_QUEUE, DELIVERY_LIMIT, celery_queues, celery_routes, is_rabbitmq

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
    "shop.ops",
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
    "shop.middleware.CheckoutLatencyMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "shop.middleware.ApiBodyGuardMiddleware",
    "shop.middleware.OverloadMiddleware",
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
                "shop.storefront.context_processors.cart_count",
            ],
        },
    },
]

# The database is the truth. The web server lends connections from psycopg's pool; every
# other process keeps one persistent, health-checked connection: see shop/connections.py.
# SHOP_PROCESS_ROLE is "web" in the web server (set by shop/wsgi.py), "worker" otherwise.
PROCESS_ROLE = env.str("SHOP_PROCESS_ROLE", default="worker")
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/shop")}
# A Unix-socket URL carries its directory percent-encoded as the host (the form psql understands).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
configure_database(DATABASES["default"], env, PROCESS_ROLE)
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
# Task events (Flower's) are sent without confirms; the tasks' own messages keep them.
CELERY_WORKER_CONSUMER = "shop.pipeline.worker_events:Consumer"
CELERY_TASK_QUEUES = celery_queues(rabbitmq=_rabbit)
CELERY_TASK_ROUTES = celery_routes()
CELERY_TASK_DEFAULT_QUEUE = "orders"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False  # a failed message is rejected: dead-lettered on RabbitMQ
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the connection before and after every task unless this is set
# (then every this-many tasks): shop/celery.py health-checks and ages it instead, as Django
# does around a request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
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
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=True)  # Flower shows nothing without them
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A fraud review holds stock and an authorisation: past this deadline the order is
# cancelled with its compensations (hours in production, ``manage.py demo`` sets 120 s).
# A beat sweep enforces it, never a countdown task.
FRAUD_REVIEW_DEADLINE_SECONDS = env.float("FRAUD_REVIEW_DEADLINE_SECONDS", default=24 * 3600)
FRAUD_REVIEW_SWEEP_SECONDS = env.float("FRAUD_REVIEW_SWEEP_SECONDS", default=5.0)
# Email domains the velocity rule (many orders from one email) ignores: the demo's test
# addresses, so that every test card can be tried in a row (``manage.py demo`` sets example.com).
FRAUD_VELOCITY_EXEMPT_DOMAINS = env.list("FRAUD_VELOCITY_EXEMPT_DOMAINS", default=[])
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

# POST /api/checkout/sync: the synchronous foil the bench compares with; 404 unless turned on.
SYNC_CHECKOUT_ENABLED = env.bool("SYNC_CHECKOUT_ENABLED", default=False)

# ---- Who gets the cores in a spike (shop/pipeline/priority.py; 0 turns a level off) ----
# Workers run nicer than the web server and relay; emails, labels and polls nicer still.
WORKER_NICENESS_CRITICAL = env.int("WORKER_NICENESS_CRITICAL", default=5)
WORKER_NICENESS_LOW = env.int("WORKER_NICENESS_LOW", default=15)
# A niced worker's PostgreSQL backends take its niceness, where the database is on this machine.
NICE_DATABASE_BACKENDS = env.bool("NICE_DATABASE_BACKENDS", default=True)

# /ops/ and /metrics (shop/ops/; README "Operations page").
OPS_STALE_SECONDS = env.float("OPS_STALE_SECONDS", default=30.0)
OPS_STUCK_SECONDS = env.float("OPS_STUCK_SECONDS", default=120.0)
OPS_STREAM_SECONDS = env.float("OPS_STREAM_SECONDS", default=300.0)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# ---- The simulated outside world (fault switches: see shop/pipeline/faults.py) -------
# Off (FAULT_* and FaultSetting rows ignored) unless the demo, chaos runner or tests turn it on.
FAULTS_ENABLED = env.bool("FAULTS_ENABLED", default=False)
PIPELINE_MAX_RETRIES = env.int("PIPELINE_MAX_RETRIES", default=8)
# How long the simulated gateway holds an authorisation; a capture after that is declined.
GATEWAY_AUTHORIZATION_TTL_SECONDS = env.float("GATEWAY_AUTHORIZATION_TTL_SECONDS", default=7 * 24 * 3600)
PIPELINE_RETRY_BACKOFF_MAX = env.int("PIPELINE_RETRY_BACKOFF_MAX", default=60)
OUTBOX_CLAIM_SECONDS = env.int("OUTBOX_CLAIM_SECONDS", default=30)
OUTBOX_SWEEP_SECONDS = env.float("OUTBOX_SWEEP_SECONDS", default=1.0)
RELAY_HEARTBEAT_SECONDS = env.float("RELAY_HEARTBEAT_SECONDS", default=5.0)  # stale after three missed
# A row that fails to publish backs off on its own (base * 2^n with jitter, capped) and is
# parked as a dead letter after this many attempts; a publisher confirm is awaited at most this long.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
OUTBOX_BACKOFF_BASE = env.float("OUTBOX_BACKOFF_BASE", default=1.0)
OUTBOX_BACKOFF_MAX = env.float("OUTBOX_BACKOFF_MAX", default=60.0)
OUTBOX_CONFIRM_TIMEOUT = env.float("OUTBOX_CONFIRM_TIMEOUT", default=10.0)

# ---- Logs: structlog, one line per event, the request id on every line (shop/logging_config.py) --
# Readable lines by default (the demo's console); LOG_FORMAT=json for a log collector.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'console' or 'json', not {LOG_FORMAT!r}")
LOGGING = logging_settings(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
configure_structlog()
# django-structlog: a request_started/request_finished pair per request (the order page polls
# the API every second: successes at DEBUG, 4xx/5xx stay visible), and with Celery enabled
# the logging context travels in the message headers to the task that handles it.
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG  # "task_enqueued": the worker logs its receipt anyway
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_STATUS_2XX_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # no client addresses in the logs
