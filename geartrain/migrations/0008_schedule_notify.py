"""On PostgreSQL, wake schedulers with NOTIFY when a schedule is edited.

Statement-level triggers notify channel ``geartrain_schedule`` after inserts and
deletes of schedules and dependencies, and after updates that set a configuration
column. The scheduler's own bookkeeping updates never set those columns, so they wake
nobody. Other vendors: no-op (schedulers re-read at every tick).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION geartrain_schedule_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('geartrain_schedule', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS geartrain_schedule_notify_v1 ON geartrain_schedule;
CREATE TRIGGER geartrain_schedule_notify_v1
    AFTER INSERT OR DELETE OR UPDATE OF changed_at, enabled, cron, timezone, cron_base,
        end_at
    ON geartrain_schedule
    FOR EACH STATEMENT EXECUTE FUNCTION geartrain_schedule_notify();
DROP TRIGGER IF EXISTS geartrain_dependency_notify_v1 ON geartrain_scheduledependency;
CREATE TRIGGER geartrain_dependency_notify_v1
    AFTER INSERT OR DELETE OR UPDATE ON geartrain_scheduledependency
    FOR EACH STATEMENT EXECUTE FUNCTION geartrain_schedule_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS geartrain_dependency_notify_v1 ON geartrain_scheduledependency;
DROP TRIGGER IF EXISTS geartrain_schedule_notify_v1 ON geartrain_schedule;
DROP FUNCTION IF EXISTS geartrain_schedule_notify();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("geartrain", "0007_schedules")]
    operations = [migrations.RunPython(forwards, backwards)]
