"""Demo products (market rules §1): the five demo GPU classes, then listing;
the demo providers' sites and capacity (``seed_sites``); and the market
makers' week of trades and resting quotes (``seed_history``, ``seed_quotes``).

Call ``seed_market()``, ``seed_history()`` and ``seed_quotes()`` outside any
transaction: the listing and order services are durable
(``transaction.atomic(durable=True)``) and refuse to run inside one.
"""

import hashlib
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.demo import demo_organisation, demo_organisation_name
from accounts.models import Membership, Organisation, User
from clearing.demo import maker_deliveries_advance
from clearing.models import FeeAccrual, JournalEntry
from exchange.errors import ExchangeError
from market import calendar, services
from market.models import (
    RESTING_STATUSES,
    DeliveryStandard,
    EnergySource,
    GpuClass,
    Instrument,
    InstrumentStatus,
    Order,
    Segment,
    Side,
    Site,
    SiteCapacity,
    TimeInForce,
    Trade,
)

log = logging.getLogger(__name__)

# Benchmark: the sustained dense BF16 GEMM throughput a delivered GPU must
# reach in the exchange's acceptance test (below the data-sheet peak).
BENCHMARK_UNIT = "TFLOPS BF16 dense GEMM"

DEMO_CLASSES = [
    {"code": "H100", "name": "NVIDIA H100 SXM5 80 GB", "memory_gb": 80,
     "interconnect": "NVLink 4 (900 GB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("700"), "delivery_standard": DeliveryStandard.BARE_METAL,
     "power_draw_kw": Decimal("1.275")},
    {"code": "H200", "name": "NVIDIA H200 SXM 141 GB", "memory_gb": 141,
     "interconnect": "NVLink 4 (900 GB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("720"), "delivery_standard": DeliveryStandard.BARE_METAL,
     "power_draw_kw": Decimal("1.275")},
    {"code": "B200", "name": "NVIDIA B200 SXM 180 GB", "memory_gb": 180,
     "interconnect": "NVLink 5 (1.8 TB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("1500"), "delivery_standard": DeliveryStandard.BARE_METAL,
     "power_draw_kw": Decimal("1.788")},
    {"code": "A100", "name": "NVIDIA A100 SXM4 80 GB", "memory_gb": 80,
     "interconnect": "NVLink 3 (600 GB/s), InfiniBand HDR 200 Gb/s",
     "min_benchmark_value": Decimal("250"), "delivery_standard": DeliveryStandard.BARE_METAL,
     "power_draw_kw": Decimal("0.813")},
    {"code": "L40S", "name": "NVIDIA L40S 48 GB", "memory_gb": 48,
     "interconnect": "PCIe 4.0 x16, Ethernet 100 Gb/s",
     "min_benchmark_value": Decimal("250"), "delivery_standard": DeliveryStandard.VM_ROOT,
     "power_draw_kw": Decimal("0.550")},
]


@dataclass(frozen=True)
class SeedResult:
    classes_created: int
    instruments_listed: int
    opened: int
    closed: int


def seed_market(*, now: datetime | None = None) -> SeedResult:
    """Create the demo GPU classes (keeping any operator edits) and list
    their instruments. Idempotent."""
    created = 0
    for spec in DEMO_CLASSES:
        _obj, was_created = GpuClass.objects.get_or_create(
            code=spec["code"], defaults={**spec, "min_benchmark_unit": BENCHMARK_UNIT})
        created += was_created
    now = now or timezone.now()
    listed = services.instruments_list_upcoming(now=now)
    opened, closed = services.instruments_open_close(now=now)
    return SeedResult(classes_created=created, instruments_listed=listed, opened=opened, closed=closed)


# --- provider sites ----------------------------------------------------------------------

# (organisation key in accounts.demo, site name, state, energy source, PUE, {class: GPUs})
DEMO_SITES: list[tuple[str, str, str, str, Decimal, dict[str, int]]] = [
    ("provider", "RZ München-Freimann", "DE-BY", EnergySource.RENEWABLE, Decimal("1.18"), {"H100": 384, "H200": 256}),
    ("provider", "RZ Nürnberg-Hafen", "DE-BY", EnergySource.GRID_MIX, Decimal("1.35"), {"H100": 128}),
    ("provider2", "RZ Köln-Ossendorf", "DE-NW", EnergySource.OWN_GENERATION, Decimal("1.25"),
     {"H100": 256, "A100": 128}),
    # The market makers sell from sites in both state zones they quote.
    ("maker", "Taktgeber RZ Augsburg", "DE-BY", EnergySource.RENEWABLE, Decimal("1.22"),
     {"H100": 256, "H200": 128, "A100": 128}),
    ("maker", "Taktgeber RZ Düsseldorf", "DE-NW", EnergySource.GRID_MIX, Decimal("1.31"),
     {"H100": 256, "H200": 128, "A100": 128}),
    ("maker2", "Nordkurs RZ Regensburg", "DE-BY", EnergySource.RENEWABLE, Decimal("1.20"),
     {"H100": 256, "H200": 128, "A100": 128}),
    ("maker2", "Nordkurs RZ Dortmund", "DE-NW", EnergySource.OWN_GENERATION, Decimal("1.27"),
     {"H100": 256, "H200": 128, "A100": 128}),
]


@dataclass(frozen=True)
class SitesSeedResult:
    sites: list[str]
    created: int


@transaction.atomic
def seed_sites(organisations: Mapping[str, Organisation] | None = None) -> SitesSeedResult:
    """The demo providers' sites and GPUs (after ``seed_accounts`` and
    ``seed_market``): Alpenrechen (DE-BY) 512 H100 and 256 H200 over two
    sites, Rheinland Compute (DE-NW) 256 H100 and 128 A100, and each market
    maker a site in DE-BY and in DE-NW. Idempotent: sites
    are found by (organisation, name) and brought back to the demo figures;
    classes a demo site should not have are removed from it. Written directly,
    like the rest of the demo data (no audit entries for fixtures)."""
    organisations = organisations or {key: demo_organisation(key) for key in {spec[0] for spec in DEMO_SITES}}
    classes = {gpu_class.code: gpu_class for gpu_class in GpuClass.objects.all()}
    lines, created = [], 0
    for key, name, state, energy_source, pue, gpus in DEMO_SITES:
        organisation = organisations[key]
        site, was_created = Site.objects.update_or_create(
            organisation=organisation, name=name,
            defaults={"state": state, "energy_source": energy_source, "pue": pue},
        )
        created += was_created
        for code, count in gpus.items():
            SiteCapacity.objects.update_or_create(site=site, gpu_class=classes[code], defaults={"gpus": count})
        site.capacities.exclude(gpu_class__code__in=list(gpus)).delete()
        summary = ", ".join(f"{count} {code}" for code, count in gpus.items())
        lines.append(f"{organisation.legal_name}: {name} ({state}) {summary}")
    return SitesSeedResult(sites=lines, created=created)


# --- a living market: the market makers' history and quotes --------------------------------
#
# Every order below goes through ``order_submit`` / ``order_cancel`` with the
# market makers' own traders, so the ledger, positions, fees, site use and
# delivery tickets are exactly what a real trade leaves. The week of history
# is entered under a controlled clock (the services' ``now``), oldest first,
# so each trade is judged at the moment it claims; see docs/demo.md.

MAKERS = ("maker", "maker2")
MAIN_CLASSES = ("H100", "H200", "A100")
MAIN_ZONES = ("DE", "DE-BY", "DE-NW")
# Delivery hours (local) of the past days that get a trade: the week's chart
# has a point every three hours of the day.
HISTORY_HOURS = (1, 4, 7, 10, 13, 16, 19, 22)
HISTORY_DAYS = 7
# Where each class trades (EUR per GPU-hour) at the quiet hours of a weekday.
REFERENCE_PRICES = {"H100": Decimal("2.40"), "H200": Decimal("3.10"), "A100": Decimal("1.35"),
                    "B200": Decimal("4.80"), "L40S": Decimal("0.95")}
ZONE_PREMIUM = {"DE": Decimal("0.00"), "DE-BY": Decimal("0.04"), "DE-NW": Decimal("0.02")}
CLIENT_PREFIX = "demo:"
TICK = Decimal("0.01")


def _rng(*parts: object) -> random.Random:
    """A generator seeded by ``parts``: the same instrument gets the same
    demo prices on every machine and every run."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (demo prices, not security)


def demo_price(instrument: Instrument) -> Decimal:
    """A plausible price for ``instrument``: the class's reference, dearer in
    the afternoon and on weekdays, a little dearer in a state's own zone,
    and a few per cent of noise of its own."""
    base = REFERENCE_PRICES.get(instrument.gpu_class.code, Decimal("2.00"))
    local = instrument.delivery_start.astimezone(calendar.BERLIN)
    daily = Decimal(str(round(0.12 * math.cos((local.hour - 15) / 24 * 2 * math.pi), 4)))
    weekend = Decimal("-0.06") if local.weekday() >= 5 else Decimal("0")
    noise = Decimal(str(round(_rng(instrument.symbol).uniform(-0.03, 0.03), 4)))
    price = base * (1 + daily + weekend + noise) + ZONE_PREMIUM.get(instrument.zone.code, Decimal("0"))
    return max(price, Decimal("0.10")).quantize(TICK)


def maker_traders() -> dict[str, User]:
    """The trader of each demo market maker that exists (none before ``seed_demo``)."""
    names = {key: demo_organisation_name(key) for key in MAKERS}
    traders: dict[str, User] = {}
    for membership in (Membership.objects.select_related("user", "organisation")
                       .filter(organisation__legal_name__in=names.values(), is_trader=True,
                               user__is_active=True).order_by("user_id")):
        for key, name in names.items():
            if membership.organisation.legal_name == name:
                traders.setdefault(key, membership.user)
    return traders


def _main_instruments() -> QuerySet[Instrument]:
    return Instrument.objects.select_related("gpu_class", "zone").filter(
        segment=Segment.INTRADAY, gpu_class__code__in=MAIN_CLASSES, zone__code__in=MAIN_ZONES)


def _month_closed(month: date) -> bool:
    """Whether a month's fees are already charged or swept: a trade entered
    into it now would accrue fees that are never charged."""
    return (FeeAccrual.objects.filter(month=month, charged_at__isnull=False).exists()
            or JournalEntry.objects.filter(kind=JournalEntry.Kind.FEE,
                                           reference=f"fees-sweep:{month:%Y-%m}").exists())


@dataclass(frozen=True)
class _PlannedTrade:
    at: datetime
    instrument: Instrument
    seller: str
    buyer: str
    aggressor: str
    price: Decimal
    quantity: int
    key: str


def _plan(instrument: Instrument, at: datetime, reference: Decimal | None = None) -> _PlannedTrade:
    rng = _rng("trade", instrument.symbol)
    seller, buyer = MAKERS if rng.random() < 0.5 else tuple(reversed(MAKERS))
    price = reference if reference is not None else demo_price(instrument)
    return _PlannedTrade(at=at, instrument=instrument, seller=seller, buyer=buyer,
                         aggressor=Side.BUY if rng.random() < 0.5 else Side.SELL, price=price,
                         quantity=rng.randrange(2, 25, 2), key=f"{CLIENT_PREFIX}{instrument.symbol}")


def _execute(plan: _PlannedTrade, traders: dict[str, User], used: set[str | None]) -> bool:
    """The resting side, then the aggressor one second later, both at the
    planned price: one trade of the planned quantity. False if refused (the
    reason is logged) or already done by an earlier run."""
    maker_side = Side.SELL if plan.aggressor == Side.BUY else Side.BUY
    sides: dict[str, str] = {Side.SELL: plan.seller, Side.BUY: plan.buyer}
    taker_id = f"{plan.key}:t"
    if taker_id in used:
        return False
    services.instruments_open_close(now=plan.at)
    instrument = Instrument.objects.select_related("gpu_class", "zone").get(pk=plan.instrument.pk)
    try:
        services.order_submit(user=traders[sides[maker_side]], instrument=instrument, side=maker_side,
                              quantity=plan.quantity, price=plan.price, client_order_id=f"{plan.key}:m",
                              now=plan.at)
        services.order_submit(user=traders[sides[plan.aggressor]], instrument=instrument, side=plan.aggressor,
                              quantity=plan.quantity, price=plan.price, time_in_force=TimeInForce.IOC,
                              client_order_id=taker_id, now=plan.at + timedelta(seconds=1))
    except ExchangeError as error:
        log.warning("demo trade in %s refused: %s %s", instrument.symbol, error.code, error.detail)
        return False
    return True


@dataclass(frozen=True)
class HistoryResult:
    listed: int
    trades: int


def seed_history(*, now: datetime | None = None, days: int = HISTORY_DAYS) -> HistoryResult:
    """A week of trades between the market makers: one trade in each main
    class and zone at every ``HISTORY_HOURS`` hour of the last ``days``
    days, and one earlier today in every main instrument open now, so the
    last prices and volumes show something. Entered oldest first under the
    services' clock; the instruments of the past days are listed by the
    listing service as the beat job would have. Idempotent: each trade's
    orders carry a fixed ``client_order_id``; days in a month whose fees
    are already charged get none. Call outside any transaction."""
    now = now or timezone.now()
    traders = maker_traders()
    if set(traders) != set(MAKERS):
        return HistoryResult(0, 0)
    today = now.astimezone(calendar.BERLIN).date()
    listed = 0
    for offset in range(days, 0, -1):
        # The listing run of that morning: the day and the next one.
        listed += services.instruments_list_upcoming(now=calendar.local_midnight(today - timedelta(days=offset)))
    first = calendar.local_midnight(today - timedelta(days=days))
    used = set(Order.objects.filter(organisation__legal_name__in=[demo_organisation_name(key) for key in MAKERS],
                                    client_order_id__startswith=CLIENT_PREFIX)
               .values_list("client_order_id", flat=True))
    plans = []
    closed_months: dict[date, bool] = {}
    for instrument in _main_instruments().filter(delivery_start__gte=first, closes_at__lte=now):
        local = instrument.delivery_start.astimezone(calendar.BERLIN)
        if local.hour not in HISTORY_HOURS:
            continue
        # Some minutes to hours before the gate closes, as most intraday volume trades.
        at = instrument.closes_at - timedelta(minutes=_rng("at", instrument.symbol).randrange(5, 240))
        month = at.astimezone(calendar.BERLIN).date().replace(day=1)
        if month not in closed_months:
            closed_months[month] = _month_closed(month)
        if not closed_months[month]:
            plans.append(_plan(instrument, max(at, instrument.opens_at)))
    for instrument in _main_instruments().filter(status=InstrumentStatus.OPEN, opens_at__lt=now, closes_at__gt=now):
        # Between the opening and now, but after any trade it already has.
        earliest = max(instrument.opens_at, instrument.last_trade_at or instrument.opens_at)
        if earliest < now - timedelta(seconds=2):
            share = _rng("open", instrument.symbol).uniform(0.3, 0.9)
            plans.append(_plan(instrument, earliest + (now - timedelta(seconds=2) - earliest) * share))
    trades = 0
    for plan in sorted(plans, key=lambda p: (p.at, p.instrument.pk)):
        trades += _execute(plan, traders, used)
    # Back to the real clock: the past hours close, and their leftovers expire.
    services.instruments_open_close(now=now)
    services.orders_expire(now=now)
    return HistoryResult(listed=listed, trades=trades)


def _quote_prices(reference: Decimal, key: str, rng: random.Random) -> tuple[Decimal, Decimal]:
    """One market maker's bid and ask around ``reference``: the first quotes
    the tighter bid, the second the tighter ask, so they never cross."""
    inner, outer = TICK * rng.randint(1, 3), TICK * rng.randint(4, 7)
    if key == MAKERS[0]:
        return reference - inner, reference + outer
    return reference - outer, reference + inner


def _reference(instrument: Instrument) -> Decimal:
    last = Trade.objects.filter(instrument=instrument).order_by("-executed_at", "-id").values_list(
        "price", flat=True).first()
    return last if last is not None else demo_price(instrument)


def quote(*, instrument: Instrument, trader: User, key: str, reference: Decimal, rng: random.Random,
          client_order_id: str | None = None, now: datetime | None = None) -> int:
    """Rest one bid and one ask of market maker ``key`` around ``reference``
    (GTC). Answers how many orders were entered; a refused side is logged."""
    bid, ask = _quote_prices(reference, key, rng)
    entered = 0
    for side, price in ((Side.BUY, bid), (Side.SELL, ask)):
        price = min(max(price, max(instrument.min_price, TICK * 3)), instrument.max_price)
        try:
            result = services.order_submit(
                user=trader, instrument=instrument, side=side, quantity=rng.randrange(4, 33, 4), price=price,
                client_order_id=f"{client_order_id}:{side}" if client_order_id else None, now=now)
        except ExchangeError as error:
            log.warning("demo quote in %s refused: %s %s", instrument.symbol, error.code, error.detail)
            continue
        entered += result.created
    return entered


def seed_quotes(*, now: datetime | None = None) -> int:
    """Resting bids and asks of both market makers in every main class and
    zone for every hour open now. Idempotent: each quote has a fixed
    ``client_order_id``, so a second run finds it (even if it traded since)."""
    now = now or timezone.now()
    traders = maker_traders()
    if set(traders) != set(MAKERS):
        return 0
    entered = 0
    for instrument in _main_instruments().filter(status=InstrumentStatus.OPEN, opens_at__lte=now,
                                                 closes_at__gt=now).order_by("delivery_start", "symbol"):
        reference = _reference(instrument)
        for key in MAKERS:
            entered += quote(instrument=instrument, trader=traders[key], key=key, reference=reference,
                             rng=_rng("quote", instrument.symbol, key),
                             client_order_id=f"{CLIENT_PREFIX}q:{instrument.symbol}:{key}")
    return entered


# --- the demo market maker job (demo mode only) ----------------------------------------------


@dataclass(frozen=True)
class MakerStep:
    """What one run of the demo market maker did."""

    active: bool
    cancelled: int = 0
    quoted: int = 0
    crossed: int = 0
    access_posted: int = 0
    confirmed: int = 0


def market_maker_step(*, now: datetime | None = None, rng: random.Random | None = None, instruments: int = 3,
                      cross_probability: float = 0.3) -> MakerStep:
    """One step of the demo market makers, through the order and delivery
    services: in ``instruments`` open main hours picked at random each
    replaces its quotes around the last price (moved a tick or two), and
    with ``cross_probability`` one of them takes the other side's best
    price for a few GPUs, so a trade prints. Then they deliver what they
    sold and confirm what they bought (``clearing.demo``).

    Does nothing outside demo mode (``settings.DEMO``) or before
    ``seed_demo`` has created the market makers."""
    if not settings.DEMO:
        return MakerStep(active=False)
    traders = maker_traders()
    if set(traders) != set(MAKERS):
        return MakerStep(active=False)
    now = now or timezone.now()
    rng = rng or random.Random()  # noqa: S311 (demo quotes, not security)
    open_now = list(_main_instruments().filter(status=InstrumentStatus.OPEN, opens_at__lte=now, closes_at__gt=now)
                    .order_by("pk"))
    chosen = rng.sample(open_now, min(instruments, len(open_now)))
    organisations = {key: user.membership.organisation_id for key, user in traders.items()}
    cancelled = quoted = crossed = 0
    for instrument in chosen:
        reference = _reference(instrument) + TICK * rng.randint(-2, 2)
        for key, user in traders.items():
            for order_id in Order.objects.filter(instrument=instrument, organisation_id=organisations[key],
                                                 status__in=RESTING_STATUSES).values_list("pk", flat=True):
                try:
                    services.order_cancel(user=user, order_id=order_id)
                    cancelled += 1
                except ExchangeError as error:  # traded or cancelled meanwhile
                    log.info("demo cancel of order %s: %s", order_id, error.code)
            quoted += quote(instrument=instrument, trader=user, key=key, reference=reference, rng=rng)
    if chosen and rng.random() < cross_probability:
        crossed = _cross(rng.choice(chosen), traders, rng)
    deliveries = maker_deliveries_advance(traders=traders, now=now)
    return MakerStep(active=True, cancelled=cancelled, quoted=quoted, crossed=crossed,
                     access_posted=deliveries.access_posted, confirmed=deliveries.confirmed)


def _cross(instrument: Instrument, traders: dict[str, User], rng: random.Random) -> int:
    """One market maker takes the best opposite price in ``instrument`` for
    a few GPUs (IOC): answers 1 if it traded."""
    key = rng.choice(MAKERS)
    side = rng.choice((Side.BUY, Side.SELL))
    opposite = Side.SELL if side == Side.BUY else Side.BUY
    best = (Order.objects.filter(instrument=instrument, side=opposite, status__in=RESTING_STATUSES)
            .exclude(organisation_id=traders[key].membership.organisation_id)
            .order_by("price" if opposite == Side.SELL else "-price", "priority").first())
    if best is None:
        return 0
    try:
        result = services.order_submit(user=traders[key], instrument=instrument, side=side,
                                       quantity=min(best.remaining_quantity, rng.randrange(2, 9, 2)), price=best.price,
                                       time_in_force=TimeInForce.IOC)
    except ExchangeError as error:
        log.info("demo cross in %s refused: %s %s", instrument.symbol, error.code, error.detail)
        return 0
    return int(result.order.filled_quantity > 0)
