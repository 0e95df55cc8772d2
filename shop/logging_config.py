"""The logging configuration: structlog, one line per event, the request id on every line.

Readable lines by default (the demo's console); ``LOG_FORMAT=json`` for a log collector.
Standard-library loggers (Django, Celery, the pipeline) go through the same renderer. Kept out
of ``settings.py`` so that the settings read as settings; ``settings.py`` calls both functions.
"""

from __future__ import annotations

from typing import Any

import structlog

from shop.pipeline.request_context import add_request_id

PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_request_id,
]


def logging_settings(log_format: str, level: str) -> dict[str, Any]:
    """Django's ``LOGGING`` for ``log_format`` ("console" or "json") at ``level``."""
    return {
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
                "foreign_pre_chain": PRE_CHAIN,
            },
            "json": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                ],
                "foreign_pre_chain": PRE_CHAIN,
            },
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["routine"]}},
        "root": {"handlers": ["console"], "level": level},
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


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *PRE_CHAIN,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
