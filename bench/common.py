"""Shared set-up of the server benchmarks: a fresh PostgreSQL database, demo
members with cash, capacity and API tokens, one open intraday instrument, and
the exchange served by uvicorn worker processes as in production.

Uses DATABASE_URL's server (default: local PostgreSQL) with a database of its
own, ``rb_bench``, dropped and re-created each run, and REDIS_URL (default:
local Redis, database 8).
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
# BENCH_DB / BENCH_REDIS_PREFIX: a database and prefix of its own where several checkouts share a server.
BENCH_DB = os.environ.get("BENCH_DB") or "rb_bench"
PASSWORD = "bench-password-not-secret"  # noqa: S105 - throwaway accounts in a throwaway database


def _database_urls() -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parsed = urlparse(base)
    admin = urlunparse(parsed._replace(path="/postgres"))
    bench = urlunparse(parsed._replace(path=f"/{BENCH_DB}"))
    return admin, bench


def setup_django(*, fresh_database: bool = True) -> dict[str, str]:
    """Point this process (and the server it starts) at the bench database."""
    import psycopg

    admin, bench = _database_urls()
    if fresh_database:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    env = {
        "DATABASE_URL": bench,
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/8",
        "REDIS_PREFIX": os.environ.get("BENCH_REDIS_PREFIX") or "rbbench",
        "VAR_DIR": str(ROOT / "var" / "bench"),
        "ROOT_URLCONF": "bench.urls",
        "RATE_API_USER": "100000000/min",
        "RATE_API_ANON": "100000000/min",
        "DJANGO_SETTINGS_MODULE": "exchange.settings",
    }
    os.environ.update(env)
    _forget_old_subscribers(env["REDIS_URL"], env["REDIS_PREFIX"])
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def _forget_old_subscribers(redis_url: str, prefix: str) -> None:
    """Drop the bench's keys in Redis: group memberships of the subscribers of
    an earlier run would otherwise live on (channels_redis keeps them for a
    day) and every publish would fan out to them."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@dataclass
class Member:
    email: str
    token: str
    organisation_id: int


def seed(clients: int) -> tuple[str, list[Member]]:
    """`clients` approved organisations, each with cash, a big site and a token;
    returns one open H100 intraday instrument's symbol and the members."""
    from django.utils import timezone

    from accounts.models import KycCase
    from accounts.services import api_token_create
    from clearing.services import cash_deposit_book
    from market.demo import seed_market
    from market.models import GpuClass, Instrument, InstrumentStatus, Site, SiteCapacity
    from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

    now = timezone.now()
    seed_market(now=now)
    instrument = (
        Instrument.objects.filter(segment="intraday", status=InstrumentStatus.OPEN, gpu_class__code="H100",
                                  zone__code="DE", closes_at__gt=now + timezone.timedelta(minutes=20))
        .order_by("delivery_start").first()
    )
    if instrument is None:
        raise SystemExit("no open H100.DE intraday instrument to benchmark on")
    operator = UserFactory(email="bench-operator@bench.example", is_staff=True, password=PASSWORD)
    h100 = GpuClass.objects.get(code="H100")
    members = []
    for n in range(clients):
        organisation = OrganisationFactory(kyc__status=KycCase.Status.APPROVED, state="DE-BY")
        user = UserFactory(email=f"client{n}@bench.example", password=PASSWORD)
        MembershipFactory(user=user, organisation=organisation, is_owner=True, is_trader=True, is_provider=True)
        site = Site.objects.create(organisation=organisation, name="Bench", state="DE-BY",
                                   energy_source="renewable", pue=Decimal("1.20"))
        SiteCapacity.objects.create(site=site, gpu_class=h100, gpus=1_000_000)
        cash_deposit_book(operator=operator, organisation=organisation, amount=Decimal("1000000000.00"),
                          bank_reference=f"BENCH-{n}")
        issued = api_token_create(email=user.email, password=PASSWORD)
        members.append(Member(user.email, issued.key, organisation.pk))
    return instrument.symbol, members


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(env: dict[str, str], *, workers: int) -> Iterator[str]:
    """The exchange under uvicorn with `workers` processes; yields its base URL."""
    import requests

    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
        [sys.executable, "-m", "uvicorn", "exchange.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/healthz/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> str:
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model or platform.processor()}, Python {platform.python_version()}"
