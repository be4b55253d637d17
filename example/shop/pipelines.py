"""The example pipeline, declared in code and written to the database by the demo."""

from geartrain.pipelines.spec import PipelineSpec, StageSpec, StepSpec

T = "example.shop.tasks."

nightly = PipelineSpec(
    name="nightly-orders",
    description="Extract the day's tables, transform them, load them, report.",
    defaults={"day": "yesterday"},
    # Every night at 02:00 Paris time; kept as a schedule (see Schedules in the admin).
    cron="0 2 * * *",
    cron_timezone="Europe/Paris",
    stages=(
        StageSpec(
            name="extract",
            steps=tuple(
                StepSpec(name=t, task=T + "extract", kwargs={"table": t}, weight=w)
                for t, w in (("orders", 3), ("customers", 2), ("products", 1))
            ),
        ),
        StageSpec(
            name="transform",
            depends_on=("extract",),
            steps=(
                StepSpec(
                    name="orders", task=T + "transform", kwargs={"kind": "orders"}
                ),
                StepSpec(
                    name="totals", task=T + "transform", kwargs={"kind": "totals"}
                ),
            ),
        ),
        StageSpec(
            name="load",
            depends_on=("transform",),
            steps=(
                StepSpec(name="warehouse", task=T + "load", kwargs={"target": "dwh"}),
                StepSpec(name="search", task=T + "load", kwargs={"target": "search"}),
            ),
        ),
        StageSpec(
            name="notify",
            depends_on=("transform",),
            steps=(
                StepSpec(
                    name="partner",
                    task=T + "notify_partner",
                    kwargs={"partner": "acme"},
                    critical=False,
                ),
            ),
        ),
        StageSpec(
            name="report",
            depends_on=("load", "notify"),
            steps=(
                StepSpec(
                    name="daily", task=T + "nightly_report", kwargs={"day": "today"}
                ),
            ),
        ),
    ),
)
