"""Celery jobs of the start-up incentives; the services hold the rules."""

from celery import shared_task
from django.db import OperationalError


@shared_task(name="incentives.expire_credits", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=3)
def expire_credits() -> dict[str, int]:
    """Return the unused part of expired credit grants to the incentive fund
    (beat: daily 00:15 Europe/Berlin). Idempotent; a failure is recorded by
    the worker's task_failure signal like every job's."""
    from incentives.services import credits_expire

    return {"expired": credits_expire()}
