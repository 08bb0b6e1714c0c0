"""Benchmark (b): order entry over HTTP on PostgreSQL, driven by wrk.

Set-up: a fresh PostgreSQL database (``rb_bench``) with the demo world
(``manage.py seed_demo --no-trading``: two start-ups that buy, two providers
that sell; not the demo market makers' book),
the providers' H100 capacity and everyone's cash raised so nothing runs out,
API throttles raised, and the HTTP API served the way production serves it
(``scripts/serve.sh http``: gunicorn, ``--workers`` processes). wrk (a client
written in C, so that it takes little of the CPU the server needs) posts with
bench/wrk_orders.lua:

- orders:    ``wrk -t2 -c8`` 1-GPU limit orders, random side, 10.00 +/- 0.30 EUR,
             across every open H100 DE intraday hour; buys carry a start-up's
             token, sells a provider's;
- floor:     the same bodies to a DRF view doing one SELECT ... FOR UPDATE, one
             UPDATE and one INSERT (bench/reference.py) on the same server,
             interleaved with the order runs (floor, orders, floor, orders);
- batch:     ``POST /api/v1/orders/batch/`` with 100 such orders per request;
- resting:   ``wrk -t1 -c1`` buys at 5.00 EUR that never cross (they rest).

Per run it prints requests/s, p50, p99, non-2xx, timeouts (``--timeout 5s``)
and the deadlock retries the server logged (``order transaction aborted``),
then each goal of issue 7 beside its figure, then ``reconcile`` on the bench
database after the load. Loopback only; the whole run takes about
``6 x --seconds`` plus set-up (~2 minutes at the default).

    .venv/bin/python bench/bench_order_entry.py [--seconds 10] [--workers 4] [--server production|uvicorn]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

LUA = common.ROOT / "bench" / "wrk_orders.lua"
DEADLOCK_LINE = "order transaction aborted"  # market.services.orders logs it at WARNING per retry
CAPACITY = 1_000_000  # H100 per provider site: sells never run out
CASH = Decimal("100000000.00")  # extra EUR per organisation: buys never run out


@dataclass
class World:
    symbols: list[str]
    buyers: list[str]  # API tokens
    sellers: list[str]


@dataclass
class Result:
    name: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    timeouts: int
    non2xx: int
    c4xx: int
    c5xx: int
    errors: int  # connect, read and write errors
    deadlock_retries: int
    server_errors_logged: int
    orders_ok: int = 0  # batch: orders inside the responses
    orders_failed: int = 0
    unanswered: int = 0  # requests sent but not answered when wrk stopped
    written: int = 0  # rows the server wrote from the start of the run until it was idle again
    written_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rate(self) -> float:
        return (self.requests - self.non2xx) / self.seconds if self.seconds else 0.0


def seed_world() -> World:
    """The demo world, with capacity and cash to spare, and the open H100 DE hours."""
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.demo import demo_password
    from accounts.models import Membership, User
    from accounts.services import api_token_create
    from clearing.services import cash_deposit_book
    from market.models import GpuClass, Instrument, InstrumentStatus, Site
    from market.services.capacity import site_capacity_set

    # The demo members without the market makers' quotes and history: a book of our own.
    call_command("seed_demo", "--no-trading", stdout=io.StringIO())
    operator = User.objects.filter(is_staff=True).order_by("pk").first()
    if operator is None:
        raise SystemExit("seed_demo made no operator")
    h100 = GpuClass.objects.get(code="H100")
    for email in ("provider@demo.example", "provider2@demo.example"):
        membership = Membership.objects.select_related("organisation", "user").get(user__email=email)
        for site in Site.objects.filter(organisation=membership.organisation, capacities__gpu_class=h100):
            site_capacity_set(user=membership.user, site=site, gpu_class=h100, gpus=CAPACITY)
    tokens: dict[str, str] = {}
    for n, email in enumerate(("startup@demo.example", "startup2@demo.example",
                               "provider@demo.example", "provider2@demo.example")):
        membership = Membership.objects.select_related("organisation").get(user__email=email)
        cash_deposit_book(operator=operator, organisation=membership.organisation, amount=CASH,
                          bank_reference=f"BENCH-{n}")
        tokens[email] = api_token_create(email=email, password=demo_password()).key
    soon = timezone.now() + timezone.timedelta(minutes=15)  # still open when the last run ends
    symbols = list(
        Instrument.objects.filter(segment="intraday", status=InstrumentStatus.OPEN, gpu_class=h100,
                                  zone__code="DE", closes_at__gt=soon)
        .order_by("delivery_start").values_list("symbol", flat=True)
    )
    if not symbols:
        raise SystemExit("no open H100 DE intraday hour to benchmark on")
    return World(symbols, [tokens["startup@demo.example"], tokens["startup2@demo.example"]],
                 [tokens["provider@demo.example"], tokens["provider2@demo.example"]])


@contextmanager
def serve(env: dict[str, str], *, kind: str, workers: int, log: Path) -> Iterator[str]:
    """The HTTP API in its own process group; yields the base URL."""
    port = common.free_port()
    if kind == "production":
        command = ["scripts/serve.sh", "http"]
    else:  # the set-up, for comparison
        command = [sys.executable, "-m", "uvicorn", "exchange.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    server_env = {**os.environ, **env, "BIN": str(Path(sys.executable).parent),
                  "HTTP_BIND": f"127.0.0.1:{port}", "HTTP_WORKERS": str(workers), "DEBUG": "0",
                  # Production logs WARNING and up; the deadlock retries are WARNINGs.
                  "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=common.ROOT, env=server_env, stdout=out,  # noqa: S603
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz/", timeout=5).close()  # noqa: S310 - our own loopback URL
                break
            except urllib.error.HTTPError:
                break  # it answers (503 without a Celery worker is fine here)
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"the server did not start; see {log}") from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def drain(timeout: float = 120) -> None:
    """Wait until the server has finished the requests wrk left in flight
    (no other session on the bench database is in a statement or a
    transaction), so that one run's backlog does not slow the next."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    quiet_since = None
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
            (busy,) = cursor.fetchone()
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= 0.3:
                return
            time.sleep(0.05)
    print(f"warning: the server was still busy {timeout:.0f} s after a run ended; the next run overlaps it")


def rows_written(mode: str) -> int:
    from django.db import connection

    from bench.reference import ORDERS

    table = ORDERS if mode == "reference" else "market_order"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - one of two fixed names
        (count,) = cursor.fetchone()
    return int(count)


def wrk(url: str, world: World, mode: str, *, seconds: float, threads: int, connections: int, log: Path,
        name: str) -> Result:
    drain()
    before = log.stat().st_size
    rows_before, began = rows_written(mode), time.monotonic()
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(LUA), url,
               "--", mode, ",".join(world.buyers), ",".join(world.sellers), ",".join(world.symbols)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
    drain()  # the retries of requests still in flight belong to this run
    written, written_seconds = rows_written(mode) - rows_before, time.monotonic() - began
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    with log.open("rb") as server_log:
        server_log.seek(before)
        new = server_log.read().decode(errors="replace")
    return Result(
        name=name, connections=connections, requests=data["requests"], seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, timeouts=data["timeouts"],
        non2xx=data["non2xx"], c4xx=data["c4xx"], c5xx=data["c5xx"],
        errors=data["connect_errors"] + data["read_errors"] + data["write_errors"],
        deadlock_retries=new.count(DEADLOCK_LINE),
        server_errors_logged=new.count("Internal Server Error") + new.count("Traceback"),
        orders_ok=data["orders_ok"], orders_failed=data["orders_failed"],
        unanswered=max(0, data["sent"] - data["requests"] - 1),  # wrk makes one request up front to check it
        written=written, written_seconds=written_seconds,
    )


def merge(name: str, runs: list[Result]) -> Result:
    """Interleaved runs of one kind: counts and time add up; p50 and p99 are the worst run's."""
    return Result(
        name=name, connections=runs[0].connections, requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs), p50_ms=max(r.p50_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs), timeouts=sum(r.timeouts for r in runs),
        non2xx=sum(r.non2xx for r in runs), c4xx=sum(r.c4xx for r in runs), c5xx=sum(r.c5xx for r in runs),
        errors=sum(r.errors for r in runs), deadlock_retries=sum(r.deadlock_retries for r in runs),
        server_errors_logged=sum(r.server_errors_logged for r in runs),
    )


def row(result: Result) -> str:
    return (f"| {result.name} | {result.connections} | {result.rate:,.1f} | {result.p50_ms:,.1f} | "
            f"{result.p99_ms:,.1f} | {result.non2xx} ({result.c5xx} 5xx) | {result.timeouts} | {result.errors} | "
            f"{result.deadlock_retries} |")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def reconcile() -> str:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    try:
        call_command("reconcile", stdout=out, no_color=True)
    except CommandError as error:
        return f"BROKEN ({error})\n" + "\n".join(x for x in out.getvalue().splitlines() if x.startswith("BROKEN"))
    return f"clean ({len(out.getvalue().splitlines())} checks OK)"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--workers", type=int, default=4, help="server worker processes (default 4)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections of the order runs (default 8)")
    parser.add_argument("--batch-connections", type=int, default=4, help="wrk connections of the batch run")
    parser.add_argument("--server", choices=["production", "uvicorn"], default="production",
                        help="production: scripts/serve.sh http (gunicorn); uvicorn: the issue's ASGI set-up")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/bench.sh installs it (apt-get install wrk)")

    started = time.monotonic()
    env = common.setup_django()
    from django.conf import settings

    from bench.reference import create_tables

    world = seed_world()
    create_tables(world.symbols)
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    connections = (f"psycopg pool {pool}" if pool
                   else f"CONN_MAX_AGE={settings.DATABASES['default'].get('CONN_MAX_AGE')}")
    server = (f"scripts/serve.sh http (gunicorn, {args.workers} workers)" if args.server == "production"
              else f"uvicorn --workers {args.workers}")
    print(f"machine: {common.machine()}; load average {os.getloadavg()[0]:.1f} (the CPU may be shared)")
    print(f"server: {server}; database connections: {connections}")
    print(f"instruments: {len(world.symbols)} open H100 DE hours ({world.symbols[0]} .. {world.symbols[-1]}); "
          f"2 buyers, 2 sellers; set-up {time.monotonic() - started:.0f} s")
    log = Path(env["VAR_DIR"]) / f"server-{args.server}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    c = args.connections
    with serve(env, kind=args.server, workers=args.workers, log=log) as url:
        # Warm-up: imports, connections and caches of every worker process.
        wrk(url, world, "reference", seconds=2, threads=2, connections=c, log=log, name="warm-up")
        wrk(url, world, "orders", seconds=2, threads=2, connections=c, log=log, name="warm-up")
        floors, orders = [], []
        for _ in range(2):  # interleaved: drift on the shared machine hits both alike
            floors.append(wrk(url, world, "reference", seconds=args.seconds, threads=2, connections=c, log=log,
                              name="floor"))
            orders.append(wrk(url, world, "orders", seconds=args.seconds, threads=2, connections=c, log=log,
                              name="orders"))
        batch = wrk(url, world, "batch", seconds=args.seconds, threads=2, connections=args.batch_connections,
                    log=log, name="batch (100 per request)")
        resting = wrk(url, world, "rest", seconds=args.seconds, threads=1, connections=1, log=log,
                      name="resting order, 1 connection")

    print()
    print("| run | conns | req/s | p50 ms | p99 ms | non-2xx | timeouts | socket errors | deadlock retries |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in [*[r for pair in zip(floors, orders, strict=True) for r in pair], batch, resting]:
        print(row(result))
    floor, order = merge("floor, 2 runs", floors), merge("orders, 2 runs", orders)
    print(row(floor))
    print(row(order))
    batch_orders = batch.written / batch.written_seconds if batch.written_seconds else 0.0
    print(f"batch: {batch.orders_ok:,} orders entered in answered requests ({batch.orders_failed:,} refused inside "
          f"200 answers), {batch.unanswered} requests unanswered when wrk stopped; the server wrote "
          f"{batch.written:,} orders in {batch.written_seconds:.1f} s (until it was idle): "
          f"{batch_orders:,.0f} orders/s")
    logged = sum(r.server_errors_logged for r in [*floors, *orders, batch, resting])
    if logged:
        print(f"server log: {logged} error lines (Internal Server Error / Traceback), see {log}")
        errors = [x for x in log.read_text(errors="replace").splitlines() if DEADLOCK_LINE not in x]
        print("\n".join("  " + x for x in errors[:20]))

    everything = [*floors, *orders, batch, resting]
    retries = sum(r.deadlock_retries for r in everything)
    timeouts = sum(r.timeouts for r in everything)
    fives = sum(r.c5xx for r in everything)
    share = order.ok_rate / floor.ok_rate if floor.ok_rate else 0.0
    print()
    print("goals (issue 7):")
    print(f"  no deadlock retry:                    {retries:>10}          {verdict(retries == 0)}")
    print(f"  no timeout (5 s):                     {timeouts:>10}          {verdict(timeouts == 0)}")
    print(f"  no 5xx:                               {fives:>10}          {verdict(fives == 0)}")
    print(f"  orders >= 30 % of the floor's rate:   {share:>10.1%}          {verdict(share >= 0.30)}"
          f"   ({order.ok_rate:,.1f} vs {floor.ok_rate:,.1f} 2xx/s)")
    print(f"  p99 <= 3 x the floor's p99:           {order.p99_ms:>7.1f} ms       "
          f"{verdict(order.p99_ms <= 3 * floor.p99_ms)}   (floor {floor.p99_ms:.1f} ms, limit {3 * floor.p99_ms:.1f})")
    print(f"  resting order, 1 connection, p50:     {resting.p50_ms:>7.1f} ms       "
          f"{verdict(resting.p50_ms < 15)}   (goal < 15 ms)")
    print(f"  batch endpoint:                       {batch_orders:>10,.0f} /s       "
          f"{verdict(batch_orders >= 2000)}   (goal >= 2,000 orders/s)")
    print(f"reconcile after the load: {reconcile()}")
    print(f"whole run: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
