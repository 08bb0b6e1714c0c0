"""Celery jobs of the product catalogue. They load, call the services and
retry on transient database errors; the services hold the rules."""

import logging
from dataclasses import asdict
from datetime import date, datetime, timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from market import calendar, demo, open_data, services
from market.services import indices as index_services

log = logging.getLogger(__name__)


@shared_task(name="market.list_and_schedule_instruments", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def list_and_schedule_instruments() -> dict[str, int]:
    """List what the calendar says should exist, then open and close by the
    clock. Idempotent: beat runs it every minute, and a late or repeated run
    only catches up."""
    now = timezone.now()
    listed = services.instruments_list_upcoming(now=now)
    opened, closed = services.instruments_open_close(now=now)
    if listed or opened or closed:
        log.info("instruments: %d listed, %d opened, %d closed", listed, opened, closed)
    return {"listed": listed, "opened": opened, "closed": closed}


@shared_task(name="market.expire_orders", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def expire_orders() -> int:
    """Expire resting GTD orders that are due and the orders of instruments
    whose trading has closed. Idempotent: beat runs it every minute."""
    expired = services.orders_expire(now=timezone.now())
    if expired:
        log.info("orders: %d expired", expired)
    return expired


@shared_task(name="market.demo_market_maker", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=2)
def demo_market_maker() -> dict[str, object]:
    """Demo mode only (beat: every DEMO_MARKET_MAKER_SECONDS): the demo
    market makers refresh a few quotes, now and then trade, and deliver.
    Outside demo mode beat does not schedule it, and a stray run does nothing."""
    step = demo.market_maker_step()
    if step.active:
        log.info("demo market maker: %s", step)
    return asdict(step)


@shared_task(name="market.compute_indices", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=5)
def compute_indices() -> int:
    """Publish the daily indices that are due (yesterday, today, tomorrow)
    and check those published (beat: every 15 minutes). Idempotent."""
    published = index_services.indices_compute_due(now=timezone.now())
    if published:
        log.info("indices: %d values published", published)
    return published


@shared_task(name="market.compute_index_day", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=5)
def compute_index_day(day: str, gpu_class_id: int, zone_id: int) -> int:
    """The indices of one (day, class, zone) now, e.g. sent on commit right
    after its auction has cleared (``day`` as YYYY-MM-DD: JSON serializer)."""
    values = index_services.index_compute_day(day=date.fromisoformat(day), gpu_class_id=gpu_class_id,
                                              zone_id=zone_id, now=timezone.now())
    return len(values)
@shared_task(name="market.clear_dayahead", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def clear_dayahead() -> int:
    """Clear every day-ahead auction past gate closure (12:00 Europe/Berlin on
    D-1). Beat runs it every 5 minutes, so a run at 12:00 clears the day's
    auctions and a later one catches up after a crash; each auction is
    claimed once (``market.services.dayahead.auction_clear``)."""
    from market.services import dayahead

    cleared = dayahead.auctions_clear_due(now=timezone.now())
    if cleared:
        log.info("day-ahead: %d auctions cleared", cleared)
    return cleared


@shared_task(name="market.dayahead_indicative", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=2)
def dayahead_indicative() -> int:
    """The indicative prices of every open auction (every 5 minutes from one
    hour after its book opens until gate closure)."""
    from market.services import dayahead

    return dayahead.dayahead_indicative_run(now=timezone.now())


@shared_task(name="market.futures_settlement_prices", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def futures_settlement_prices() -> int:
    """17:30 Europe/Berlin on business days: the day's DSPs (once per day)."""
    from market import calendar
    from market.services import futures

    now = timezone.now()
    day = timezone.localdate(now, calendar.BERLIN)
    if not calendar.is_business_day(day) or now < futures.dsp_instant(day):
        return 0
    return futures.settlement_prices_compute(day=day, now=now)


def _futures_day_after(job: str) -> tuple[datetime, date] | None:
    """Now and today (Europe/Berlin) if today's ``job`` has run, else None."""
    from market import calendar
    from market.models import FuturesJobRun

    now = timezone.now()
    day = timezone.localdate(now, calendar.BERLIN)
    if not FuturesJobRun.objects.filter(kind=job, date=day).exists():
        return None
    return now, day


@shared_task(name="market.futures_variation_margin", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def futures_variation_margin() -> int:
    """After the session (18:15 Europe/Berlin on business days): variation and
    initial margin, margin calls (once per day; waits for the day's DSPs)."""
    from market.models import FuturesJob
    from market.services import futures

    today = _futures_day_after(FuturesJob.SETTLEMENT_PRICES)
    return futures.variation_margin_run(day=today[1], now=today[0]) if today else 0


@shared_task(name="market.futures_expire", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def futures_expire() -> dict[str, int]:
    """After the margin run on business days: cascading and final settlement (once per day)."""
    from market.models import FuturesJob
    from market.services import futures

    today = _futures_day_after(FuturesJob.VARIATION_MARGIN)
    return futures.futures_expire(day=today[1], now=today[0]) if today else {}


@shared_task(name="market.futures_default_fund", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=30, max_retries=5)
def futures_default_fund() -> str:
    """After the margin run on business days: size and collect the default fund (once per day)."""
    from market.models import FuturesJob
    from market.services import futures

    today = _futures_day_after(FuturesJob.VARIATION_MARGIN)
    return str(futures.default_fund_run(day=today[1], now=today[0])) if today else ""


@shared_task(name="market.open_data_bulk")
def open_data_bulk() -> str:
    """Write yesterday's (Europe/Berlin) bulk file of all open data, once (beat: 00:30)."""
    now = timezone.now()
    day = now.astimezone(calendar.BERLIN).date() - timedelta(days=1)
    path = open_data.bulk_build(day, now=now)
    if path:
        log.info("open data: %s written", path.name)
    return path.name if path else ""


@shared_task(name="market.trade_aggregates", autoretry_for=(OperationalError,),
             retry_backoff=True, retry_backoff_max=60, max_retries=5)
def trade_aggregates() -> int:
    """Write the trade aggregates of every ended day not written yet (beat: every 15 minutes)."""
    from market.services.aggregates import aggregates_compute_due

    return aggregates_compute_due(now=timezone.now())
