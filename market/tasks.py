"""Celery jobs of the product catalogue. They load, call the services and
retry on transient database errors; the services hold the rules."""

import logging
from dataclasses import asdict
from datetime import date

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from market import demo, services
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
