"""Why an order was cancelled, in the customer's words.

The staff reason (``Order.cancel_reason``) may name fraud rules, scores,
reviewers or gateway codes. What a customer reads (the order page, the API's
``reason``, the cancellation email) depends only on which kind of step
cancelled the order, so nothing internal can leak through it.
"""

from __future__ import annotations

# The event that cancelled an order -> the reason a customer reads.
CANCEL_REASONS: dict[str, str] = {
    "payment.declined": "your card was declined",
    "payment.failed": "we could not take the payment",
    "payment.capture_failed": "we could not take the payment",
    "fraud.rejected": "we could not accept this order",
    "fraud.review_expired": "we could not finish checking your order in time",
    "stock.unavailable": "an item in your order is out of stock",
}
DEFAULT_CANCEL_REASON = "the order could not be completed"


def customer_reason_for(cause: str) -> str:
    """The customer's reason for a cancellation caused by the event ``cause``."""
    return CANCEL_REASONS.get(cause, DEFAULT_CANCEL_REASON)
