"""The layout keeps its shape: imports only go down the layers, no import cycles, no module
over ~300 lines, and the tables moved to the parts that own them kept their rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests import layering

MAX_LINES = 300


def test_imports_only_go_down_the_layers():
    assert layering.forbidden_imports(layering.import_graph()) == []


def test_no_import_cycles():
    assert layering.cycles(layering.import_graph()) == []


def test_the_checks_see_a_forbidden_import_and_a_cycle(tmp_path: Path):
    """The two checks above are only worth something if they can fail: a small tree with one
    stage importing the storefront and two pipeline modules importing each other."""
    files = {
        "shop/__init__.py": "",
        "shop/pipeline/__init__.py": "",
        "shop/pipeline/outbox.py": "from shop.pipeline import relay\n",
        "shop/pipeline/relay.py": "def f():\n    from . import outbox\n",
        "shop/storefront/__init__.py": "",
        "shop/storefront/views.py": "",
        "orders/__init__.py": "",
        "orders/services.py": "from shop.storefront.views import x\nfrom shop.pipeline import outbox\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = layering.import_graph(tmp_path)
    assert layering.forbidden_imports(graph) == ["orders.services (stage) -> shop.storefront.views (storefront)"]
    assert layering.cycles(graph) == [["shop.pipeline.outbox", "shop.pipeline.relay"]]


def test_no_module_is_over_300_lines():
    long = {
        str(path.relative_to(layering.ROOT)): n
        for path in layering.project_modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


MOVED = {
    "pipeline": ["OutboxEvent", "ProcessedMessage", "DeadLetter", "FaultSetting"],
    "storefront": ["Product", "IdempotencyKey"],
}
BEFORE = [("shop", "0003_relay_backoff_and_parking"), ("pipeline", None), ("storefront", None)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")  # its relay and beat write to tables this drops
def test_a_database_from_before_the_move_keeps_its_rows_and_tables():
    """Migrate back to when ``shop`` owned the tables, write rows through that app's models, then
    migrate forward: the same rows are read through the new apps, and the admin's content type
    moved with them."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state([BEFORE[0], ("contenttypes", "0002_remove_content_type_name")]).apps
    old.get_model("shop", "OutboxEvent").objects.create(kind="order.placed", order_id="ORD-MOVED")
    old.get_model("shop", "Product").objects.create(sku="SKU-MOVED", name="Moved", price="1.00")
    content_type = old.get_model("contenttypes", "ContentType")
    # Going back renamed it too; a database from before the move has it under ``shop``.
    content_type.objects.filter(app_label="pipeline", model="outboxevent").delete()
    moved_type, _ = content_type.objects.get_or_create(app_label="shop", model="outboxevent")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert apps.get_model("pipeline", "OutboxEvent").objects.get(order_id="ORD-MOVED").kind == "order.placed"
    assert apps.get_model("storefront", "Product").objects.get(sku="SKU-MOVED").name == "Moved"
    moved_type.refresh_from_db()
    assert (moved_type.app_label, moved_type.model) == ("pipeline", "outboxevent")
    for label, names in MOVED.items():
        for name in names:
            assert apps.get_model(label, name)._meta.db_table == f"shop_{name.lower()}"
