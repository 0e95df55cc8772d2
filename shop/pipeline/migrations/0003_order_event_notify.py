"""Tell the order pages which order changed: a statement trigger NOTIFYs ``order_events`` with
each order id an outbox insert wrote.

The relay's ``outbox`` notification carries no payload (it only has to wake), so the web
servers' listeners could not tell from it which open order page to redraw. A statement trigger
with a transition table sends one notification per distinct order of the statement (PostgreSQL
also folds identical notifications of one transaction into one); the transaction already
notifies ``outbox``, so it takes no new lock at commit. Like every NOTIFY it is a hint, sent at
commit: a listener that was away re-reads its orders when it is back.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION shop_order_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_events', changed.order_id)
        FROM (SELECT DISTINCT order_id FROM new_rows WHERE order_id <> '') AS changed;
    RETURN NULL;
END $$;
CREATE TRIGGER shop_order_event_notify AFTER INSERT ON shop_outboxevent
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION shop_order_event_notify();
"""
REVERSE = """
DROP TRIGGER IF EXISTS shop_order_event_notify ON shop_outboxevent;
DROP FUNCTION IF EXISTS shop_order_event_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("pipeline", "0002_outbox_parked_index"), ("shop", "0004_models_moved_to_pipeline_and_storefront")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
