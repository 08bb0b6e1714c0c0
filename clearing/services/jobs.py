"""Failing Celery jobs raise the operators' alarm (docs/embedded.md, "Failing
jobs raise the alarm").

A job that fails for good (its retries spent) is recorded as a
``JobFailure``; it stays an alarm until the same job succeeds again or an
operator acknowledges it. The worker's signals call the two ``record``
functions (``exchange.celery``); the reconciliation check ``jobs_succeed``
and ``/healthz`` read the open ones (``clearing.selectors.job_failures_open``).
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from clearing.models import JobFailure
from exchange.errors import ExchangeError

log = logging.getLogger(__name__)

# A traceback is kept for the operator, not a novel: its last part says where.
MAX_TRACEBACK_CHARS = 20_000


def job_failure_record(*, task: str, task_id: str, error: BaseException, traceback: str) -> JobFailure | None:
    """Record that ``task`` failed; None if the database cannot take it (the
    worker's log still has the failure: a recording that fails must never
    hide the job's own error)."""
    try:
        with transaction.atomic():  # a savepoint when called inside a transaction: never poisons it
            return JobFailure.objects.create(
                task=task, task_id=task_id or "", error=f"{type(error).__name__}: {error}"[:5000],
                traceback=traceback[-MAX_TRACEBACK_CHARS:],
            )
    except DatabaseError:
        log.exception("the failure of job %s (%s) could not be recorded", task, task_id)
        return None


def job_success_record(*, task: str) -> int:
    """``task`` succeeded: its open failures are resolved. One conditional
    UPDATE on a partial index, so a job that never fails pays one cheap
    statement per run. Answers how many were resolved."""
    try:
        with transaction.atomic():
            return JobFailure.objects.filter(task=task, resolved_at__isnull=True).update(
                resolved_at=timezone.now(), resolution=JobFailure.Resolution.SUCCEEDED)
    except DatabaseError:
        log.exception("the success of job %s could not be recorded", task)
        return 0


def job_failures_acknowledge(*, operator: User, failure_ids: Iterable[int]) -> int:
    """An operator has seen these failures and takes it from here: they stop
    being an alarm. Answers how many were still open."""
    if not operator.is_staff:
        raise ExchangeError("not_permitted", _("Only operators may acknowledge failed jobs."))
    return JobFailure.objects.filter(pk__in=list(failure_ids), resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolution=JobFailure.Resolution.ACKNOWLEDGED, resolved_by=operator)

