"""The operations part's URLs; the project's ``shop/urls.py`` includes them."""

from django.urls import path

from shop.ops import actions, views

urlpatterns = [
    path("ops/", views.ops_page, name="ops"),
    path("ops/stream", views.stream, name="ops-stream"),
    path("ops/snapshot.json", views.snapshot_json, name="ops-snapshot"),
    path("ops/actions/queue", actions.queue_action, name="ops-queue-action"),
    path("ops/actions/redrive", actions.redrive_action, name="ops-redrive"),
    path("ops/actions/replay", actions.replay_action, name="ops-replay"),
    path("ops/actions/scenario", actions.scenario_action, name="ops-scenario"),
    path("metrics", views.metrics, name="metrics"),
]
