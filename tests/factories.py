"""factory_boy factories shared by the whole suite. Each app adds its own
below its heading; keep them valid by default (a factory's product passes
the model's full_clean) and make the unusual explicit with arguments."""

import datetime
import hashlib
import itertools

import factory
from allauth.account.models import EmailAddress
from django.core.files.base import ContentFile
from stdnum.iso7064 import mod_11_10

from accounts.models import KycCase, KycDocument, Membership, Organisation, User

TEST_PASSWORD = "correct horse battery staple"

# Smallest bytes that content sniffing recognises as each accepted type.
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"

_vat_serial = itertools.count(10_000_000)


def valid_vat_id(first_eight: str | None = None) -> str:
    """A German VAT ID with the right MOD 11,10 check digit."""
    digits = first_eight or f"{next(_vat_serial) % 100_000_000:08d}"
    return f"DE{digits}{mod_11_10.calc_check_digit(digits)}"


def invalid_vat_id(first_eight: str = "13669597") -> str:
    """The same, with a wrong check digit."""
    right = int(mod_11_10.calc_check_digit(first_eight))
    return f"DE{first_eight}{(right + 1) % 10}"


# --- accounts -----------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name", locale="de_DE")
    is_active = True

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save(update_fields=["password"])

    @factory.post_generation
    def verified(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        # allauth's mandatory verification: a user without a verified address
        # can't log in. Pass verified=False for one who hasn't confirmed yet.
        if create:
            EmailAddress.objects.create(
                user=self, email=self.email, primary=True, verified=True if extracted is None else extracted
            )


class KycCaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KycCase

    status = KycCase.Status.DRAFT


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        skip_postgeneration_save = True

    kind = Organisation.Kind.MEMBER
    legal_name = factory.Sequence(lambda n: f"Rechenwerk {n} GmbH")
    legal_form = "GmbH"
    register_court = "Amtsgericht München"
    register_type = Organisation.RegisterType.HRB
    register_number = factory.Sequence(lambda n: str(100000 + n))
    vat_id = factory.LazyFunction(valid_vat_id)
    street = "Leopoldstraße 1"
    postal_code = "80802"
    city = "München"
    state = Organisation.State.BY
    founding_date = datetime.date(2015, 3, 1)
    employees_band = Organisation.EmployeesBand.SMALL
    turnover_band = Organisation.TurnoverBand.UP_TO_10M
    # The KYC case: OrganisationFactory(kyc__status="approved").
    kyc = factory.RelatedFactory(KycCaseFactory, factory_related_name="organisation")


class ObserverFactory(OrganisationFactory):
    kind = Organisation.Kind.OBSERVER
    legal_name = factory.Sequence(lambda n: f"Bundesamt {n}")
    legal_form = "Bundesbehörde"
    register_court = ""
    register_type = ""
    register_number = ""
    vat_id = ""
    employees_band = Organisation.EmployeesBand.LARGE
    turnover_band = ""


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    is_owner = False
    is_trader = True
    is_provider = False
    is_viewer = False


class KycDocumentFactory(factory.django.DjangoModelFactory):
    """A stored PDF. Point STORAGES["default"] at a temporary folder first."""

    class Meta:
        model = KycDocument

    case = factory.LazyFunction(lambda: OrganisationFactory().kyc)
    kind = KycDocument.Kind.REGISTER_EXTRACT
    original_name = "handelsregisterauszug.pdf"
    content_type = "application/pdf"
    size = len(PDF_BYTES)
    sha256 = hashlib.sha256(PDF_BYTES).hexdigest()
    file = factory.LazyFunction(lambda: ContentFile(PDF_BYTES, name="document.pdf"))


# --- market capacity ----------------------------------------------------------------------
# GPU classes, hourly instruments, provider sites. (Imports here, not at the top:
# each app appends its own section.)

from datetime import timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402

from django.utils import timezone  # noqa: E402

from market import calendar as market_calendar  # noqa: E402
from market.models import (  # noqa: E402
    DeliveryZone,
    EnergySource,
    GpuClass,
    Instrument,
    InstrumentStatus,
    Segment,
    Site,
    SiteCapacity,
)


def delivery_hour(days_ahead: int = 1, label: str = "14") -> market_calendar.DeliveryHour:
    """A local delivery hour ``days_ahead`` days from today (Europe/Berlin)."""
    today = timezone.now().astimezone(market_calendar.BERLIN).date()
    return market_calendar.delivery_hour(today + timedelta(days=days_ahead), label)


class GpuClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GpuClass
        django_get_or_create = ("code",)

    code = "H100"
    name = factory.LazyAttribute(lambda o: f"NVIDIA {o.code}")
    memory_gb = 80
    interconnect = "NVLink 4, InfiniBand NDR"
    min_benchmark_value = Decimal("700")
    min_benchmark_unit = "TFLOPS BF16 dense GEMM"
    delivery_standard = "bare_metal"


class HourInstrumentFactory(factory.django.DjangoModelFactory):
    """An open intraday instrument of one delivery hour:
    ``HourInstrumentFactory(gpu_class=h100, zone_code="DE-BY", hour=delivery_hour(1, "09"))``."""

    class Meta:
        model = Instrument
        django_get_or_create = ("symbol",)

    class Params:
        hour = factory.LazyFunction(delivery_hour)
        zone_code = "DE"

    gpu_class = factory.SubFactory(GpuClassFactory)
    zone = factory.LazyAttribute(lambda o: DeliveryZone.objects.get(code=o.zone_code))
    segment = Segment.INTRADAY
    symbol = factory.LazyAttribute(lambda o: market_calendar.format_symbol(o.gpu_class.code, o.zone_code, o.hour))
    period = factory.LazyAttribute(lambda o: market_calendar.period_code(o.hour))
    delivery_start = factory.LazyAttribute(lambda o: o.hour.start)
    delivery_end = factory.LazyAttribute(lambda o: o.hour.end)
    hours = 1
    min_price = Decimal("0.00")
    max_price = Decimal("200.00")
    lead_time_minutes = 30
    opens_at = factory.LazyAttribute(lambda o: market_calendar.intraday_opens_at(o.hour.day))
    closes_at = factory.LazyAttribute(lambda o: market_calendar.intraday_closes_at(o.hour.start, 30))
    status = InstrumentStatus.OPEN


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    organisation = factory.SubFactory(OrganisationFactory, kyc__status=KycCase.Status.APPROVED)
    name = factory.Sequence(lambda n: f"Rechenzentrum {n}")
    state = Organisation.State.BY
    energy_source = EnergySource.RENEWABLE
    pue = Decimal("1.20")


class SiteCapacityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteCapacity

    site = factory.SubFactory(SiteFactory)
    gpu_class = factory.SubFactory(GpuClassFactory)
    gpus = 100


# --- market orders ------------------------------------------------------------------------
# Traders, money and instruments that take orders now, for the order service
# and trading API tests. Orders themselves are made through the service
# (market.services.orders), never by a factory: an order row without its
# reservation in the ledger would be a state the exchange can't reach.

from clearing.services import cash_deposit_book  # noqa: E402

_deposit_serial = itertools.count(1)


class OpenInstrumentFactory(HourInstrumentFactory):
    """An intraday instrument (H100, zone DE, tomorrow 14:00 by default) that
    takes orders now, whatever the time of day. Creates its zone if a
    transactional test's flush removed the migration's zones."""

    zone = factory.LazyAttribute(
        lambda o: DeliveryZone.objects.get_or_create(code=o.zone_code, defaults={"name": o.zone_code})[0])
    opens_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


class TraderFactory(MembershipFactory):
    """A trader in a KYC-approved member organisation."""

    organisation = factory.SubFactory(OrganisationFactory, kyc__status=KycCase.Status.APPROVED)
    is_trader = True


def deposit(organisation: Organisation, amount: str | Decimal) -> None:
    """Put cash on the organisation's available account, booked by a test operator."""
    operator = User.objects.filter(email="orders-operator@example.com").first() or UserFactory(
        email="orders-operator@example.com", is_staff=True)
    cash_deposit_book(operator=operator, organisation=organisation, amount=Decimal(amount),
                      bank_reference=f"ORDERS-TEST-{next(_deposit_serial)}")


# --- clearing statements/invoices -----------------------------------------------------------
# Order rows written directly (not through the order service) for the
# reconciliation tests, which need the ledger and the book to agree or to
# disagree on purpose; a clock for journal entries; invoice lines.

from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from clearing.invoicing import InvoiceLineData  # noqa: E402
from clearing.models import JournalEntry  # noqa: E402
from market.models import Order, OrderStatus, Side  # noqa: E402


class BuyOrderRowFactory(factory.django.DjangoModelFactory):
    """A resting buy order row with ``reserved_amount`` as given, and no
    ledger entry of its own: pair it with ``clearing.services.cash_reserve``
    for a consistent state, or don't, to break the reservation invariant."""

    class Meta:
        model = Order

    instrument = factory.SubFactory(OpenInstrumentFactory)
    organisation = factory.SubFactory(OrganisationFactory, kyc__status=KycCase.Status.APPROVED)
    placed_by = factory.SubFactory(UserFactory)
    side = Side.BUY
    price = Decimal("10.00")
    quantity = 1
    status = OrderStatus.OPEN
    priority = factory.Sequence(lambda n: n + 1)
    reserved_amount = Decimal("10.02")


@contextmanager
def journal_time(at: datetime.datetime) -> Iterator[None]:
    """Journal entries written inside get ``created_at = at`` (the services
    take the time from the field's default; there is no clock to freeze)."""
    field = JournalEntry._meta.get_field("created_at")
    had_own = "_get_default" in field.__dict__
    previous = field.__dict__.get("_get_default")
    field._get_default = lambda: at  # type: ignore[method-assign]  # Field caches its default callable here
    try:
        yield
    finally:
        if had_own:
            field._get_default = previous  # type: ignore[method-assign]
        else:
            del field.__dict__["_get_default"]


def fee_line(amount: str, *, gpu_hours: str = "1", rate: str | None = None,
             description: str = "Intraday taker fee") -> InvoiceLineData:
    return InvoiceLineData(description=description, amount=Decimal(amount), quantity=Decimal(gpu_hours),
                           unit="GPUh", unit_price=Decimal(rate) if rate is not None else None)


# --- clearing delivery and settlement ------------------------------------------------------------
# A spot trade made the only way the exchange makes one: a resting sell and a
# crossing buy through the order service (which books it and cuts its
# delivery tickets).


from market.models import Trade  # noqa: E402
from market.services.orders import order_submit  # noqa: E402


def spot_trade(*, seller: User, buyer: User, instrument: Instrument, quantity: int,
               price: Decimal = Decimal("12.30")) -> Trade:
    order_submit(user=seller, instrument=instrument, side="sell", price=price, quantity=quantity)
    order_submit(user=buyer, instrument=instrument, side="buy", price=price, quantity=quantity)
    return Trade.objects.filter(instrument=instrument).latest("pk")


# --- day-ahead publication (issue 9, items 3 and 5) ----------------------------------------------
# What the clearing service publishes, made directly: an auction, its hours
# with aggregated curves, its indicative result. No bids behind them: the
# public side reads none (market.selectors.dayahead_public).

from market.models import AuctionStatus, DayAheadAuction, DayAheadHour, DayAheadIndicative  # noqa: E402


def _tomorrow() -> datetime.date:
    return timezone.now().astimezone(market_calendar.BERLIN).date() + timedelta(days=1)


class DayAheadAuctionFactory(factory.django.DjangoModelFactory):
    """An auction not yet cleared: ``DayAheadAuctionFactory(delivery_date=day, gpu_class=h100, zone_code="DE-BY")``."""

    class Meta:
        model = DayAheadAuction
        django_get_or_create = ("delivery_date", "gpu_class", "zone")

    class Params:
        zone_code = "DE"

    delivery_date = factory.LazyFunction(_tomorrow)
    gpu_class = factory.SubFactory(GpuClassFactory)
    zone = factory.LazyAttribute(
        lambda o: DeliveryZone.objects.get_or_create(code=o.zone_code, defaults={"name": o.zone_code})[0])
    book_opens_at = factory.LazyAttribute(lambda o: market_calendar.dayahead_book_opens(o.delivery_date))
    gate_closure = factory.LazyAttribute(lambda o: market_calendar.dayahead_gate_closure(o.delivery_date))
    status = AuctionStatus.OPEN


def hour_price(position: int) -> Decimal:
    """The default clearing price of the day's ``position``-th hour: 10.00, 10.25, ..."""
    return Decimal("10.00") + Decimal("0.25") * position


def dayahead_hour_result(auction: DayAheadAuction, hour: market_calendar.DeliveryHour, position: int, *,
                         price: Decimal | None, volume: int) -> DayAheadHour:
    """One published hour whose curves cross at (``volume``, ``price``): a buy
    curve by falling price and a sell curve by rising price, both reaching
    ``volume`` at ``price``. Without a price: no bids, empty curves."""
    if price is None:
        return DayAheadHour.objects.create(
            auction=auction, hour=hour.label, position=position, delivery_start=hour.start, price=None, volume=0,
            buy_volume=0, sell_volume=0, buy_curve=[], sell_curve=[])
    buy_curve = [[str(price + 2), volume // 2], [str(price), volume], [str(price - 1), volume + 5]]
    sell_curve = [[str(price - 2), volume // 3], [str(price), volume], [str(price + 3), volume + 8]]
    return DayAheadHour.objects.create(
        auction=auction, hour=hour.label, position=position, delivery_start=hour.start, price=price, volume=volume,
        buy_volume=volume + 5, sell_volume=volume + 8, price_low=price - Decimal("0.50"),
        price_high=price + Decimal("0.50"), buy_curve=buy_curve, sell_curve=sell_curve)


def cleared_auction(*, day: datetime.date | None = None, gpu_class: GpuClass | None = None, zone_code: str = "DE",
                    prices: dict[str, Decimal | None] | None = None) -> DayAheadAuction:
    """A cleared auction with a published result for every hour of the day
    (23, 24 or 25): the price ``hour_price(position)`` and 20 + position GPUs,
    unless ``prices`` names an hour's price (None: no bids in that hour)."""
    auction = DayAheadAuctionFactory(delivery_date=day or _tomorrow(), zone_code=zone_code,
                                     **({"gpu_class": gpu_class} if gpu_class else {}))
    auction.status = AuctionStatus.CLEARED
    auction.cleared_at = auction.gate_closure + timedelta(seconds=3)
    auction.method = "curves"
    auction.save(update_fields=["status", "cleared_at", "method"])
    for position, hour in enumerate(market_calendar.day_hours(auction.delivery_date)):
        price = (prices or {}).get(hour.label, hour_price(position))
        dayahead_hour_result(auction, hour, position, price=price, volume=0 if price is None else 20 + position)
    return auction


class DayAheadIndicativeFactory(factory.django.DjangoModelFactory):
    """The latest indicative clearing of an open auction: price 9.50 + 0.10
    per position and 10 GPUs in every hour of its day."""

    class Meta:
        model = DayAheadIndicative

    auction = factory.SubFactory(DayAheadAuctionFactory)
    computed_at = factory.LazyFunction(timezone.now)
    hours = factory.LazyAttribute(lambda o: [
        {"hour": hour.label, "price": str(Decimal("9.50") + Decimal("0.10") * position), "volume": 10}
        for position, hour in enumerate(market_calendar.day_hours(o.auction.delivery_date))])


# --- market indices (issue 9, item 6) ------------------------------------------------------------
# The index reads cleared auctions, their public hour results and trades; these
# write such rows directly (the auction service that books them for real is
# its own issue), with no ledger behind them: for readers of those tables only.

from collections.abc import Mapping  # noqa: E402


class ClearedAuctionFactory(DayAheadAuctionFactory):
    """A cleared auction (H100, zone DE, tomorrow by default), without hour results
    (``auction_hour_results`` adds them)."""

    status = AuctionStatus.CLEARED
    cleared_at = factory.LazyAttribute(lambda o: o.gate_closure)
    method = "curves"


def auction_hour_results(auction: DayAheadAuction, prices: Mapping[str, str | Decimal | None], *,
                         volumes: Mapping[str, int] | None = None, volume: int = 10) -> list[DayAheadHour]:
    """The public hour results of ``auction``: one row per hour of its day,
    priced as ``prices`` says by label (an hour not named: no bids, no price,
    volume 0); a priced hour traded ``volumes[label]`` or ``volume`` GPUs."""
    rows = []
    for position, hour in enumerate(market_calendar.day_hours(auction.delivery_date)):
        price = prices.get(hour.label)
        traded = 0 if price is None else (volumes or {}).get(hour.label, volume)
        rows.append(DayAheadHour(auction=auction, hour=hour.label, position=position, delivery_start=hour.start,
                                 price=None if price is None else Decimal(price), volume=traded,
                                 buy_volume=traded, sell_volume=traded))
    return DayAheadHour.objects.bulk_create(rows)


def trade_row(*, instrument: Instrument, price: str | Decimal, quantity: int,
              auction: DayAheadAuction | None = None, executed_at: datetime.datetime | None = None) -> Trade:
    """A trade row in ``instrument`` between two fresh organisations:
    continuous (two order rows, the buyer the aggressor) or, with
    ``auction``, a day-ahead trade of that auction."""
    buyer = OrganisationFactory(kyc__status=KycCase.Status.APPROVED)
    seller = OrganisationFactory(kyc__status=KycCase.Status.APPROVED)
    orders: dict[str, Order | None] = {"buy_order": None, "sell_order": None}
    if auction is None:
        placed_by = UserFactory()
        for side, organisation in (("buy", buyer), ("sell", seller)):
            orders[f"{side}_order"] = BuyOrderRowFactory(
                instrument=instrument, organisation=organisation, placed_by=placed_by, side=side,
                price=Decimal(price), quantity=quantity, filled_quantity=quantity, status=OrderStatus.FILLED,
                reserved_amount=Decimal("0"))
    return Trade.objects.create(
        instrument=instrument, auction=auction, buyer=buyer, seller=seller, price=Decimal(price), quantity=quantity,
        aggressor="" if auction is not None else Side.BUY, buyer_fee=Decimal("0"), seller_fee=Decimal("0"),
        executed_at=executed_at or min(timezone.now(), instrument.closes_at - timedelta(minutes=1)),
        **orders)
