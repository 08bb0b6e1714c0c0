"""The books at the database level, on PostgreSQL (SQLite, the embedded
default, relies on the models and the services alone):

- journal entries, journal lines and cash deposits are append-only: a trigger
  refuses every UPDATE and DELETE of a row, whatever code or SQL asks;
- every journal entry balances: a deferred constraint trigger checks at
  commit that the lines of each entry written in the transaction sum to zero,
  so not even a bug that bypasses ledger_post can commit an unbalanced entry.

TRUNCATE is deliberately not blocked: the test runner empties tables with it
between transactional tests, and only the table's owner may truncate.
"""

from django.db import migrations

APPEND_ONLY_TABLES = ("clearing_journalentry", "clearing_journalline", "clearing_cashdeposit")

CREATE_FUNCTIONS = """
CREATE OR REPLACE FUNCTION clearing_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION clearing_check_entry_balanced() RETURNS trigger AS $$
DECLARE
    total numeric;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM clearing_journalline WHERE entry_id = NEW.entry_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance: its lines sum to %', NEW.entry_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS clearing_journalline_balanced ON clearing_journalline;
CREATE CONSTRAINT TRIGGER clearing_journalline_balanced
    AFTER INSERT ON clearing_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION clearing_check_entry_balanced();
"""

APPEND_ONLY = """
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS clearing_journalline_balanced ON clearing_journalline;
DROP TRIGGER IF EXISTS clearing_journalentry_append_only ON clearing_journalentry;
DROP TRIGGER IF EXISTS clearing_journalline_append_only ON clearing_journalline;
DROP TRIGGER IF EXISTS clearing_cashdeposit_append_only ON clearing_cashdeposit;
DROP FUNCTION IF EXISTS clearing_check_entry_balanced();
DROP FUNCTION IF EXISTS clearing_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_FUNCTIONS, params=None)
        for table in APPEND_ONLY_TABLES:
            schema_editor.execute(APPEND_ONLY.format(table=table), params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("clearing", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
