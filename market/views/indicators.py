"""The policy indicators' pages (issue 11; market rules §5):
``/dashboard/activity/``, ``/dashboard/concentration/`` and
``/dashboard/regions/`` (public, no login), each with its chart, its data
table and the CSV and JSON links of its open dataset; the methodology of each
(``/dashboard/methodology/<indicator>/v1/``); and ``/dashboard/observer/``,
the non-public aggregates for observers (and operators) with their CSV.

A page cleans its query leniently (a bad value falls back to the default),
then draws exactly the rows the open-data API serves for the same query: the
chart's data is ``Dataset.serialise(rows)`` in a ``json_script`` block, drawn
by static/js/indicator_charts.js (no inline script: CSP).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.selectors import membership_for
from market import indicators
from market.open_data import LICENCE_URL, Dataset, Rows
from market.selectors import activity as selectors

INDICATORS = ("activity", "concentration", "regions")
VERSIONS = ("v1",)


def _number(value: Any, places: int = 0) -> str:
    if value is None:
        return "–"
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def _percent(share: Decimal | None) -> str:
    return "–" if share is None else f"{_number(share * 100, 2)} %"


def _choices() -> dict[str, list[tuple[str, str]]]:
    return {
        "resolution": [(indicators.DAY, _("Day")), (indicators.WEEK, _("Week")), (indicators.MONTH, _("Month"))],
        "range": [("month", _("Last month")), ("quarter", _("Last 3 months")), ("year", _("Last year")),
                  ("all", _("Everything"))],
        "any_class": [(selectors.ALL, _("All classes")), *[(c, c) for c in selectors.class_codes()]],
        "one_class": [(c, c) for c in selectors.class_codes()],
        "zone": [(z, z) for z in selectors.zone_codes()],
    }


def _links(dataset: Dataset, query: Mapping[str, str]) -> dict[str, str]:
    base = f"/api/v1/open-data/{dataset.slug}/"
    return {"json_url": f"{base}?{urlencode(query)}", "csv_url": f"{base}?{urlencode({**query, 'format': 'csv'})}",
            "methodology_url": dataset.methodology_url, "licence_url": LICENCE_URL}


def _page(dataset: Dataset, query: dict[str, str], rows: Rows) -> dict[str, Any]:
    return {"query": query, "choices": _choices(), "data": dataset.serialise(rows), "dataset": dataset,
            **_links(dataset, query)}


def _period_label(row: Mapping[str, Any], resolution: str) -> str:
    from django.utils.dateformat import format as date_format

    day = row["period_start"]
    if resolution == indicators.MONTH:
        return date_format(day, "F Y")
    if resolution == indicators.WEEK:
        return _("Week from %(day)s") % {"day": date_format(day, "d.m.Y")}
    return date_format(day, "D d.m.Y")


# --- public pages --------------------------------------------------------------------------------


# The page's tables show the newest periods only (three years by day would be a 1 MB page);
# the chart and the downloads hold every period.
TABLE_ROWS = 400


@require_GET
def dashboard_activity(request: HttpRequest) -> HttpResponse:
    """Public: volume per segment, open interest, active members, SME and start-up shares."""
    query = selectors.clean(request.GET, selectors.ACTIVITY_PARAMS, strict=False)
    rows = selectors.activity_rows(query)
    table = [{
        "period": _period_label(row, query["resolution"]),
        "intraday": _number(row["volume_intraday_gpuh"]), "dayahead": _number(row["volume_dayahead_gpuh"]),
        "futures": _number(row["volume_futures_gpuh"]), "total": _number(row["volume_total_gpuh"]),
        "open_interest": _number(row["open_interest_gpuh"]),
        "buyers": _number(row["active_buyers"]), "sellers": _number(row["active_sellers"]),
        "sme_buy": _percent(row["sme_buy_share"]), "sme_sell": _percent(row["sme_sell_share"]),
        "startup_buy": _percent(row["startup_buy_share"]), "startup_sell": _percent(row["startup_sell_share"]),
    } for row in reversed(rows[-TABLE_ROWS:])]
    has_data = any(row["volume_total_gpuh"] or row["open_interest_gpuh"] for row in rows)
    return render(request, "market/indicators/activity.html", {
        **_page(selectors.ACTIVITY, query, rows), "table": table, "has_data": has_data,
        "table_cut": len(rows) > TABLE_ROWS, "table_limit": TABLE_ROWS, "periods": len(rows),
        "has_shares": any(row[f"{group}_{side}_share"] is not None
                          for row in rows for group in ("sme", "startup") for side in ("buy", "sell")),
        "chart_text": {"intraday": _("Intraday"), "dayahead": _("Day-ahead"), "futures": _("Futures"),
                       "open_interest": _("Open interest (futures)"), "gpuh": _("GPU-hours"),
                       "buyers": _("Active buyers"), "sellers": _("Active sellers"), "members": _("Members"),
                       "sme_buy": _("SMEs, bought"), "sme_sell": _("SMEs, sold"),
                       "startup_buy": _("Start-ups, bought"), "startup_sell": _("Start-ups, sold"),
                       "share": _("Share of volume (%)")},
    })


@require_GET
def dashboard_concentration(request: HttpRequest) -> HttpResponse:
    """Public: the HHI of sell volume over time, with the thresholds."""
    query = selectors.clean(request.GET, selectors.CONCENTRATION_PARAMS, strict=False)
    rows = selectors.concentration_rows(query) if query["gpu_class"] else []
    bands = selectors.band_labels()
    table = [{"period": _period_label(row, query["resolution"]), "sellers": _number(row["sellers"]),
              "volume": _number(row["volume_gpuh"]), "hhi": _number(row["hhi"]), "band": bands[row["band"]],
              "band_code": row["band"],
              "withheld": indicators.suppressed(row["sellers"])} for row in reversed(rows)]
    return render(request, "market/indicators/concentration.html", {
        **_page(selectors.CONCENTRATION, query, rows), "table": table,
        "has_data": any(row["hhi"] is not None for row in rows),
        "has_trades": any(row["volume_gpuh"] for row in rows),
        "moderate": indicators.HHI_MODERATE, "high": indicators.HHI_HIGH,
        "chart_text": {"hhi": _("HHI"), "moderate": _("1,500: moderately concentrated"),
                       "high": _("2,500: highly concentrated"), "scale": _("HHI (0-10,000)")},
    })


def _reason_text(reason: str) -> str:
    return {selectors.FEWER_PROVIDERS: _("fewer than 3 providers"),
            selectors.FEWER_SELLERS: _("fewer than 3 providers sold"),
            selectors.PROTECTS_ANOTHER: _("withheld so that another state's figure cannot be derived")}.get(reason, "")


# The tile-grid map: each federal state one equal tile at its approximate place, (row, column)
# from the north-west. Tiles, not borders: a small state (Bremen, Saarland) is as easy to read
# and to touch on a phone as Bavaria, and no shape file or map library is needed.
STATE_TILES: dict[str, tuple[int, int]] = {
    "DE-SH": (0, 2),
    "DE-HB": (1, 1), "DE-HH": (1, 2), "DE-MV": (1, 3),
    "DE-NW": (2, 0), "DE-NI": (2, 1), "DE-ST": (2, 2), "DE-BB": (2, 3), "DE-BE": (2, 4),
    "DE-RP": (3, 0), "DE-HE": (3, 1), "DE-TH": (3, 2), "DE-SN": (3, 3),
    "DE-SL": (4, 0), "DE-BW": (4, 1), "DE-BY": (4, 2),
}
MAP_MEASURES = ("capacity_gpus", "volume_gpuh", "average_price")


def _map_tiles(rows: Rows) -> list[dict[str, Any]]:
    """The map's tiles: the open dataset's figures of each state (``None``
    where withheld, as in the table) and the same figures as the table shows them."""
    places = {"capacity_gpus": 0, "volume_gpuh": 0, "average_price": 2}
    return [{"state": row["state"], "code": row["state"].removeprefix("DE-"), "name": row["state_name"],
             "row": STATE_TILES[row["state"]][0], "col": STATE_TILES[row["state"]][1],
             "values": {m: row[m] for m in MAP_MEASURES},
             "text": {m: _number(row[m], places[m]) for m in MAP_MEASURES},
             "reason": _reason_text(row["suppressed"])} for row in rows]


@require_GET
def dashboard_regions(request: HttpRequest) -> HttpResponse:
    """Public: capacity, volume sold and average price per federal state."""
    query = selectors.clean(request.GET, selectors.REGIONS_PARAMS, strict=False)
    rows = selectors.regions_rows(query)
    table = [{"name": row["state_name"], "code": row["state"], "providers": _number(row["providers"]),
              "capacity": _number(row["capacity_gpus"]), "volume": _number(row["volume_gpuh"]),
              "price": _number(row["average_price"], 2), "reason": _reason_text(row["suppressed"])}
             for row in rows]
    return render(request, "market/indicators/regions.html", {
        **_page(selectors.REGIONS, query, rows), "table": table,
        "has_data": any(row["capacity_gpus"] or row["volume_gpuh"] for row in rows),
        "any_withheld": any(row["suppressed"] for row in rows),
        "chart_text": {"capacity": _("Capacity (GPUs)"), "volume": _("Delivered (GPU-hours)")},
        "map": {"tiles": _map_tiles(rows),
                "measures": {"capacity_gpus": _("Capacity (GPUs)"), "volume_gpuh": _("Delivered (GPU-hours)"),
                             "average_price": _("Average price (EUR/GPUh)")},
                "withheld": _("withheld"), "no_value": _("no value")},
    })


# --- methodology ---------------------------------------------------------------------------------


@require_GET
def indicator_methodology(request: HttpRequest, indicator: str) -> HttpResponse:
    """Public: the current version of an indicator's methodology (a temporary redirect)."""
    if indicator not in INDICATORS:
        raise Http404
    return redirect(f"methodology_{indicator}_version", version=VERSIONS[-1])


@require_GET
def indicator_methodology_version(request: HttpRequest, indicator: str, version: str) -> HttpResponse:
    """Public: one version of an indicator's methodology, the formula written out."""
    if indicator not in INDICATORS or version not in VERSIONS:
        raise Http404
    pages = {"activity": ("dashboard_activity", selectors.ACTIVITY),
             "concentration": ("dashboard_concentration", selectors.CONCENTRATION),
             "regions": ("dashboard_regions", selectors.REGIONS)}
    page_name, dataset = pages[indicator]
    return render(request, f"market/indicators/methodology_{indicator}_{version}.html", {
        "version": version, "versions": VERSIONS, "indicator": indicator, "page_url": reverse(page_name),
        "dataset": dataset, "json_url": f"/api/v1/open-data/{dataset.slug}/", "licence_url": LICENCE_URL,
        "min_members": indicators.MIN_MEMBERS, "moderate": indicators.HHI_MODERATE, "high": indicators.HHI_HIGH,
    })


# --- observers -----------------------------------------------------------------------------------


def _observer_gate(request: HttpRequest) -> HttpResponse | None:
    """None for an operator or a member of an observer organisation; the
    login page for the anonymous; 403 for everybody else."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.user.is_staff:
        return None
    membership = membership_for(request.user)
    if membership is None or not membership.organisation.is_observer:
        raise PermissionDenied(_("Only observers (public authorities) and operators see these aggregates."))
    return None


OBSERVER_TABLES = ("states", "sizes", "zones", "open-states", "open-sizes")
_TRADED = ["buyers", "demand_gpuh", "sellers", "supply_gpuh"]
_OPEN = ["bidders", "unmet_demand_gpuh", "offerers", "offered_gpuh"]


def _observer_csv_rows(tables: selectors.ObserverTables, table: str) -> tuple[list[str], Rows]:
    return {"states": (["state", "name", *_TRADED], tables.states),
            "sizes": (["size_class", "name", *_TRADED], tables.sizes),
            "zones": (["zone", "sellers", "volume_gpuh", "hhi", "band"], tables.zones),
            "open-states": (["state", "name", *_OPEN], tables.open_states),
            "open-sizes": (["size_class", "name", *_OPEN], tables.open_sizes)}[table]


@require_GET
def dashboard_observer(request: HttpRequest) -> HttpResponse:
    """Observers and operators: supply and demand by state and size class, concentration per zone."""
    refused = _observer_gate(request)
    if refused is not None:
        return refused
    query = selectors.clean(request.GET, selectors.OBSERVER_PARAMS, strict=False)
    tables = selectors.observer_tables(query)
    bands = selectors.band_labels()

    def sides(rows: Rows) -> list[dict[str, Any]]:
        return [{**row, "demand": _number(row["demand_gpuh"]), "supply": _number(row["supply_gpuh"]),
                 "demand_withheld": row["demand_gpuh"] is None, "supply_withheld": row["supply_gpuh"] is None}
                for row in rows]

    def open_book(rows: Rows) -> list[dict[str, Any]]:
        return [{**row, "unmet": _number(row["unmet_demand_gpuh"]), "offered": _number(row["offered_gpuh"])}
                for row in rows]

    csv_urls = {table.replace("-", "_"): f"{reverse('dashboard_observer_csv')}?{urlencode({**query, 'table': table})}"
                for table in OBSERVER_TABLES}
    return render(request, "market/indicators/observer.html", {
        "query": query, "choices": _choices(), "tables": tables, "states": sides(tables.states),
        "sizes": sides(tables.sizes), "open_states": open_book(tables.open_states),
        "open_sizes": open_book(tables.open_sizes),
        "has_open_book": any(row["bidders"] or row["offerers"] for row in tables.open_sizes),
        "zones": [{"zone": row["zone"], "sellers": row["sellers"], "volume": _number(row["volume_gpuh"]),
                   "hhi": _number(row["hhi"]), "band": bands[row["band"]], "band_code": row["band"],
                   "withheld": indicators.suppressed(row["sellers"])} for row in tables.zones],
        "csv_urls": csv_urls, "has_data": any(row["volume_gpuh"] for row in tables.zones),
        "min_members": indicators.MIN_MEMBERS,
    })


@require_GET
def dashboard_observer_csv(request: HttpRequest) -> HttpResponse:
    """Observers and operators: one of the observer page's tables as CSV (empty cell: withheld)."""
    refused = _observer_gate(request)
    if refused is not None:
        return refused
    query = selectors.clean(request.GET, selectors.OBSERVER_PARAMS, strict=False)
    table = request.GET.get("table", "states")
    if table not in OBSERVER_TABLES:
        table = "states"
    columns, rows = _observer_csv_rows(selectors.observer_tables(query), table)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="observer-{table}.csv"'
    response["Cache-Control"] = "private, no-store"
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[column] is None else str(row[column]) for column in columns])
    return response


urlpatterns: list[URLPattern] = [
    path("dashboard/activity/", dashboard_activity, name="dashboard_activity"),
    path("dashboard/concentration/", dashboard_concentration, name="dashboard_concentration"),
    path("dashboard/regions/", dashboard_regions, name="dashboard_regions"),
    path("dashboard/observer/", dashboard_observer, name="dashboard_observer"),
    path("dashboard/observer/csv/", dashboard_observer_csv, name="dashboard_observer_csv"),
    # One path per indicator, not "<indicator>": the other indicators' methodology pages live beside these.
    *[path(f"dashboard/methodology/{name}/", indicator_methodology, {"indicator": name},
           name=f"methodology_{name}") for name in INDICATORS],
    *[path(f"dashboard/methodology/{name}/<str:version>/", indicator_methodology_version, {"indicator": name},
           name=f"methodology_{name}_version") for name in INDICATORS],
]
