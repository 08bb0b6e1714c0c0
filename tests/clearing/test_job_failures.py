"""A failing Celery job raises the operators' alarm (issue 8 item 1): it is
recorded by the worker's task_failure signal, breaks the reconciliation check
``jobs_succeed`` (admin "Abstimmung", ``manage.py reconcile``, the alert mail)
and ``/healthz``, until the job succeeds again or an operator acknowledges it.

The failing job is a real one run the way the worker runs it (``apply``:
the same tracer, the same signals): ``clearing.charge_fees`` for a month that
has not ended refuses with ValueError. tests/exchange/test_embedded_journey.py
does the same through a real worker of ``make run``."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from clearing.models import JobFailure
from clearing.reconcile import reconcile
from clearing.services.fees import month_of, previous_month
from clearing.services.jobs import job_failures_acknowledge
from clearing.tasks import charge_fees
from exchange.errors import ExchangeError
from exchange.health import heartbeat, record_heartbeat

pytestmark = pytest.mark.django_db

TASK = "clearing.charge_fees"


def fail_once() -> None:
    result = charge_fees.apply(args=(f"{month_of(timezone.now()):%Y-%m}",))
    assert result.failed()


def job_breaches() -> list[str]:
    return [breach.detail for breach in reconcile() if breach.check == "jobs_succeed"]


def test_a_failing_job_is_an_alarm_until_it_succeeds_again(client):
    record_heartbeat()
    assert job_breaches() == []

    fail_once()
    fail_once()

    failures = list(JobFailure.objects.order_by("pk"))
    assert [(f.task, f.resolved_at) for f in failures] == [(TASK, None), (TASK, None)]
    assert failures[0].error.startswith("ValueError: ") and "has not ended yet" in failures[0].error
    assert "Traceback" in failures[0].traceback or "fees_charge_month" in failures[0].traceback
    [detail] = job_breaches()
    assert TASK in detail and "2" in detail and "has not ended yet" in detail
    # The command operators and monitoring run fails too.
    with pytest.raises(CommandError):
        call_command("reconcile")
    health = client.get(reverse("healthz"))
    assert health.status_code == 503
    assert health.json()["checks"]["jobs"] == {"ok": False, "detail": f"failing: {TASK}"}

    # The next run of the same job succeeds: the alarm ends by itself.
    assert charge_fees.apply(args=(f"{previous_month():%Y-%m}",)).successful()

    assert set(JobFailure.objects.values_list("resolution", flat=True)) == {JobFailure.Resolution.SUCCEEDED}
    assert JobFailure.objects.filter(resolved_at__isnull=True).count() == 0
    assert job_breaches() == []
    health = client.get(reverse("healthz"))
    assert health.status_code == 200
    assert health.json()["checks"]["jobs"] == {"ok": True, "detail": "no failing job"}


def test_another_job_succeeding_does_not_end_the_alarm():
    fail_once()

    assert heartbeat.apply().successful()

    assert JobFailure.objects.get().resolved_at is None
    assert len(job_breaches()) == 1


def test_an_operator_acknowledges_a_failure_in_admin(client):
    fail_once()
    operator = User.objects.create_superuser(email="root@clearing.test", password="correct horse battery")
    client.force_login(operator)
    failure = JobFailure.objects.get()

    listing = client.get(reverse("admin:clearing_jobfailure_changelist"))
    assert listing.status_code == 200
    assert TASK in listing.content.decode()
    # The reconciliation page shows the alarm with the others.
    page = client.get(reverse("admin:clearing_reconciliationrun_changelist")).content.decode()
    assert "has not ended yet" in page

    response = client.post(reverse("admin:clearing_jobfailure_changelist"),
                           {"action": "acknowledge", "_selected_action": [failure.pk]}, follow=True)

    assert response.status_code == 200
    failure.refresh_from_db()
    assert (failure.resolution, failure.resolved_by) == (JobFailure.Resolution.ACKNOWLEDGED, operator)
    assert failure.resolved_at is not None and timezone.now() - failure.resolved_at < timedelta(minutes=1)
    assert job_breaches() == []
    # Nobody may change or delete the record itself.
    assert client.get(reverse("admin:clearing_jobfailure_delete", args=[failure.pk])).status_code == 403


def test_only_operators_acknowledge():
    fail_once()
    member = User.objects.create_user(email="member@clearing.test", password="correct horse battery")

    with pytest.raises(ExchangeError) as refused:
        job_failures_acknowledge(operator=member, failure_ids=[JobFailure.objects.get().pk])

    assert refused.value.code == "not_permitted"
    assert JobFailure.objects.get().resolved_at is None
