"""The Celery app. The beat schedule lives here, in code, not in a database."""

import os
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_failure, task_success, worker_ready
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

app = Celery("exchange")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["exchange"], related_name="health")

BEAT_SCHEDULE = {
    "heartbeat": {"task": "exchange.health.heartbeat", "schedule": timedelta(seconds=15)},
    # At second 0 of every minute, so status changes lag the boundary by
    # seconds, not up to a minute. Idempotent; a missed run only catches up.
    "market-list-and-schedule-instruments": {
        "task": "market.list_and_schedule_instruments", "schedule": crontab(minute="*"),
    },
    # GTD expiry and the orders of closed instruments; idempotent.
    "market-expire-orders": {"task": "market.expire_orders", "schedule": crontab(minute="*")},
    # The daily indices that are due (yesterday, today, tomorrow), and a check of those published; idempotent.
    "market-compute-indices": {"task": "market.compute_indices", "schedule": crontab(minute="*/15")},
    # Day-ahead: the auctions past gate closure (12:00 Europe/Berlin; CELERY_TIMEZONE),
    # each claimed exactly once, then catch-up every 5 minutes; and the indicative prices.
    "market-clear-dayahead": {"task": "market.clear_dayahead", "schedule": crontab(minute="*/5")},
    "market-dayahead-indicative": {"task": "market.dayahead_indicative", "schedule": crontab(minute="2-59/5")},
    # Futures on business days (the tasks check the day): DSPs at 17:30, the margin run after
    # the session; both once per day, the later runs of the hour only catch up after a crash.
    "market-futures-settlement-prices": {"task": "market.futures_settlement_prices",
                                         "schedule": crontab(minute="30-59/5", hour="17", day_of_week="1-5")},
    "market-futures-variation-margin": {"task": "market.futures_variation_margin",
                                        "schedule": crontab(minute="15-59/5", hour="18", day_of_week="1-5")},
    "market-futures-expire": {"task": "market.futures_expire",
                              "schedule": crontab(minute="35-59/5", hour="18", day_of_week="1-5")},
    "market-futures-default-fund": {"task": "market.futures_default_fund",
                                    "schedule": crontab(minute="40-59/5", hour="18", day_of_week="1-5")},
    # The daily trade aggregates of every day that has ended (the indicators read them); once per day.
    "market-trade-aggregates": {"task": "market.trade_aggregates", "schedule": crontab(minute="5,20,35,50")},
    # Yesterday's bulk file of all open data (Europe/Berlin); written once.
    "market-open-data-bulk": {"task": "market.open_data_bulk", "schedule": crontab(minute="30", hour="0")},
    # Every clearing invariant; records the run and alerts operators on a new break.
    "clearing-reconcile": {"task": "clearing.reconcile", "schedule": crontab(minute="*/15")},
    # Payouts of confirmed, resolved and undisputed deliveries; exactly once per ticket.
    "clearing-settle-deliveries": {"task": "clearing.settle_deliveries", "schedule": crontab(minute="*/5")},
    # Tickets without access details at delivery start become not_provided; idempotent.
    "clearing-flag-not-provided": {"task": "clearing.flag_not_provided", "schedule": crontab(minute="*")},
    # The previous month's fees, one invoice per member, and the funds' sweep
    # (CELERY_TIMEZONE is Europe/Berlin); idempotent.
    "clearing-charge-fees": {"task": "clearing.charge_fees",
                             "schedule": crontab(minute="30", hour="0", day_of_month="1")},
    # Unused incentive credits past their expiry return to the incentive fund; idempotent.
    "incentives-expire-credits": {"task": "incentives.expire_credits", "schedule": crontab(minute="15", hour="0")},
}
# Demo mode only (settings.DEMO; docs/demo.md): the demo market makers
# refresh a few quotes, now and then cross, and deliver what they sold.
DEMO_SCHEDULE = {
    "demo-market-maker": {"task": "market.demo_market_maker",
                          "schedule": timedelta(seconds=settings.DEMO_MARKET_MAKER_SECONDS)},
}


def beat_schedule(*, demo: bool) -> dict[str, dict[str, object]]:
    """The jobs beat runs: the demo's only in demo mode."""
    return {**BEAT_SCHEDULE, **(DEMO_SCHEDULE if demo else {})}


app.conf.beat_schedule = beat_schedule(demo=settings.DEMO)


@worker_ready.connect
def _first_heartbeat(sender: object, **kwargs: object) -> None:
    # /healthz turns green as soon as a worker is up, not a beat interval later.
    from exchange.health import record_heartbeat

    record_heartbeat()


@task_failure.connect
def _record_failure(sender: object = None, task_id: str = "", exception: BaseException | None = None,
                    einfo: object = None, **kwargs: object) -> None:
    # A job that fails for good (retries spent) is an operator's alarm until
    # it next succeeds or is acknowledged (clearing.services.jobs).
    from clearing.services.jobs import job_failure_record

    job_failure_record(task=getattr(sender, "name", str(sender)), task_id=task_id or "",
                       error=exception or RuntimeError("unknown error"),
                       traceback=str(getattr(einfo, "traceback", "") or ""))


@task_success.connect
def _record_success(sender: object = None, **kwargs: object) -> None:
    from clearing.services.jobs import job_success_record

    job_success_record(task=getattr(sender, "name", str(sender)))
