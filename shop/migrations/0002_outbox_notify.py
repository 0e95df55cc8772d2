"""Wake the relay at commit: a statement trigger NOTIFYs on every outbox insert.

NOTIFY is delivered only when the inserting transaction commits, and is only a
hint: the relay also sweeps every second, since a notification sent while it
was disconnected is never replayed.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION shop_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER shop_outbox_notify AFTER INSERT ON shop_outboxevent
    FOR EACH STATEMENT EXECUTE FUNCTION shop_outbox_notify();
"""
REVERSE = """
DROP TRIGGER IF EXISTS shop_outbox_notify ON shop_outboxevent;
DROP FUNCTION IF EXISTS shop_outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
