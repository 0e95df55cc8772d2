"""Tell the order pages when a payment is tried again: ``order_events`` with the order id.

The journey's one input that is not an event is the payment's attempt count ("trying again
(attempt 3 of 9)"); a retry writes no outbox row, so without this the streams of a silent
gateway's order would sit still between events. A row trigger, only when ``attempts`` changes:
one notification per gateway attempt.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION shop_payment_attempt_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_events', NEW.order_id);
    RETURN NULL;
END $$;
CREATE TRIGGER shop_payment_attempt_notify AFTER UPDATE OF attempts ON payments_payment
    FOR EACH ROW WHEN (NEW.attempts IS DISTINCT FROM OLD.attempts) EXECUTE FUNCTION shop_payment_attempt_notify();
"""
REVERSE = """
DROP TRIGGER IF EXISTS shop_payment_attempt_notify ON payments_payment;
DROP FUNCTION IF EXISTS shop_payment_attempt_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("storefront", "0001_initial"), ("payments", "0002_gateway_authorization_card")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
