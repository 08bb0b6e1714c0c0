"""Health checks behind /healthz: database, channel layer and Celery.

Celery is judged end to end: beat schedules ``heartbeat`` and a worker runs it,
recording the time in the shared cache. A recent heartbeat means beat, broker
and worker all work, whatever the broker is. ``jobs`` is down while a job has
failed for good and neither succeeded since nor been acknowledged by an
operator (``clearing.services.jobs``).
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection

HEARTBEAT_KEY = "health:celery-heartbeat"
HEARTBEAT_MAX_AGE_SECONDS = 60


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def record_heartbeat() -> None:
    cache.set(HEARTBEAT_KEY, time.time(), timeout=None)


@shared_task(name="exchange.health.heartbeat")
def heartbeat() -> None:
    record_heartbeat()


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return Check(False, type(exc).__name__)
    return Check(True, connection.vendor)


def check_channel_layer() -> Check:
    layer = get_channel_layer()
    if layer is None:
        return Check(False, "not configured")
    try:
        channel = async_to_sync(layer.new_channel)("healthz.")
        token = uuid.uuid4().hex
        async_to_sync(layer.send)(channel, {"type": "healthz", "token": token})
        message = async_to_sync(layer.receive)(channel)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return Check(False, type(exc).__name__)
    if message.get("token") != token:
        return Check(False, "round trip lost the message")
    return Check(True, type(layer).__name__)


def check_celery() -> Check:
    last = cache.get(HEARTBEAT_KEY)
    if last is None:
        return Check(False, "no heartbeat yet")
    age = time.time() - float(last)
    seen = datetime.fromtimestamp(float(last), tz=UTC).isoformat()
    if age > HEARTBEAT_MAX_AGE_SECONDS:
        return Check(False, f"last heartbeat {seen}")
    return Check(True, f"last heartbeat {seen}")


def check_jobs() -> Check:
    """No Celery job failing: a worker that runs every job and fails one
    (settlement, expiry) is not healthy (clearing.services.jobs)."""
    from clearing.selectors import job_failures_open

    try:
        failing = sorted(set(job_failures_open().values_list("task", flat=True)))
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot tell", reported as down
        return Check(False, type(exc).__name__)
    if failing:
        return Check(False, "failing: " + ", ".join(failing))
    return Check(True, "no failing job")


def run_checks() -> dict[str, Check]:
    return {
        "database": check_database(),
        "channel_layer": check_channel_layer(),
        "celery": check_celery(),
        "jobs": check_jobs(),
    }
