"""On PostgreSQL, wake workers with NOTIFY when jobs are inserted.

A statement-level trigger sends one notification per INSERT statement (bulk inserts
included); PostgreSQL delivers it when the transaction commits. Other vendors: no-op.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION geartrain_job_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('geartrain_job', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS geartrain_job_notify_v1 ON geartrain_job;
CREATE TRIGGER geartrain_job_notify_v1
    AFTER INSERT ON geartrain_job
    FOR EACH STATEMENT EXECUTE FUNCTION geartrain_job_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS geartrain_job_notify_v1 ON geartrain_job;
DROP FUNCTION IF EXISTS geartrain_job_notify();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("geartrain", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
