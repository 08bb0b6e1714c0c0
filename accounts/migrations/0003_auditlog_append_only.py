"""The audit log is append-only at the database too: on PostgreSQL a trigger
refuses every UPDATE and DELETE of a row, whatever code or SQL asks.

SQLite (the embedded default) has no such trigger; the model still refuses.
TRUNCATE is deliberately not blocked: the test runner empties tables with it
between transactional tests, and only the table's owner may truncate.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION accounts_auditlog_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'accounts_auditlog is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS accounts_auditlog_append_only ON accounts_auditlog;
CREATE TRIGGER accounts_auditlog_append_only
    BEFORE UPDATE OR DELETE ON accounts_auditlog
    FOR EACH ROW EXECUTE FUNCTION accounts_auditlog_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS accounts_auditlog_append_only ON accounts_auditlog;
DROP FUNCTION IF EXISTS accounts_auditlog_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: the % in the RAISE format must reach PostgreSQL as is.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organisations_kyc"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
