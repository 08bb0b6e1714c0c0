"""Order events are append-only at the database too: on PostgreSQL a trigger
refuses every UPDATE and DELETE of a row, whatever code or SQL asks (as
accounts 0003 does for the audit log). SQLite relies on the model.
TRUNCATE is not blocked: the test runner empties tables with it."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION market_orderevent_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'market_orderevent is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS market_orderevent_append_only ON market_orderevent;
CREATE TRIGGER market_orderevent_append_only
    BEFORE UPDATE OR DELETE ON market_orderevent
    FOR EACH ROW EXECUTE FUNCTION market_orderevent_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS market_orderevent_append_only ON market_orderevent;
DROP FUNCTION IF EXISTS market_orderevent_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0006_order_events_kill_switch"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
