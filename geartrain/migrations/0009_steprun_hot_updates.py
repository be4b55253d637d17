"""Step runs: no index on a column that starting or finishing a step writes.

A step run is written twice (running when its job is claimed, then its outcome). With
no index on ``status``, the times or the outcome, and room left on each page
(PostgreSQL's ``fillfactor``, here 50 %), PostgreSQL writes both as HOT updates: the
new row version goes on the same page and no index gets a new entry.

* ``geartrain_steprun_w_v1`` (step_name, finished_at) becomes
  ``geartrain_steprun_name_v1`` (step_name): nothing orders step runs by their finish
  through it;
* the index of ``stage_run`` alone goes: the (stage_run, step_name) constraint's index
  starts with it;
* PostgreSQL only: ``fillfactor = 50`` (other vendors: no-op). It applies to pages
  written from now on.
"""

import django.db.models.deletion
from django.db import migrations, models


def fillfactor(value):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            setting = "RESET (fillfactor)" if value is None else f"SET (fillfactor = {value})"
            schema_editor.execute(f"ALTER TABLE geartrain_steprun {setting}")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("geartrain", "0008_schedule_notify"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="steprun",
            name="geartrain_steprun_w_v1",
        ),
        migrations.AlterField(
            model_name="steprun",
            name="stage_run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="step_runs",
                to="geartrain.stagerun",
            ),
        ),
        migrations.AddIndex(
            model_name="steprun",
            index=models.Index(fields=["step_name"], name="geartrain_steprun_name_v1"),
        ),
        migrations.RunPython(fillfactor(50), fillfactor(None), elidable=False),
    ]
