"""Example tasks: what a small shop sends to the background."""

from __future__ import annotations

import random
import time

from geartrain import Postpone, task


@task(priority=10)
def charge_order(order_id: int, cents: int) -> dict[str, int | str]:
    """Charge a card (high priority: customers are waiting)."""
    time.sleep(random.uniform(0.05, 0.2))
    return {"order": order_id, "charged": cents, "status": "paid"}


@task(queue_name="emails", max_attempts=4, backoff="exponential", retry_delay=0.5)
def send_receipt(order_id: int, email: str) -> str:
    """Send a receipt; the mail server fails now and then, so it retries."""
    if random.random() < 0.3:
        raise ConnectionError(f"SMTP server busy while sending order {order_id}")
    time.sleep(0.05)
    return f"receipt for order {order_id} sent to {email}"


@task(takes_context=True)
def wait_for_stock(context, sku: str) -> str:
    """Postpone itself until stock arrives (here: on the third try)."""
    if context.attempt == 1 and random.random() < 0.7:
        raise Postpone(1)
    return f"{sku} in stock"


@task(priority=-10)
def nightly_report(day: str) -> dict[str, str | int]:
    """A slow, low-priority job."""
    time.sleep(1.0)
    return {"day": day, "orders": random.randint(10, 99)}


@task(max_attempts=2, retry_delay=0.5)
def broken_export(target: str) -> None:
    """Always fails, to show a failed job and its tracebacks in the admin."""
    raise RuntimeError(f"Export target {target!r} refused the connection")


# Steps of the nightly pipeline (example/shop/pipelines.py) ---------------------------


@task
def extract(table: str, day: str = "") -> dict[str, int | str]:
    """Read one table of the day's data."""
    time.sleep(random.uniform(0.3, 1.0))
    return {"table": table, "rows": random.randint(100, 999)}


@task(takes_context=True)
def transform(context, kind: str) -> int:
    """Combine the extracted tables (reads the upstream results)."""
    from geartrain.pipelines.context import upstream_results

    rows = sum(r["rows"] for r in upstream_results(context)["extract"].values())
    time.sleep(random.uniform(0.3, 0.8))
    return rows if kind == "orders" else rows // 3


@task
def load(target: str) -> str:
    """Write the transformed data somewhere."""
    time.sleep(random.uniform(0.5, 1.2))
    return f"loaded into {target}"


@task(max_attempts=1)
def notify_partner(partner: str) -> None:
    """A non-critical step that fails: the run goes on and ends "with failures"."""
    raise ConnectionError(f"Partner {partner!r} did not answer")
