"""The public pages of issue 11's electricity, capacity and revenue
indicators (no login, nothing of any member): ``/dashboard/electricity/``,
``/dashboard/capacity-signal/``, ``/dashboard/revenue/`` and the versioned
methodology of each, ``/dashboard/methodology/<indicator>/``.

Each chart is drawn by ``static/js/power_charts.js`` from the rows of its
open dataset (``market.selectors.power``), serialised as the API serves them
and put in the page with ``json_script``; the table beside it and the CSV and
JSON links (with the page's parameters) are the same rows. Bad parameters
fall back to the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from market.selectors import power as selectors
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from market import power
from market.open_data import LICENCE_URL, MIN_MEMBERS, Dataset

# market.selectors.power registers its datasets when imported: it is imported
# by the views (and by the open-data listing through SOURCES), not when the
# URLconf loads, so that a test with a registry of its own stays alone in it.

METHODOLOGY = {
    "electricity": ("1", "market/power/methodology_electricity_v1.html"),
    "capacity-signal": ("1", "market/power/methodology_capacity_signal_v1.html"),
    "revenue": ("1", "market/power/methodology_revenue_v1.html"),
}


def _links(dataset: Dataset, query: dict[str, str]) -> dict[str, str]:
    base = f"/api/v1/open-data/{dataset.slug}/"
    encoded = urlencode(query)
    return {"json": f"{base}?{encoded}" if encoded else base,
            "csv": f"{base}?{encoded}&format=csv" if encoded else f"{base}?format=csv"}


def _range(request: HttpRequest, *, hourly: bool = False) -> selectors.Range:
    from market.selectors import power as selectors

    params = {key: str(request.GET.get(key, "")) for key in ("gpu_class", "start", "end", "resolution")}
    return selectors.parse_range(params, strict=False, hourly=hourly)


# The tables show the newest rows only (three years by day made two tables of 1,096 rows, a 1.1 MB page
# that took 250 ms to render); the charts and the downloads hold every row. As on the market activity page.
TABLE_ROWS = 400


@require_GET
def electricity(request: HttpRequest) -> HttpResponse:
    """Public: the compute price beside the electricity price, their 30-day correlation and the spark spread,
    by day or by hour."""
    from market.selectors import power as selectors

    span = _range(request, hourly=True)
    query = span.query()
    found = selectors.electricity(span)
    both, spread = found.both, found.spread
    context: dict[str, Any] = {
        "span": span, "classes": selectors.class_codes(), "hourly": span.resolution == selectors.HOUR,
        "max_hour_days": selectors.MAX_HOUR_DAYS,
        "rows": both[:-TABLE_ROWS - 1:-1], "spread_rows": spread[:-TABLE_ROWS - 1:-1],
        "both_cut": len(both) > TABLE_ROWS, "spread_cut": len(spread) > TABLE_ROWS, "table_limit": TABLE_ROWS,
        "both_total": len(both), "spread_total": len(spread),
        "data": selectors.COMPUTE_AND_POWER.serialise(both), "spread_data": selectors.SPARK_SPREAD.serialise(spread),
        "pue": found.pue, "latest_spread": spread[-1] if spread else None,
        "has_compute": any(row["compute_base"] for row in both), "has_power": any(row["power_price"] for row in both),
        "has_correlation": any(row["correlation_30d"] for row in both),
        "links": _links(selectors.COMPUTE_AND_POWER, query), "spread_links": _links(selectors.SPARK_SPREAD, query),
        "min_members": MIN_MEMBERS, "reference_pue": power.REFERENCE_PUE,
    }
    return render(request, "market/power/electricity.html", context)


@require_GET
def capacity_signal(request: HttpRequest) -> HttpResponse:
    """Public: the 6-12 month forward price against the trailing 30-day spot price of a class."""
    from market.selectors import power as selectors

    span = _range(request)
    query = span.query()
    rows = selectors.capacity_signal_rows(query)
    latest = next((row for row in reversed(rows) if row["premium"] is not None), None)
    return render(request, "market/power/capacity_signal.html", {
        "span": span, "classes": selectors.class_codes(), "rows": rows[::-1], "latest": latest,
        "data": selectors.CAPACITY_SIGNAL.serialise(rows),
        "has_forward": any(row["forward_price"] for row in rows), "has_spot": any(row["spot_price"] for row in rows),
        "links": _links(selectors.CAPACITY_SIGNAL, query), "threshold": int(power.SIGNAL_THRESHOLD * 100),
        "persist": power.SIGNAL_DAYS,
    })


@require_GET
def revenue(request: HttpRequest) -> HttpResponse:
    """Public: the exchange's fee revenue per month and the two funds it feeds."""
    from incentives.selectors import incentives_summary
    from market.selectors import power as selectors

    rows = selectors.revenue_rows({})
    shown = [row for row in rows if row["incentive_fund_balance"] is not None]
    return render(request, "market/power/revenue.html", {
        "rows": rows[::-1], "data": selectors.EXCHANGE_REVENUE.serialise(rows),
        "latest": shown[-1] if shown else None, "links": _links(selectors.EXCHANGE_REVENUE, {}),
        "min_members": MIN_MEMBERS, "withheld": bool(rows) and not shown, "incentives": incentives_summary(),
    })


@require_GET
def methodology(request: HttpRequest, indicator: str) -> HttpResponse:
    """Public: the current version of an indicator's methodology (a temporary redirect)."""
    if indicator not in METHODOLOGY:
        raise Http404
    return redirect("power-methodology-version", indicator=indicator, version=f"v{METHODOLOGY[indicator][0]}")


@require_GET
def methodology_version(request: HttpRequest, indicator: str, version: str) -> HttpResponse:
    current, template = METHODOLOGY.get(indicator, ("", ""))
    if version != f"v{current}":
        raise Http404
    return render(request, template, {
        "version": version, "licence_url": LICENCE_URL, "min_members": MIN_MEMBERS,
        "reference_pue": power.REFERENCE_PUE, "threshold": int(power.SIGNAL_THRESHOLD * 100),
        "persist": power.SIGNAL_DAYS, "window": power.CORRELATION_WINDOW_DAYS,
        "min_days": power.CORRELATION_MIN_DAYS,
    })


urlpatterns: list[URLPattern] = [
    path("dashboard/electricity/", electricity, name="dashboard_electricity"),
    path("dashboard/capacity-signal/", capacity_signal, name="dashboard_capacity_signal"),
    path("dashboard/revenue/", revenue, name="dashboard_revenue"),
    # One path per indicator (the other dashboards have methodology pages under the same prefix).
    *[path(f"dashboard/methodology/{name}/", methodology, {"indicator": name}, name="power-methodology")
      for name in METHODOLOGY],
    *[path(f"dashboard/methodology/{name}/<str:version>/", methodology_version, {"indicator": name},
           name="power-methodology-version") for name in METHODOLOGY],
]
