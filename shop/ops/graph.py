"""The pipeline map as a graph for the page: drawn from ``shop/pipeline/events.py`` itself.

Every subscription of ``PIPELINE`` becomes an edge from its event to the task that consumes it
(a node per task, labelled with its queue), so a subscription added to the map is on the page with
no other change. To lay the stages out in the order they run, the task nodes are joined to the
events they emit (``EMITS``, used for the drawing only: the relay publishes whatever the outbox
holds); an emitted event nobody subscribes to is left out, and a task missing from ``EMITS`` is
still drawn, as a leaf. The browser lays it out with dagre (Cytoscape.js, vendored).
"""

from __future__ import annotations

from typing import Any

from shop.pipeline import events

CHECKOUT = "checkout"

# Who emits what, for the layout: the checkout, each consuming task, and the beat tasks whose
# events enter the map (carrier scans, expired reviews). Staff decisions emit fraud.cleared and
# fraud.rejected from the admin: drawn as the fraud screening's, which they stand in for.
EMITS: dict[str, tuple[str, ...]] = {
    CHECKOUT: ("order.placed",),
    "orders.payments.tasks.authorize_payment": ("payment.authorized", "payment.declined", "payment.failed"),
    "orders.fraud.tasks.screen_order": ("fraud.cleared", "fraud.review", "fraud.rejected"),
    "inventory.tasks.reserve_stock": ("stock.reserved", "stock.unavailable"),
    events.ORDER_STEP: ("order.ready", "order.cancelled"),
    "orders.payments.tasks.capture_payment": ("payment.captured", "payment.capture_failed"),
    "shipping.tasks.create_shipment": ("shipment.created",),
    "shipping.tasks.poll_carrier": ("shipment.in_transit", "shipment.delivered"),
    "orders.fraud.tasks.expire_reviews": ("fraud.review_expired",),
}
# Sources that consume nothing from the map: the checkout and beat's periodic tasks.
SOURCES: dict[str, tuple[str, str]] = {
    CHECKOUT: ("checkout (web)", ""),
    "shipping.tasks.poll_carrier": ("poll_carrier (beat)", "shipping"),
    "orders.fraud.tasks.expire_reviews": ("expire_reviews (beat)", "fraud"),
}


def short(task: str) -> str:
    """``orders.payments.tasks.authorize_payment`` -> ``authorize_payment``."""
    return task.rsplit(".", 1)[-1]


def _nodes(pipeline: tuple[events.Subscription, ...]) -> list[dict[str, Any]]:
    """An event node per consumed event, a task node per consuming task (with its queue), and a
    source node for the checkout and each beat task whose events the map consumes."""
    consumed = list(dict.fromkeys(sub.event for sub in pipeline))
    tasks = dict.fromkeys(sub.task for sub in pipeline)
    nodes: list[dict[str, Any]] = [{"data": {"id": f"event:{e}", "label": e, "kind": "event"}} for e in consumed]
    for task in tasks:
        queue = next(sub.queue for sub in pipeline if sub.task == task)
        nodes.append({"data": {"id": f"task:{task}", "label": short(task), "kind": "task", "task": task, "queue": queue}})
    for source, (label, queue) in SOURCES.items():
        if source not in tasks and any(e in consumed for e in EMITS[source]):
            nodes.append({"data": {"id": f"task:{source}", "label": label, "kind": "source", "task": source, "queue": queue}})
    return nodes


def _edge(edge_id: str, source: str, target: str, kind: str, **data: str) -> dict[str, Any]:
    return {"data": {"id": edge_id, "source": source, "target": target, "kind": kind, **data}}


def map_graph(pipeline: tuple[events.Subscription, ...] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Cytoscape elements for the map: event, task and source nodes, one ``subscription`` edge
    per subscription, and ``emits`` edges (for the layout) between nodes that are drawn."""
    pipeline = events.PIPELINE if pipeline is None else pipeline
    nodes = _nodes(pipeline)
    present = {n["data"]["id"] for n in nodes}
    edges = [
        _edge(f"sub:{s.event}->{s.task}", f"event:{s.event}", f"task:{s.task}", "subscription", **s._asdict()) for s in pipeline
    ]
    for task, emitted in EMITS.items():
        for event in emitted:
            if f"task:{task}" in present and f"event:{event}" in present:
                edges.append(_edge(f"emit:{task}->{event}", f"task:{task}", f"event:{event}", "emits"))
    return {"nodes": nodes, "edges": edges}
