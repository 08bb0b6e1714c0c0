"""The Celery app. The beat schedule lives here, in code, not in a database."""

import os
from datetime import timedelta

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

app = Celery("exchange")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["exchange"], related_name="health")

app.conf.beat_schedule = {
    "heartbeat": {"task": "exchange.health.heartbeat", "schedule": timedelta(seconds=15)},
}


@worker_ready.connect
def _first_heartbeat(sender, **kwargs):  # type: ignore[no-untyped-def]
    # /healthz turns green as soon as a worker is up, not a beat interval later.
    from exchange.health import record_heartbeat

    record_heartbeat()
