"""Project-level pages: the landing page, health, error pages."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found

from exchange.errors import api_not_found
from exchange.health import run_checks
from market import calendar

# The figures of market rules v1 that the landing page explains. Fees, bounds
# and margin rates are admin-configurable; once the effective fee schedule is
# in clearing, the landing page should read it from there instead.
MARKET_FACTS = {
    "tick": Decimal("0.01"),
    "price_min": Decimal("0.00"),
    "price_max": Decimal("200.00"),
    "initial_margin_percent": 15,
    "fee_day_ahead": Decimal("0.010"),
    "fee_intraday_maker": Decimal("0.005"),
    "fee_intraday_taker": Decimal("0.015"),
    "fee_futures": Decimal("0.002"),
}


def next_day_ahead_auction(now: datetime) -> tuple[datetime, date]:
    """The next gate closure after `now` and the delivery day of that auction.

    Gate closure for day D is 12:00 Berlin on D-1; at exactly 12:00 it has
    passed, so the next auction is the one for the day after tomorrow.
    """
    delivery_day = timezone.localtime(now, calendar.BERLIN).date() + timedelta(days=1)
    gate = calendar.dayahead_gate_closure(delivery_day)
    if now >= gate:
        delivery_day += timedelta(days=1)
        gate = calendar.dayahead_gate_closure(delivery_day)
    return gate, delivery_day


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    gate_closure, delivery_day = next_day_ahead_auction(timezone.now())
    context = {"gate_closure": gate_closure, "delivery_day": delivery_day, **MARKET_FACTS}
    return render(request, "home.html", context)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    healthy = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "checks": {name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    # API clients get the contract's error shape, browsers the HTML page.
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return page_not_found(request, exception)
