"""The request id of the work in hand, carried from the HTTP request into the outbox
row and from the message headers into the worker's logs."""

from __future__ import annotations

import contextvars
import logging

import structlog
from django.dispatch import receiver
from django_structlog import signals as structlog_signals

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Put the request id on every log record, so one order's trail can be followed
    from the checkout request through the relay into each worker's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def add_request_id(_logger: object, _method: str, event_dict: dict) -> dict:
    """structlog processor: the request id bound here wins over django-structlog's own.

    ``RequestIdMiddleware`` validates an incoming ``X-Request-ID`` (and echoes it), the relay
    re-binds the id stored on the outbox row and ``PipelineTask`` the one in the message
    headers, so one id follows an order from the checkout into every worker's log. Without
    this, django-structlog would log a fresh uuid of its own for the same request.
    """
    request_id = current_request_id()
    if request_id:
        event_dict["request_id"] = request_id
    return event_dict


@receiver(structlog_signals.bind_extra_request_metadata)
def _bind_validated_request_id(request: object, **_kwargs: object) -> None:
    """django-structlog binds a uuid of its own: replace it with the id ``RequestIdMiddleware``
    chose, so the context it sends along with a published task names the same request."""
    request_id = getattr(request, "request_id", None)
    if request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id)


# The beat's routine work: logged at DEBUG so that a console shows orders, not the
# once-a-second carrier poll (a poll that moves a parcel logs that under the order's id).
ROUTINE_TASKS = ("shipping.tasks.poll_carrier", "orders.fraud.tasks.expire_reviews", "carrier-tracking", "fraud-review-deadline")


class RoutineWorkFilter(logging.Filter):
    """Demote the INFO lines Celery and the pipeline write for every routine beat task
    ("Sending due task", "received", "succeeded") to DEBUG, and drop them unless DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not any(name in record.getMessage() for name in ROUTINE_TASKS):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
