"""Benchmark (issue 11, item 4): the public dashboards and open-data downloads
with three years of hourly data for 5 classes and 17 zones.

Set-up: a fresh PostgreSQL database (``rb_bench``) with the demo world
(``seed_demo --no-trading``: members, the 5 classes, sites, cash, a year of
demo indices for three zones), then, written by SQL in a few statements:
for every active class and each of the 17 zones and every day of the last
three years a cleared day-ahead auction with its 24 hourly results (price,
volume, offered and bid volume), and its Base, Peak and intraday VWAP index
values computed from those hours (the Base of zone DE lists its hours in its
document, as a published one does), and the hourly DE-LU electricity prices
of the three years. That is about 93,000 auctions, 2.2 million hourly
results, 280,000 index values and 26,000 electricity prices. ``--trades`` also writes
one day-ahead trade per hour and series between two of eight sellers and
buyers (with their hour instruments), for the pages that read trades, and
the daily trade aggregates the beat keeps written in production.

The pages are served the way production serves them (``scripts/serve.sh
http``: gunicorn, DEBUG off) and each URL is driven by ``wrk -t1 -c1`` for
``--seconds``: one request at a time, so the latency is the page's own. The
URLs: every open dataset's page, its JSON and its CSV (from the open-data
registry, so a new page is measured without touching this script), the
dashboard entry page, the forward curve, a day-ahead day and a year of index
history as CSV. The reference, in the same run: the index methodology page
(the same base template and middleware, no data). Goal: every page under
300 ms (p99 as well as the median is printed).

    .venv/bin/python bench/bench_dashboards.py [--seconds 5] [--workers 4] [--trades] [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

GOAL_MS = 300.0
YEARS = 3


def _today() -> date:
    from market import calendar

    return datetime.now(calendar.BERLIN).date()


def build(*, trades: bool) -> dict[str, int]:
    """The demo world and three years of auctions, hours and indices (SQL)."""
    from django.core.management import call_command
    from django.db import connection

    from market import indices

    call_command("seed_demo", "--no-trading", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    end = _today() - timedelta(days=1)
    start = end - timedelta(days=365 * YEARS)
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO market_dayaheadauction (delivery_date, gpu_class_id, zone_id, book_opens_at, gate_closure,
                status, cleared_at, method, time_limit_hit, rounds, input_sha256, bid_sequence, created_at)
            SELECT d::date, c.id, z.id, ((d::date - 7)::timestamp) AT TIME ZONE 'Europe/Berlin',
                   ((d::date - 1) + time '12:00') AT TIME ZONE 'Europe/Berlin', 'cleared',
                   ((d::date - 1) + time '12:01') AT TIME ZONE 'Europe/Berlin', 'curves', false, 1, 'bench', 0, now()
            FROM generate_series(%s::date, %s::date, interval '1 day') AS d
            CROSS JOIN market_gpuclass c CROSS JOIN market_deliveryzone z
            WHERE c.active
            ON CONFLICT DO NOTHING""", [start, end])
        counts["auctions"] = cursor.rowcount
        # Prices: the class's level, dearer in the afternoon and on weekdays, a slow drift and noise.
        cursor.execute("""
            INSERT INTO market_dayaheadhour (auction_id, hour, position, delivery_start, price, volume, buy_volume,
                sell_volume, price_low, price_high, buy_curve, sell_curve)
            SELECT a.id, lpad(h::text, 2, '0'), h,
                   (a.delivery_date + make_interval(hours => h)) AT TIME ZONE 'Europe/Berlin',
                   round((CASE c.code WHEN 'H100' THEN 2.40 WHEN 'H200' THEN 3.10 WHEN 'B200' THEN 4.80
                                      WHEN 'A100' THEN 1.35 ELSE 0.95 END)
                         * (1 + 0.12 * cos((h - 15) / 24.0 * 2 * pi())
                              - CASE WHEN extract(isodow FROM a.delivery_date) > 5 THEN 0.06 ELSE 0 END
                              + 0.10 * sin(extract(epoch FROM a.delivery_date::timestamp) / 86400 / 58.0)
                              + (random() - 0.5) * 0.06)::numeric, 2),
                   v, v + 4, v + 6, NULL, NULL, '[]'::jsonb, '[]'::jsonb
            FROM market_dayaheadauction a JOIN market_gpuclass c ON c.id = a.gpu_class_id
            CROSS JOIN generate_series(0, 23) AS h
            CROSS JOIN LATERAL (SELECT 8 + (random() * 40)::int AS v) AS vol
            WHERE a.input_sha256 = 'bench'
            ON CONFLICT DO NOTHING""")
        counts["hours"] = cursor.rowcount
        version = indices.METHODOLOGY_VERSION
        cursor.execute("""
            INSERT INTO market_indexvalue (kind, date, gpu_class_id, zone_id, value, volume, inputs, sha256,
                methodology_version, is_demo, computed_at)
            SELECT k.kind, a.delivery_date, a.gpu_class_id, a.zone_id,
                   round(avg(h.price) FILTER (WHERE k.kind <> 'peak' OR (h.position BETWEEN 8 AND 19
                                                AND extract(isodow FROM a.delivery_date) <= 5)), 2),
                   sum(h.volume),
                   -- The Base of zone DE lists its hours, as a published one does (the electricity page reads
                   -- the hourly compute prices from it); the other values keep an empty document.
                   CASE WHEN k.kind = 'base' AND z.code = 'DE' THEN jsonb_build_object('index', 'base', 'hours',
                       jsonb_agg(jsonb_build_object('hour', h.hour, 'price', h.price::text, 'volume', h.volume)
                                 ORDER BY h.position) FILTER (WHERE k.kind = 'base' AND z.code = 'DE'))
                   ELSE '{}'::jsonb END,
                   md5(k.kind || a.id::text) || md5(a.id::text || k.kind), %s, false, now()
            FROM market_dayaheadauction a JOIN market_dayaheadhour h ON h.auction_id = a.id
            JOIN market_deliveryzone z ON z.id = a.zone_id
            CROSS JOIN (VALUES ('base'), ('peak'), ('intraday_vwap')) AS k(kind)
            WHERE a.input_sha256 = 'bench'
            GROUP BY k.kind, a.id, z.code
            ON CONFLICT DO NOTHING""", [version])
        counts["index values"] = cursor.rowcount
        # Hourly DE-LU electricity prices for the same three years (what an operator imports from SMARD):
        # a daily and a yearly swing and noise; the demo year seed_demo wrote is kept.
        cursor.execute("""
            INSERT INTO market_powerprice (zone, hour_start, price, source, is_demo, imported_at)
            SELECT 'DE-LU', t, round((85 + 25 * cos((extract(hour FROM t) - 19) / 24.0 * 2 * pi())
                                     + 15 * sin(extract(epoch FROM t) / 86400 / 58.0)
                                     + (random() - 0.5) * 20)::numeric, 2), 'bench', false, now()
            FROM generate_series((%s::date)::timestamp AT TIME ZONE 'Europe/Berlin',
                                 ((%s::date + 1)::timestamp AT TIME ZONE 'Europe/Berlin') - interval '1 hour',
                                 interval '1 hour') AS t
            ON CONFLICT DO NOTHING""", [start, end])
        counts["power prices"] = cursor.rowcount
        if trades:
            counts.update(_trades(cursor, start, end))
        cursor.execute("ANALYZE")
    if trades:
        # What the beat keeps written in production: the ended days' trade aggregates.
        from market.services.aggregates import aggregates_compute_due

        counts["aggregated days"] = aggregates_compute_due()
    return counts


def _trades(cursor, start: date, end: date) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One day-ahead trade per hour and series, between organisations of the demo world."""
    cursor.execute("SELECT id FROM accounts_organisation WHERE kind = 'member' ORDER BY id LIMIT 8")
    organisations = [row[0] for row in cursor.fetchall()]
    if len(organisations) < 2:
        return {}
    cursor.execute("""
        INSERT INTO market_instrument (symbol, segment, gpu_class_id, zone_id, period, delivery_start, delivery_end,
            hours, tick_size, lot_size, min_price, max_price, lead_time_minutes, opens_at, closes_at, status,
            created_at, order_sequence, book_sequence)
        SELECT c.code || '.' || z.code || '.B' || h.id, 'dayahead', c.id, z.id, 'B' || h.id, h.delivery_start,
               h.delivery_start + interval '1 hour', 1, 0.01, 1, 0, 1000, 0, h.delivery_start - interval '2 days',
               h.delivery_start, 'closed', now(), 0, 0
        FROM market_dayaheadhour h JOIN market_dayaheadauction a ON a.id = h.auction_id
        JOIN market_gpuclass c ON c.id = a.gpu_class_id JOIN market_deliveryzone z ON z.id = a.zone_id
        WHERE a.input_sha256 = 'bench'""")
    instruments = cursor.rowcount
    n = len(organisations)
    cursor.execute("""
        INSERT INTO market_trade (instrument_id, auction_id, buyer_id, seller_id, price, quantity, aggressor,
            buyer_fee, seller_fee, executed_at)
        SELECT i.id, a.id, (%s::bigint[])[1 + (h.id %% %s)],
               (%s::bigint[])[1 + ((h.id + 1 + h.id / 7 %% (%s - 1)) %% %s)],
               h.price, h.volume, '', 0, 0, a.cleared_at
        FROM market_dayaheadhour h JOIN market_dayaheadauction a ON a.id = h.auction_id
        JOIN market_gpuclass c ON c.id = a.gpu_class_id JOIN market_deliveryzone z ON z.id = a.zone_id
        JOIN market_instrument i ON i.symbol = c.code || '.' || z.code || '.B' || h.id
        WHERE a.input_sha256 = 'bench'""",
                   [organisations, n, organisations, n, n])
    return {"instruments": instruments, "trades": cursor.rowcount}


def urls() -> list[tuple[str, str]]:
    """(name, path) of every page and download measured."""
    from market import open_data

    yesterday = (_today() - timedelta(days=1)).isoformat()
    year_ago = (_today() - timedelta(days=365)).isoformat()
    # The electricity page's longest choices: 3 years by day (its limit), 31 days by hour.
    three_years = (_today() - timedelta(days=3 * 366 - 1)).isoformat()
    month_ago = (_today() - timedelta(days=31)).isoformat()
    found = [("dashboard entry page", "/dashboard/"), ("forward curve page", "/dashboard/futures/?gpu_class=H100"),
             ("day-ahead day page", f"/dashboard/dayahead/{yesterday}/"),
             ("index history, a year, CSV", f"/api/v1/index/?gpu_class=H100&zone=DE&from={year_ago}&format=csv")]
    # The heaviest choices a visitor can make: everything, by day.
    every_class = "&".join(f"gpu_class={code}" for code in ("H100", "H200", "A100", "B200", "L40S"))
    found += [("price history, 5 classes, all, by day", f"/dashboard/prices/?{every_class}&range=all&resolution=day"),
              ("chip generations, all", "/dashboard/generations/?range=all"),
              ("market activity, all, by day", "/dashboard/activity/?range=all&resolution=day"),
              ("supply concentration, all, by day", "/dashboard/concentration/?range=all&resolution=day"),
              ("electricity, 3 years by day", f"/dashboard/electricity/?start={three_years}&end={yesterday}"),
              ("electricity, 31 days by hour",
               f"/dashboard/electricity/?start={month_ago}&end={yesterday}&resolution=hour")]
    for slug in ("compute-and-power", "spark-spread"):
        for fmt, suffix in (("JSON", ""), ("CSV", "&format=csv")):
            found += [(f"{slug}, 3 years by day, {fmt}",
                       f"/api/v1/open-data/{slug}/?start={three_years}&end={yesterday}{suffix}"),
                      (f"{slug}, 31 days by hour, {fmt}",
                       f"/api/v1/open-data/{slug}/?start={month_ago}&end={yesterday}&resolution=hour{suffix}")]
    for dataset in open_data.datasets():
        if dataset.page_url:
            found.append((f"{dataset.slug} page", dataset.page_url))
        found.append((f"{dataset.slug} JSON", f"/api/v1/open-data/{dataset.slug}/"))
        found.append((f"{dataset.slug} CSV", f"/api/v1/open-data/{dataset.slug}/?format=csv"))
    return found


@dataclass
class Figure:
    name: str
    requests: int
    p50: float
    p99: float
    non_2xx: int
    size: int


_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


def measure(base: str, name: str, path: str, *, seconds: float) -> Figure:
    import urllib.request

    with urllib.request.urlopen(base + path, timeout=60) as response:  # noqa: S310 - loopback, and warms caches
        size = len(response.read())
    done = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds:g}s", "--timeout", "10s", "--latency", base + path],  # noqa: S603, S607
                          capture_output=True, text=True, check=True)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {pct: float(value) * scale[unit] for pct, value, unit in _LATENCY.findall(done.stdout)}
    requests = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)) else 0
    return Figure(name, requests, latency.get("50", float("nan")), latency.get("99", float("nan")), non_2xx, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk seconds per URL (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    parser.add_argument("--trades", action="store_true", help="also one day-ahead trade per hour and series")
    parser.add_argument("--keep", action="store_true", help="reuse the bench database of the last run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/bench.sh installs it (apt-get install wrk)")
    env = common.setup_django(fresh_database=not args.keep)
    env["ROOT_URLCONF"] = "exchange.urls"
    env["RATE_OPEN_DATA"] = "100000000/min"
    if not args.keep:
        began = time.monotonic()
        counts = build(trades=args.trades)
        print(f"data: {', '.join(f'{v:,} {k}' for k, v in counts.items())} in {time.monotonic() - began:.0f} s")
    from bench.bench_order_entry import serve

    log = common.ROOT / "var" / "bench" / "dashboards-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(common.machine())
    print(f"server: scripts/serve.sh http (gunicorn, {args.workers} workers), wrk -t1 -c1 -d{args.seconds:g}s per URL")
    figures: list[Figure] = []
    with serve(env, kind="production", workers=args.workers, log=log) as base:
        reference = measure(base, "reference: methodology page (no data)", "/dashboard/methodology/index/",
                            seconds=args.seconds)
        for name, path in urls():
            figures.append(measure(base, name, path, seconds=args.seconds))
        reference_after = measure(base, "reference again", "/dashboard/methodology/index/", seconds=args.seconds)
    print(f"\n| URL | requests | p50 ms | p99 ms | non-2xx | bytes | goal p50 < {GOAL_MS:.0f} ms |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for figure in [reference, *figures, reference_after]:
        verdict = "" if figure.name.startswith("reference") else ("met" if figure.p50 < GOAL_MS else "**missed**")
        print(f"| {figure.name} | {figure.requests} | {figure.p50:.1f} | {figure.p99:.1f} | {figure.non_2xx} | "
              f"{figure.size:,} | {verdict} |")
    missed = [f.name for f in figures if not f.p50 < GOAL_MS or f.non_2xx]
    print(f"\n{len(figures) - len(missed)} of {len(figures)} URLs under {GOAL_MS:.0f} ms at the median with no error"
          + (f"; missed: {', '.join(missed)}" if missed else ""))


if __name__ == "__main__":
    main()
