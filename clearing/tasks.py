"""Celery jobs of the clearing house. They call the services and retry on
transient database errors; the services hold the rules."""

import logging

from celery import shared_task
from django.db import OperationalError

from clearing.reconcile import reconciliation_record

log = logging.getLogger(__name__)


@shared_task(name="clearing.reconcile", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=3)
def reconcile() -> dict[str, object]:
    """Check every invariant, record the run, alert the operators on a new break
    (beat: every 15 minutes)."""
    run = reconciliation_record()
    if run.ok:
        log.info("reconciliation run %s: ok", run.pk)
    return {"run": run.pk, "ok": run.ok, "broken": run.broken_checks}


@shared_task(name="clearing.settle_deliveries", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=3)
def settle_deliveries() -> dict[str, int]:
    """Pay out every due delivery ticket exactly once (beat: every 5 minutes)."""
    from clearing.services import deliveries_settle

    return {"settled": deliveries_settle()}


@shared_task(name="clearing.flag_not_provided", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=3)
def flag_not_provided() -> dict[str, int]:
    """Flag tickets without access details at delivery start as ``not_provided``
    (beat: every minute; one idempotent conditional UPDATE)."""
    from clearing.services.delivery import tickets_flag_not_provided

    return {"flagged": tickets_flag_not_provided()}


@shared_task(name="clearing.charge_fees", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=3)
def charge_fees(month: str | None = None) -> dict[str, object]:
    """Charge every member's fees of the previous calendar month (or of
    ``month``, YYYY-MM) and sweep the funds' shares (beat: the 1st at 00:30
    Europe/Berlin). Idempotent; a member that could not be charged is logged
    as an error by the service and reported by reconcile."""
    import datetime

    from clearing.services.fees import fees_charge_month, previous_month

    when = (datetime.datetime.strptime(month, "%Y-%m").date() if month  # noqa: DTZ007 (a calendar month)
            else previous_month())
    return {"month": f"{when:%Y-%m}", "charged": fees_charge_month(month=when)}
