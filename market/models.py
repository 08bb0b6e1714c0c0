"""The product catalogue: GPU classes, delivery zones and instruments.

Instruments are listed by ``market.services.instruments_list_upcoming``; the
admin never adds or edits them. Delivery times are stored in UTC; the local
(Europe/Berlin) view of them lives in ``market.calendar``.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation, User
from exchange.formats import number
from market import calendar


class DeliveryStandard(models.TextChoices):
    BARE_METAL = "bare_metal", _("bare metal")
    VM_ROOT = "vm_root", _("virtual machine with root access")


class Segment(models.TextChoices):
    INTRADAY = "intraday", _("intraday")
    # Kept because the API contract names it; the day-ahead auction is not a
    # catalogue instrument (see docs/architecture.md, "Product catalogue").
    DAYAHEAD = "dayahead", _("day-ahead")
    FUTURES = "futures", _("futures")


# The segments members can use today; the pages (landing page, market times)
# announce the others as coming, with no link. The order service's gate
# (``_check_segment`` in market.services.orders) admits the continuous ones;
# tests/exchange/test_landing_offer.py fails when the two disagree, so the
# futures issue adds FUTURES here when it lets futures orders through, and the
# day-ahead issue adds DAYAHEAD when its auction takes bids.
SEGMENTS_IN_SERVICE: frozenset[str] = frozenset({Segment.INTRADAY, Segment.DAYAHEAD, Segment.FUTURES})


class InstrumentStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    OPEN = "open", _("open")
    HALTED = "halted", _("halted")
    CLOSED = "closed", _("closed")
    SETTLED = "settled", _("settled")


class GpuClass(models.Model):
    """An admin-defined standard of GPU capacity that is traded as one product."""

    code = models.CharField(
        _("code"), max_length=16, unique=True,
        validators=[RegexValidator(f"^{calendar.GPU_CLASS_PATTERN}$",
                                   _("2 to 16 capital letters or digits, e.g. H100."))],
        help_text=_("Appears in every symbol, e.g. H100.DE.M2027-01. Cannot be changed once saved."),
    )
    name = models.CharField(_("name"), max_length=100)
    memory_gb = models.PositiveIntegerField(_("memory (GB)"))
    interconnect = models.CharField(_("interconnect"), max_length=200)
    min_benchmark_value = models.DecimalField(_("minimum benchmark figure"), max_digits=12, decimal_places=2)
    min_benchmark_unit = models.CharField(_("benchmark unit"), max_length=100,
                                          help_text=_("What the figure measures, e.g. TFLOPS BF16 dense GEMM."))
    delivery_standard = models.CharField(_("delivery standard"), max_length=16, choices=DeliveryStandard.choices)
    min_price = models.DecimalField(_("minimum price (EUR/GPUh)"), max_digits=12, decimal_places=2,
                                    default=Decimal("0.00"), validators=[MinValueValidator(Decimal("0.00"))])
    max_price = models.DecimalField(_("maximum price (EUR/GPUh)"), max_digits=12, decimal_places=2,
                                    default=Decimal("200.00"))
    initial_margin_rate = models.DecimalField(
        _("initial margin rate"), max_digits=5, decimal_places=4, default=Decimal("0.1500"),
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("1"))],
        help_text=_("Share of the futures position value held as initial margin, e.g. 0.15."),
    )
    intraday_lead_time_minutes = models.PositiveIntegerField(
        _("intraday lead time (minutes)"), default=30,
        # The first hour of D starts at 00:00 and opens at 15:00 on D-1: a
        # lead time above 9 hours would close it before it opens.
        validators=[MaxValueValidator(480)],
        help_text=_("Intraday trading in an hour closes this many minutes before delivery starts."),
    )
    active = models.BooleanField(_("active"), default=True,
                                 help_text=_("Only active classes get new instruments."))
    power_draw_kw = models.DecimalField(
        _("power draw (kW per GPU)"), max_digits=6, decimal_places=3, default=Decimal("1.000"),
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text=_("Electrical power of one GPU under load with its share of the server (CPU, memory, "
                    "network), before cooling; e.g. 1.275 for an H100 SXM in an 8-GPU server of 10.2 kW."),
    )

    class Meta:
        verbose_name = _("GPU class")
        verbose_name_plural = _("GPU classes")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_price__gte=0) & Q(min_price__lte=F("max_price")),
                name="gpuclass_price_bounds",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValidationError({"max_price": _("The maximum price must not be below the minimum price.")})


class DeliveryZone(models.Model):
    """``DE`` (any site in Germany) or one federal state (ISO 3166-2)."""

    code = models.CharField(_("code"), max_length=5, unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("delivery zone")
        verbose_name_plural = _("delivery zones")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Instrument(models.Model):
    """One tradable delivery product: a class, a zone and a delivery period."""

    symbol = models.CharField(_("symbol"), max_length=64, unique=True)
    segment = models.CharField(_("segment"), max_length=16, choices=Segment.choices)
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="instruments",
                                  verbose_name=_("GPU class"))
    zone = models.ForeignKey(DeliveryZone, on_delete=models.PROTECT, related_name="instruments",
                             verbose_name=_("delivery zone"))
    period = models.CharField(_("delivery period"), max_length=16,
                              help_text=_("The period part of the symbol, e.g. 2026-10-25T02B or M2027-01."))
    delivery_start = models.DateTimeField(_("delivery start"))
    delivery_end = models.DateTimeField(_("delivery end"))
    hours = models.PositiveIntegerField(_("hours"))
    tick_size = models.DecimalField(_("tick size"), default=Decimal("0.01"), max_digits=12, decimal_places=2)
    lot_size = models.PositiveIntegerField(_("lot size"), default=1)
    # Copied from the class at listing: orders resting on an open instrument
    # were checked against these, so a later change must not move them.
    min_price = models.DecimalField(_("minimum price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    max_price = models.DecimalField(_("maximum price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    lead_time_minutes = models.PositiveIntegerField(_("lead time (minutes)"), default=30)
    opens_at = models.DateTimeField(_("trading opens"))
    closes_at = models.DateTimeField(_("trading closes"))
    status = models.CharField(_("status"), max_length=16, choices=InstrumentStatus.choices,
                              default=InstrumentStatus.SCHEDULED)
    created_at = models.DateTimeField(_("listed at"), auto_now_add=True)
    # Counters advanced only while the instrument row is locked by the order
    # service: time priority of orders, and the sequence of book updates that
    # WebSocket clients use to detect a gap.
    order_sequence = models.BigIntegerField(default=0, editable=False)
    book_sequence = models.BigIntegerField(default=0, editable=False)
    # The time of the latest trade: a trade's executed_at is never earlier,
    # so executed_at never decreases with the trade id within an instrument
    # (even if the clocks of two application servers disagree).
    last_trade_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("instrument")
        verbose_name_plural = _("instruments")
        ordering = ["delivery_start", "segment", "symbol"]
        permissions = [("halt_instrument", _("Can halt and resume trading in an instrument"))]
        indexes = [
            models.Index(fields=["segment", "status"], name="instrument_segment_status"),
            models.Index(fields=["gpu_class", "zone", "delivery_start"], name="instrument_class_zone_start"),
            # The open/close job: "status in (...) and closes_at <= now".
            models.Index(fields=["status", "closes_at"], name="instrument_status_closes"),
            models.Index(fields=["delivery_start"], name="instrument_delivery_start"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(delivery_end__gt=F("delivery_start")),
                                   name="instrument_delivery_order"),
            models.CheckConstraint(condition=Q(closes_at__gt=F("opens_at")), name="instrument_window_order"),
            models.CheckConstraint(condition=Q(min_price__gte=0) & Q(min_price__lte=F("max_price")),
                                   name="instrument_price_bounds"),
            models.CheckConstraint(condition=Q(hours__gt=0), name="instrument_hours_positive"),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def trading_ends_at(self) -> datetime:
        """When trading ends: ``closes_at``, or for a future the end of its last session (which is earlier)."""
        if self.segment == Segment.FUTURES:
            return min(self.closes_at, calendar.futures_last_trading(self.delivery_start))
        return self.closes_at

    @property
    def last_delivery_day(self) -> date:
        """The last Berlin day of delivery of a future (``delivery_end`` is the midnight after it)."""
        return (self.delivery_end.astimezone(calendar.BERLIN) - timedelta(days=1)).date()

    def accepts_orders_at(self, now: datetime) -> bool:
        """Whether an order may be entered at ``now``.

        Decides on the times, not only on ``status``: the job that flips the
        status runs once a minute and may lag the clock. Futures trade only in
        session hours (08:00-18:00 local on business days).
        """
        if self.status != InstrumentStatus.OPEN or not self.opens_at <= now < self.closes_at:
            return False
        if self.segment == Segment.FUTURES:
            return calendar.futures_session_open(now)
        return True


# --- Provider capacity ------------------------------------------------------------------


class EnergySource(models.TextChoices):
    RENEWABLE = "renewable", _("renewable (certified green power)")
    GRID_MIX = "grid_mix", _("grid mix")
    OWN_GENERATION = "own_generation", _("own generation")


class Site(models.Model):
    """A provider's data-centre site. Its federal state is its delivery zone."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="sites",
                                     verbose_name=_("organisation"))
    name = models.CharField(_("name"), max_length=120)
    state = models.CharField(_("federal state"), max_length=5, choices=Organisation.State.choices)
    energy_source = models.CharField(_("energy source"), max_length=20, choices=EnergySource.choices)
    pue = models.DecimalField(_("PUE"), max_digits=4, decimal_places=2,
                              validators=[MinValueValidator(Decimal("1.00")), MaxValueValidator(Decimal("3.00"))],
                              help_text=_("Power usage effectiveness, e.g. 1.25."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("site")
        verbose_name_plural = _("sites")
        ordering = ["organisation", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="site_unique_name"),
            models.CheckConstraint(condition=Q(pue__gte=1) & Q(pue__lte=3), name="site_pue_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class SiteCapacity(models.Model):
    """How many GPUs of one class a site offers to the exchange."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="capacities", verbose_name=_("site"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="capacities",
                                  verbose_name=_("GPU class"))
    gpus = models.PositiveIntegerField(_("GPUs"))

    class Meta:
        verbose_name = _("site capacity")
        verbose_name_plural = _("site capacities")
        constraints = [models.UniqueConstraint(fields=["site", "gpu_class"], name="site_capacity_unique_class")]

    def __str__(self) -> str:
        return f"{self.site}: {self.gpus} × {self.gpu_class}"


class SiteUsage(models.Model):
    """The GPUs of one class that a site delivers in one hour: the one
    source of truth for site allocation (market rules §4).

    Changed only by ``clearing.services.allocation`` with a guarded update
    (``gpus + q <= the site's capacity of the class``) while the seller's
    organisation is locked; every delivery ticket on a site adds its GPUs
    here, so ``reconcile`` can compare the two.
    """

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="usages", verbose_name=_("site"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+", verbose_name=_("GPU class"))
    hour_start = models.DateTimeField(_("delivery hour (start)"))
    gpus = models.PositiveIntegerField(_("GPUs in use"), default=0)

    class Meta:
        verbose_name = _("site usage")
        verbose_name_plural = _("site usages")
        constraints = [models.UniqueConstraint(fields=["site", "gpu_class", "hour_start"], name="site_usage_unique")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.gpu_class_id} {self.hour_start:%Y-%m-%dT%H:%M}Z: {self.gpus}"


# --- Orders, trades, positions ------------------------------------------------------------


class Side(models.TextChoices):
    BUY = "buy", _("buy")
    SELL = "sell", _("sell")


class OrderType(models.TextChoices):
    LIMIT = "limit", _("limit")
    MARKET = "market", _("market")


class TimeInForce(models.TextChoices):
    GTC = "GTC", _("good till cancelled")
    GTD = "GTD", _("good till date")
    IOC = "IOC", _("immediate or cancel")
    FOK = "FOK", _("fill or kill")


class StpMode(models.TextChoices):
    CANCEL_INCOMING = "cancel_incoming", _("cancel the incoming order")
    CANCEL_RESTING = "cancel_resting", _("cancel the resting order")


class OrderStatus(models.TextChoices):
    OPEN = "open", _("open")
    PARTIALLY_FILLED = "partially_filled", _("partially filled")
    FILLED = "filled", _("filled")
    CANCELLED = "cancelled", _("cancelled")
    EXPIRED = "expired", _("expired")
    REJECTED = "rejected", _("rejected")


RESTING_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class Order(models.Model):
    """An order in a continuous segment. The database is the book: an order
    rests while its status is open or partially filled."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders",
                                   verbose_name=_("instrument"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="orders",
                                     verbose_name=_("organisation"))
    placed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", verbose_name=_("placed by"))
    client_order_id = models.CharField(_("client order ID"), max_length=64, null=True, blank=True)
    side = models.CharField(_("side"), max_length=4, choices=Side.choices)
    type = models.CharField(_("type"), max_length=6, choices=OrderType.choices, default=OrderType.LIMIT)
    # For a market order, the protection price it was matched with.
    price = models.DecimalField(_("limit price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity (GPUs)"))
    filled_quantity = models.PositiveIntegerField(_("filled quantity"), default=0)
    time_in_force = models.CharField(_("time in force"), max_length=3, choices=TimeInForce.choices,
                                     default=TimeInForce.GTC)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    post_only = models.BooleanField(_("post-only"), default=False)
    stp_mode = models.CharField(_("self-trade prevention"), max_length=16, choices=StpMode.choices,
                                default=StpMode.CANCEL_INCOMING)
    status = models.CharField(_("status"), max_length=16, choices=OrderStatus.choices, default=OrderStatus.OPEN)
    reason = models.CharField(_("reason"), max_length=40, blank=True,
                              help_text=_("Why the order was rejected, or its remainder cancelled."))
    # Time priority within the instrument (Instrument.order_sequence); a new
    # value when an amend loses priority.
    priority = models.BigIntegerField(_("priority"))
    # Buy orders: the cash still reserved for the open quantity (limit x
    # open quantity x hours + the maximum fee on it). Zero for sells.
    reserved_amount = models.DecimalField(_("cash reserved"), max_digits=18, decimal_places=2, default=Decimal("0"))
    # The fee rates in force at entry (EUR/GPUh). Its reservation is computed
    # with the taker rate, and a fill is charged the lower of these and the
    # rates in force at the fill, so a fee change never leaves a resting order
    # unable to pay (market rules §3).
    maker_rate = models.DecimalField(_("maker fee rate at entry"), max_digits=8, decimal_places=4,
                                     default=Decimal("0.005"))
    taker_rate = models.DecimalField(_("taker fee rate at entry"), max_digits=8, decimal_places=4,
                                     default=Decimal("0.015"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        indexes = [
            # Loading the crossing side of one book in price-time order.
            models.Index(fields=["instrument", "side", "price", "priority"], name="order_book",
                         condition=Q(status__in=["open", "partially_filled"])),
            models.Index(fields=["organisation", "status"], name="order_org_status"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "client_order_id"], name="order_client_id_unique",
                                    condition=Q(client_order_id__isnull=False)),
            models.CheckConstraint(condition=Q(filled_quantity__lte=F("quantity")), name="order_fill_within_quantity"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(reserved_amount__gte=0), name="order_reserved_non_negative"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity} {self.instrument_id} @ {self.price}"

    @property
    def remaining_quantity(self) -> int:
        """Open quantity: what still rests (0 once the order is done)."""
        if self.status in RESTING_STATUSES:
            return self.quantity - self.filled_quantity
        return 0

    @property
    def reason_text(self) -> str:
        """Why the order (or its remainder) ended early, as a sentence in the
        active language; empty when it did not. ``reason`` keeps the code
        (the API's ``reason``); this is what screens and ``reason_detail`` show."""
        return reason_sentence(self.reason, self.price)


# The sentence for each ``Order.reason`` code (matching.Reason and the order
# service's REASON_* codes). ``%(price)s`` is the order's price: for a market
# order the protection price it traded up to (buy) or down to (sell).
ORDER_REASON_TEXTS = {
    "market_remainder": _(
        "A market order never rests in the book: the part that found no counter-order within its protection "
        "price of %(price)s EUR/GPUh was cancelled."),
    "ioc_remainder": _("Immediate or cancel: the part that could not trade at once was cancelled."),
    "fok_not_fillable": _("Fill or kill: the whole quantity could not be filled at once, so nothing traded."),
    "post_only_would_trade": _("Post-only: the order would have traded on entry, so it was not entered."),
    "self_trade_prevention": _(
        "Self-trade prevention: it would have traded with an order of your own organisation."),
    "cancelled_by_member": _("Cancelled by your organisation."),
    "kill_switch": _("Cancelled by the kill switch of your organisation."),
    "cancel_on_disconnect": _(
        "Cancelled because the connection that asked for cancel-on-disconnect was closed."),
    "expired": _("Its expiry time has passed."),
    "instrument_closed": _("Trading in the instrument closed before the order was filled."),
    "cannot_deliver": _("Your organisation's sites can no longer deliver it, so it was cancelled."),
}


def reason_sentence(reason: str, price: Decimal) -> str:
    """An order's reason code as a sentence in the active language (empty for none)."""
    if not reason:
        return ""
    text = ORDER_REASON_TEXTS.get(reason)
    if text is None:  # a code added later without a sentence: at least the code
        return str(reason)
    return str(text) % {"price": number(price)}


class Trade(models.Model):
    """One execution. Novated at once: the CCP is buyer to the seller and
    seller to the buyer; the ledger entry of the trade says so."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="trades",
                                   verbose_name=_("instrument"))
    # Continuous trades name their two orders; a day-ahead trade names its
    # auction instead (its GPUs come from many bids, DayAheadAcceptance).
    buy_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="buy_trades", null=True, blank=True)
    sell_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="sell_trades", null=True,
                                   blank=True)
    auction = models.ForeignKey("DayAheadAuction", on_delete=models.PROTECT, related_name="trades", null=True,
                                blank=True, verbose_name=_("day-ahead auction"))
    buyer = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="buy_trades",
                              verbose_name=_("buyer"))
    seller = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="sell_trades",
                               verbose_name=_("seller"))
    price = models.DecimalField(_("price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity (GPUs)"))
    # Empty for an auction trade: nobody took a resting order.
    aggressor = models.CharField(_("aggressor"), max_length=4, choices=Side.choices, blank=True)
    # Exact: rate x quantity x hours (market rules §3, fees accrue at full
    # precision; charged monthly, clearing.services.fees).
    buyer_fee = models.DecimalField(_("buyer fee"), max_digits=18, decimal_places=6)
    seller_fee = models.DecimalField(_("seller fee"), max_digits=18, decimal_places=6)
    executed_at = models.DateTimeField(_("executed at"), db_index=True)

    class Meta:
        verbose_name = _("trade")
        verbose_name_plural = _("trades")
        ordering = ["-executed_at", "-id"]
        indexes = [models.Index(fields=["instrument", "-id"], name="trade_instrument_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive"),
            models.CheckConstraint(condition=~Q(buyer=F("seller")), name="trade_no_self_trade"),
            models.CheckConstraint(
                condition=(Q(auction__isnull=True, buy_order__isnull=False, sell_order__isnull=False)
                           & ~Q(aggressor=""))
                | Q(auction__isnull=False, buy_order__isnull=True, sell_order__isnull=True, aggressor=""),
                name="trade_orders_or_auction"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}: {self.quantity} @ {self.price}"

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity * self.instrument.hours


class Position(models.Model):
    """An organisation's net position in one instrument (positive: bought)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="positions",
                                     verbose_name=_("organisation"))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions",
                                   verbose_name=_("instrument"))
    quantity = models.IntegerField(_("net quantity (GPUs)"), default=0)
    bought = models.PositiveIntegerField(_("bought"), default=0)
    sold = models.PositiveIntegerField(_("sold"), default=0)
    # Sums of price x quantity (EUR/GPUh x GPUs) over buys and sells, for the
    # average prices; hours are applied when a value is shown.
    buy_cost = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0"))
    sell_proceeds = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0"))

    class Meta:
        verbose_name = _("position")
        verbose_name_plural = _("positions")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "instrument"], name="position_unique"),
            models.CheckConstraint(condition=Q(quantity=F("bought") - F("sold")), name="position_net"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.instrument_id}: {self.quantity}"


# --- Trader controls (issue 8, item 5) ---------------------------------------------------------


class ImmutableRowError(Exception):
    """Raised when code tries to change or delete an order event."""


class _AppendOnlyQuerySet(models.QuerySet["OrderEvent"]):
    """Order events are written once: bulk updates and deletes are refused
    (as ``clearing.models.ImmutableQuerySet`` does for the journal)."""

    def update(self, **kwargs: object) -> int:
        raise ImmutableRowError("order events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError("order events are append-only")


class OrderEventKind(models.TextChoices):
    SUBMITTED = "submitted", _("submitted")
    AMENDED = "amended", _("amended")
    FILLED = "filled", _("filled")
    CANCELLED = "cancelled", _("cancelled")
    EXPIRED = "expired", _("expired")


class OrderEvent(models.Model):
    """One thing that happened to an order, REMIT-style: what, when, who
    (``actor``: the member's user, or None when the exchange did it: an
    expiry, self-trade prevention, an IOC or market remainder, a fill of a
    resting order), and the order's state right after it. Written by the
    order service only, with one multi-row insert per transaction; never
    changed or deleted (the model refuses it, and on PostgreSQL a trigger,
    migration 0007)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events", verbose_name=_("order"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("instrument"))
    kind = models.CharField(_("event"), max_length=10, choices=OrderEventKind.choices)
    at = models.DateTimeField(_("time"))
    actor = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("actor"))
    # The order's state after the event.
    side = models.CharField(_("side"), max_length=4, choices=Side.choices)
    price = models.DecimalField(_("limit price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity (GPUs)"))
    filled_quantity = models.PositiveIntegerField(_("filled quantity"))
    status = models.CharField(_("status"), max_length=16, choices=OrderStatus.choices)
    reason = models.CharField(_("reason"), max_length=40, blank=True)
    # Fills: the trade, its price and quantity.
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("trade"))
    fill_price = models.DecimalField(_("fill price (EUR/GPUh)"), max_digits=12, decimal_places=2, null=True,
                                     blank=True)
    fill_quantity = models.PositiveIntegerField(_("fill quantity (GPUs)"), null=True, blank=True)

    objects = _AppendOnlyQuerySet.as_manager()

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["-id"]
        indexes = [models.Index(fields=["organisation", "-id"], name="orderevent_org_recent"),
                   models.Index(fields=["order", "id"], name="orderevent_order")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ImmutableRowError("order events are append-only")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError("order events are append-only")

    @property
    def reason_text(self) -> str:
        return reason_sentence(self.reason, self.price)


class KillSwitch(models.Model):
    """An organisation's kill switch: while a row of it has no ``lifted_at``,
    the order service refuses the organisation's new orders and amends
    (``trading_stopped``); engaging it cancels every resting order of the
    organisation. One row per engagement, kept as the record of who stopped
    and who resumed trading when (docs/trader-controls.md)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="kill_switches",
                                     verbose_name=_("organisation"))
    engaged_at = models.DateTimeField(_("engaged at"))
    engaged_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", verbose_name=_("engaged by"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                  verbose_name=_("lifted by"))

    class Meta:
        verbose_name = _("kill switch")
        verbose_name_plural = _("kill switches")
        ordering = ["-engaged_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organisation"], condition=Q(lifted_at__isnull=True),
                                    name="killswitch_one_engaged"),
            models.CheckConstraint(condition=Q(lifted_at__isnull=True) | Q(lifted_by__isnull=False),
                                   name="killswitch_lifted_by_someone"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.engaged_at:%Y-%m-%d %H:%M}"

    @property
    def engaged(self) -> bool:
        return self.lifted_at is None


# --- Day-ahead auction (issue 9; docs/architecture.md "Day-ahead auction") ---------------------


class AuctionStatus(models.TextChoices):
    OPEN = "open", _("open")
    CLEARED = "cleared", _("cleared")


class AuctionMethod(models.TextChoices):
    """How the clearing core found its result (``market.auction.Method``)."""

    CURVES = "curves", _("curves only")
    OPTIMAL = "optimal", _("optimal")
    INCUMBENT = "incumbent", _("best solution within the time limit")
    WITHOUT_BLOCKS = "without_blocks", _("without blocks (fallback)")


class DayAheadAuction(models.Model):
    """The day-ahead auction of one delivery day, GPU class and zone.

    Created with its first bid. ``closed`` is derived: open and past gate
    closure. Cleared exactly once (``market.services.dayahead.auction_clear``
    claims the row with a guarded UPDATE inside the transaction that books
    the result)."""

    delivery_date = models.DateField(_("delivery day"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="auctions",
                                  verbose_name=_("GPU class"))
    zone = models.ForeignKey(DeliveryZone, on_delete=models.PROTECT, related_name="auctions",
                             verbose_name=_("delivery zone"))
    book_opens_at = models.DateTimeField(_("book opens"))
    gate_closure = models.DateTimeField(_("gate closure"))
    status = models.CharField(_("status"), max_length=8, choices=AuctionStatus.choices,
                              default=AuctionStatus.OPEN)
    cleared_at = models.DateTimeField(_("cleared at"), null=True, blank=True)
    method = models.CharField(_("method"), max_length=16, choices=AuctionMethod.choices, blank=True)
    time_limit_hit = models.BooleanField(_("time limit hit"), default=False)
    rounds = models.PositiveIntegerField(_("solver rounds"), default=0)
    # SHA-256 of the canonical input of the clearing (every active bid), so a
    # re-run can be compared and the published result checked.
    input_sha256 = models.CharField(_("input fingerprint"), max_length=64, blank=True)
    # Entry sequence of bids (time priority at the margin), advanced while the row is locked.
    bid_sequence = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("day-ahead auction")
        verbose_name_plural = _("day-ahead auctions")
        ordering = ["-delivery_date", "gpu_class", "zone"]
        constraints = [
            models.UniqueConstraint(fields=["delivery_date", "gpu_class", "zone"], name="auction_unique_day"),
            models.CheckConstraint(condition=Q(gate_closure__gt=F("book_opens_at")), name="auction_window_order"),
            models.CheckConstraint(condition=Q(status="open") | Q(cleared_at__isnull=False),
                                   name="auction_cleared_at_set"),
        ]
        indexes = [models.Index(fields=["status", "gate_closure"], name="auction_status_gate"),
                   # A class and zone's latest auctions (the public entry page, with years of history).
                   models.Index(fields=["gpu_class", "zone", "-delivery_date"], name="auction_series_latest")]

    def __str__(self) -> str:
        return f"{self.gpu_class_id}.{self.zone_id} {self.delivery_date}"

    def accepts_bids_at(self, now: datetime) -> bool:
        return self.status == AuctionStatus.OPEN and self.book_opens_at <= now < self.gate_closure


class BidKind(models.TextChoices):
    CURVE = "curve", _("hourly curve")
    BLOCK = "block", _("block")


class BidStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    REPLACED = "replaced", _("replaced")
    CANCELLED = "cancelled", _("cancelled")
    CLEARED = "cleared", _("cleared")


class DayAheadBid(models.Model):
    """A member's bid in one auction: an hourly curve (steps in
    ``DayAheadStep``) or a block (one quantity in every hour of a run, a
    limit on the average price, a minimum acceptance ratio, an optional
    exclusive group)."""

    auction = models.ForeignKey(DayAheadAuction, on_delete=models.PROTECT, related_name="bids",
                                verbose_name=_("auction"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="dayahead_bids",
                                     verbose_name=_("organisation"))
    placed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", verbose_name=_("placed by"))
    kind = models.CharField(_("kind"), max_length=5, choices=BidKind.choices)
    side = models.CharField(_("side"), max_length=4, choices=Side.choices)
    hour = models.CharField(_("hour"), max_length=3, blank=True)
    first_hour = models.CharField(_("first hour"), max_length=3, blank=True)
    last_hour = models.CharField(_("last hour"), max_length=3, blank=True)
    hours = models.PositiveIntegerField(_("hours"))
    price = models.DecimalField(_("limit price (EUR/GPUh)"), max_digits=12, decimal_places=2, null=True, blank=True)
    quantity = models.PositiveIntegerField(_("quantity (GPUs per hour)"), null=True, blank=True)
    min_acceptance_ratio = models.DecimalField(_("minimum acceptance ratio"), max_digits=5, decimal_places=4,
                                               null=True, blank=True)
    exclusive_group = models.CharField(_("exclusive group"), max_length=40, blank=True)
    sequence = models.BigIntegerField(_("entry sequence"))
    status = models.CharField(_("status"), max_length=9, choices=BidStatus.choices, default=BidStatus.ACTIVE)
    reserved_amount = models.DecimalField(_("cash reserved"), max_digits=18, decimal_places=2, default=Decimal("0"))
    fee_rate = models.DecimalField(_("fee rate at entry"), max_digits=8, decimal_places=4)
    paradoxically_rejected = models.BooleanField(_("paradoxically rejected"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        verbose_name = _("day-ahead bid")
        verbose_name_plural = _("day-ahead bids")
        ordering = ["auction", "sequence"]
        indexes = [models.Index(fields=["organisation", "status"], name="dayaheadbid_org_status"),
                   models.Index(fields=["auction", "status"], name="dayaheadbid_auction_status")]
        constraints = [
            models.UniqueConstraint(fields=["auction", "organisation", "hour"], name="dayaheadbid_one_curve",
                                    condition=Q(kind="curve", status="active")),
            models.CheckConstraint(
                condition=(Q(kind="curve") & ~Q(hour="") & Q(first_hour="", last_hour="", price__isnull=True,
                                                             quantity__isnull=True, min_acceptance_ratio__isnull=True,
                                                             exclusive_group="", hours=1))
                | (Q(kind="block") & Q(hour="") & ~Q(first_hour="") & ~Q(last_hour="")
                   & Q(price__isnull=False, quantity__gt=0, min_acceptance_ratio__gt=0,
                       min_acceptance_ratio__lte=1, hours__gt=0)),
                name="dayaheadbid_kind_fields"),
            models.CheckConstraint(condition=Q(reserved_amount__gte=0), name="dayaheadbid_reserved_non_negative"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.side}"

    @property
    def hour_span(self) -> str:
        return self.hour if self.kind == BidKind.CURVE else f"{self.first_hour}–{self.last_hour}"


class DayAheadStep(models.Model):
    """One price/quantity step of a curve bid: its own quantity at its own limit."""

    bid = models.ForeignKey(DayAheadBid, on_delete=models.CASCADE, related_name="steps", verbose_name=_("bid"))
    position = models.PositiveSmallIntegerField(_("position"))
    price = models.DecimalField(_("limit price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity (GPUs)"))

    class Meta:
        verbose_name = _("curve step")
        verbose_name_plural = _("curve steps")
        ordering = ["bid", "position"]
        constraints = [
            models.UniqueConstraint(fields=["bid", "position"], name="dayaheadstep_unique_position"),
            models.CheckConstraint(condition=Q(quantity__gt=0) & Q(position__lt=64), name="dayaheadstep_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.bid_id}/{self.position}: {self.quantity} @ {self.price}"


class DayAheadAcceptance(models.Model):
    """The GPUs a bid got in one hour of its auction (0 where none)."""

    bid = models.ForeignKey(DayAheadBid, on_delete=models.PROTECT, related_name="acceptances",
                            verbose_name=_("bid"))
    hour = models.CharField(_("hour"), max_length=3)
    quantity = models.PositiveIntegerField(_("accepted quantity (GPUs)"))

    class Meta:
        verbose_name = _("accepted quantity")
        verbose_name_plural = _("accepted quantities")
        constraints = [models.UniqueConstraint(fields=["bid", "hour"], name="dayaheadacceptance_unique")]

    def __str__(self) -> str:
        return f"{self.bid_id} {self.hour}: {self.quantity}"


class DayAheadHour(models.Model):
    """The public result of one hour of a cleared auction, with the
    aggregated (anonymous) curves: ``[[price, cumulative GPUs], ...]``,
    buy curve by falling price, sell curve by rising price."""

    auction = models.ForeignKey(DayAheadAuction, on_delete=models.PROTECT, related_name="results",
                                verbose_name=_("auction"))
    hour = models.CharField(_("hour"), max_length=3)
    position = models.PositiveSmallIntegerField(_("position in the day"))
    delivery_start = models.DateTimeField(_("delivery start"))
    price = models.DecimalField(_("clearing price (EUR/GPUh)"), max_digits=12, decimal_places=2, null=True,
                                blank=True)
    volume = models.PositiveIntegerField(_("volume (GPUs)"))
    buy_volume = models.PositiveIntegerField(_("bid to buy (GPUs)"))
    sell_volume = models.PositiveIntegerField(_("offered (GPUs)"))
    price_low = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    price_high = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    buy_curve = models.JSONField(default=list)
    sell_curve = models.JSONField(default=list)

    class Meta:
        verbose_name = _("auction hour result")
        verbose_name_plural = _("auction hour results")
        ordering = ["auction", "position"]
        constraints = [models.UniqueConstraint(fields=["auction", "hour"], name="dayaheadhour_unique")]

    def __str__(self) -> str:
        return f"{self.auction_id} {self.hour}: {self.volume} @ {self.price}"


class DayAheadIndicative(models.Model):
    """The latest indicative clearing of an open auction: ``hours`` is
    ``[{"hour", "price", "volume"}]`` (prices as strings), public."""

    auction = models.OneToOneField(DayAheadAuction, on_delete=models.CASCADE, related_name="indicative")
    computed_at = models.DateTimeField(_("computed at"))
    hours = models.JSONField(default=list)

    class Meta:
        verbose_name = _("indicative result")
        verbose_name_plural = _("indicative results")

    def __str__(self) -> str:
        return f"{self.auction_id} {self.computed_at:%Y-%m-%d %H:%M}"


class DayAheadCommitment(models.Model):
    """The most GPUs an organisation may sell in one hour of an open
    auction (its sell curve plus its sell blocks covering the hour, the
    largest block of each exclusive group): capacity that counts as offered
    until the auction clears (market rules §3). Rewritten for the
    organisation with each of its bids, deleted when the auction clears
    (the accepted sells are then short positions). Read by
    ``market.services.capacity.hour_commitments``."""

    auction = models.ForeignKey(DayAheadAuction, on_delete=models.CASCADE, related_name="+")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+")
    zone = models.ForeignKey(DeliveryZone, on_delete=models.PROTECT, related_name="+")
    hour_start = models.DateTimeField()
    gpus = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["auction", "organisation", "hour_start"],
                                               name="dayaheadcommitment_unique")]
        indexes = [models.Index(fields=["organisation", "gpu_class", "hour_start"],
                                name="dayaheadcommitment_lookup")]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.hour_start:%Y-%m-%dT%H}: {self.gpus}"


# --- Indices (issue 9, item 6) ---------------------------------------------------------------


class IndexKind(models.TextChoices):
    BASE = "base", _("Base")
    PEAK = "peak", _("Peak")
    INTRADAY_VWAP = "intraday_vwap", _("Intraday VWAP")


class _IndexQuerySet(models.QuerySet["IndexValue"]):
    def update(self, **kwargs: object) -> int:
        raise ImmutableRowError("published index values are never changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError("published index values are never deleted")


class IndexValue(models.Model):
    """One published daily index value. Append-only: ``sha256`` is the
    SHA-256 of the canonical JSON of ``inputs``, so anyone can recompute it
    from the open data and see that the figure was never changed."""

    kind = models.CharField(_("index"), max_length=16, choices=IndexKind.choices)
    date = models.DateField(_("delivery day"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+", verbose_name=_("GPU class"))
    zone = models.ForeignKey(DeliveryZone, on_delete=models.PROTECT, related_name="+",
                             verbose_name=_("delivery zone"))
    value = models.DecimalField(_("value (EUR/GPUh)"), max_digits=12, decimal_places=2, null=True, blank=True)
    volume = models.PositiveBigIntegerField(_("volume (GPUh)"), default=0)
    inputs = models.JSONField(_("inputs"), default=dict)
    sha256 = models.CharField(_("fingerprint"), max_length=64)
    methodology_version = models.CharField(_("methodology version"), max_length=10)
    is_demo = models.BooleanField(_("demo data"), default=False)
    computed_at = models.DateTimeField(_("computed at"))

    objects = _IndexQuerySet.as_manager()

    class Meta:
        verbose_name = _("index value")
        verbose_name_plural = _("index values")
        ordering = ["-date", "gpu_class", "zone", "kind"]
        constraints = [models.UniqueConstraint(fields=["kind", "date", "gpu_class", "zone", "methodology_version"],
                                               name="indexvalue_unique")]
        indexes = [models.Index(fields=["gpu_class", "zone", "date"], name="indexvalue_lookup")]

    def __str__(self) -> str:
        return f"{self.kind} {self.date} {self.gpu_class_id}.{self.zone_id}: {self.value}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ImmutableRowError("published index values are never changed")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError("published index values are never deleted")


# --- Futures (issue 10; docs/architecture.md "Futures") ----------------------------------------


class SettlementSource(models.TextChoices):
    VWAP = "vwap", _("VWAP of the last 30 minutes")
    MID = "mid", _("mid of best bid and ask")
    PREVIOUS = "previous", _("previous settlement price")
    OVERRIDE = "override", _("set by an operator")
    FINAL = "final", _("final settlement price (base index of the delivery month)")


class SettlementPrice(models.Model):
    """The daily settlement price (DSP) of one future on one business day,
    computed at 17:30 Europe/Berlin. An operator may override it with a
    reason before the day's variation margin runs (audited); the computed
    price is kept beside it."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="settlement_prices",
                                   verbose_name=_("instrument"))
    date = models.DateField(_("business day"))
    price = models.DecimalField(_("settlement price (EUR/GPUh)"), max_digits=12, decimal_places=2)
    source = models.CharField(_("source"), max_length=8, choices=SettlementSource.choices)
    computed_price = models.DecimalField(_("computed price"), max_digits=12, decimal_places=2)
    computed_source = models.CharField(_("computed source"), max_length=8, choices=SettlementSource.choices)
    computed_at = models.DateTimeField(_("computed at"))
    overridden_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                      verbose_name=_("overridden by"))
    override_reason = models.CharField(_("reason for the override"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("daily settlement price")
        verbose_name_plural = _("daily settlement prices")
        ordering = ["-date", "instrument"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "date"], name="settlementprice_unique_day"),
            models.CheckConstraint(condition=Q(source="override", overridden_by__isnull=False)
                                   | (~Q(source="override") & Q(overridden_by__isnull=True)),
                                   name="settlementprice_override_has_operator"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.date}: {self.price} ({self.source})"


class FuturesJob(models.TextChoices):
    SETTLEMENT_PRICES = "dsp", _("daily settlement prices")
    VARIATION_MARGIN = "variation_margin", _("variation margin")
    EXPIRY = "expiry", _("expiry")
    DEFAULT_FUND = "default_fund", _("default fund")


class FuturesJobRun(models.Model):
    """A daily futures job that ran for a business day: written in the
    job's own transaction, so each runs exactly once per day (a second run
    meets the unique row and does nothing)."""

    kind = models.CharField(_("job"), max_length=16, choices=FuturesJob.choices)
    date = models.DateField(_("business day"))
    finished_at = models.DateTimeField(_("finished at"))
    summary = models.JSONField(_("summary"), default=dict)

    class Meta:
        verbose_name = _("futures job run")
        verbose_name_plural = _("futures job runs")
        ordering = ["-date", "kind"]
        constraints = [models.UniqueConstraint(fields=["kind", "date"], name="futuresjobrun_once_per_day")]

    def __str__(self) -> str:
        return f"{self.kind} {self.date}"


class VariationMargin(models.Model):
    """One member's variation margin in one future on one business day:
    the position held overnight revalued from yesterday's DSP, and the
    day's trades from their prices, to today's DSP."""

    date = models.DateField(_("business day"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("instrument"))
    position = models.IntegerField(_("position at the DSP (GPUs)"))
    settlement_price = models.DecimalField(_("settlement price"), max_digits=12, decimal_places=2)
    amount = models.DecimalField(_("variation margin (EUR)"), max_digits=18, decimal_places=2)

    class Meta:
        verbose_name = _("variation margin")
        verbose_name_plural = _("variation margins")
        ordering = ["-date", "organisation", "instrument"]
        constraints = [models.UniqueConstraint(fields=["date", "organisation", "instrument"],
                                               name="variationmargin_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.organisation_id} {self.instrument_id}: {self.amount}"


class MarginCall(models.Model):
    """A member below its maintenance margin after the day's run: it must
    pay ``amount`` (back to its initial margin) by ``due_at`` (10:00 on the
    next business day), or an operator may close its positions out."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="margin_calls",
                                     verbose_name=_("organisation"))
    date = models.DateField(_("business day"))
    amount = models.DecimalField(_("amount (EUR)"), max_digits=18, decimal_places=2)
    due_at = models.DateTimeField(_("due at"))
    met_at = models.DateTimeField(_("met at"), null=True, blank=True)
    closed_out_at = models.DateTimeField(_("closed out at"), null=True, blank=True)
    closed_out_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                      verbose_name=_("closed out by"))

    class Meta:
        verbose_name = _("margin call")
        verbose_name_plural = _("margin calls")
        ordering = ["-date", "organisation"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "date"], name="margincall_one_per_day"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="margincall_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.date}: {self.amount}"

    @property
    def open(self) -> bool:
        return self.met_at is None and self.closed_out_at is None


class DefaultFundSize(models.Model):
    """The default fund as sized on one business day: cover 2 under the stress move."""

    date = models.DateField(_("business day"), unique=True)
    size = models.DecimalField(_("size (EUR)"), max_digits=18, decimal_places=2)
    stress_move = models.DecimalField(_("stress move"), max_digits=5, decimal_places=4)
    inputs = models.JSONField(_("inputs"), default=dict)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("default fund size")
        verbose_name_plural = _("default fund sizes")
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"{self.date}: {self.size}"


class DefaultFundContribution(models.Model):
    fund = models.ForeignKey(DefaultFundSize, on_delete=models.PROTECT, related_name="contributions")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    initial_margin = models.DecimalField(_("initial margin (EUR)"), max_digits=18, decimal_places=2)
    stress_loss = models.DecimalField(_("stress loss (EUR)"), max_digits=18, decimal_places=2)
    amount = models.DecimalField(_("contribution (EUR)"), max_digits=18, decimal_places=2)

    class Meta:
        verbose_name = _("default fund contribution")
        verbose_name_plural = _("default fund contributions")
        constraints = [models.UniqueConstraint(fields=["fund", "organisation"], name="defaultfund_one_per_member")]

    def __str__(self) -> str:
        return f"{self.fund_id} {self.organisation_id}: {self.amount}"


class TransferKind(models.TextChoices):
    CASCADE = "cascade", _("cascading")
    FINAL = "final", _("final settlement")


class PositionTransfer(models.Model):
    """A futures position moved without a trade, against the clearing house:
    cascading (a year into its quarters, a quarter into its months, at the
    parent's last settlement price) and the final settlement of a month (the
    position closed at the final settlement price). ``reconcile`` counts
    these with the trades when it checks positions."""

    date = models.DateField(_("business day"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("instrument"))
    kind = models.CharField(_("kind"), max_length=8, choices=TransferKind.choices)
    side = models.CharField(_("side"), max_length=4, choices=Side.choices)
    quantity = models.PositiveIntegerField(_("quantity (GPUs)"))
    price = models.DecimalField(_("price (EUR/GPUh)"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("position transfer")
        verbose_name_plural = _("position transfers")
        ordering = ["-date", "organisation", "instrument"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="positiontransfer_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.date} {self.kind} {self.organisation_id} {self.side} {self.quantity} {self.instrument_id}"


# --- Daily trade aggregates (issue 11, "Speed"; docs/architecture.md) --------------------------


class ActivityDay(models.Model):
    """GPU-hours one organisation traded on one side, in one segment and
    class, on one Berlin day: the market-activity indicators read closed days
    from here instead of every trade. Written only by
    ``market.services.aggregates`` for a whole day at once."""

    date = models.DateField(_("day"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+", verbose_name=_("GPU class"))
    segment = models.CharField(_("segment"), max_length=16, choices=Segment.choices)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    side = models.CharField(_("side"), max_length=4, choices=Side.choices)
    gpuh = models.BigIntegerField(_("GPU-hours"))

    class Meta:
        verbose_name = _("daily activity")
        verbose_name_plural = _("daily activity")
        constraints = [models.UniqueConstraint(fields=["date", "gpu_class", "segment", "organisation", "side"],
                                               name="activityday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.gpu_class_id} {self.segment} {self.organisation_id} {self.side}: {self.gpuh}"


class SellerDay(models.Model):
    """GPU-hours one organisation sold in the spot segments of one class and
    zone on one Berlin day: the supply-concentration indicator's input."""

    date = models.DateField(_("day"))
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+", verbose_name=_("GPU class"))
    zone = models.ForeignKey(DeliveryZone, on_delete=models.PROTECT, related_name="+", verbose_name=_("delivery zone"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    gpuh = models.BigIntegerField(_("GPU-hours"))

    class Meta:
        verbose_name = _("daily seller volume")
        verbose_name_plural = _("daily seller volumes")
        constraints = [models.UniqueConstraint(fields=["gpu_class", "zone", "date", "organisation"],
                                               name="sellerday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.gpu_class_id}.{self.zone_id} {self.organisation_id}: {self.gpuh}"


class FuturesFlowDay(models.Model):
    """The net number of contracts of one future that one organisation
    bought (positive) or sold (negative) on one Berlin day: open interest at
    a day's end is rebuilt from these instead of every futures trade since
    the first. A day whose trades net to zero for the organisation has no row."""

    date = models.DateField(_("day"))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("instrument"))
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("organisation"))
    quantity = models.BigIntegerField(_("net contracts bought"))

    class Meta:
        verbose_name = _("daily futures flow")
        verbose_name_plural = _("daily futures flows")
        constraints = [models.UniqueConstraint(fields=["date", "instrument", "organisation"],
                                               name="futuresflowday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.instrument_id} {self.organisation_id}: {self.quantity:+d}"


class AggregateDay(models.Model):
    """A Berlin day whose aggregates are written: its trades are final (the
    day has ended), so the rows are never recomputed."""

    date = models.DateField(_("day"), unique=True)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("aggregated day")
        verbose_name_plural = _("aggregated days")
        ordering = ["-date"]

    def __str__(self) -> str:
        return str(self.date)

# --- Electricity prices (issue 11; market.power) -------------------------------------------


class PowerPrice(models.Model):
    """The wholesale electricity price of one hour in a bidding zone (the
    day-ahead price of DE-LU, from SMARD), imported by an operator."""

    DE_LU = "DE-LU"

    zone = models.CharField(_("bidding zone"), max_length=8, default=DE_LU)
    hour_start = models.DateTimeField(_("hour (start, UTC)"))
    price = models.DecimalField(_("price (EUR/MWh)"), max_digits=9, decimal_places=2)
    source = models.CharField(_("source"), max_length=100, blank=True)
    is_demo = models.BooleanField(_("demo data"), default=False)
    imported_at = models.DateTimeField(_("imported at"))

    class Meta:
        verbose_name = _("electricity price")
        verbose_name_plural = _("electricity prices")
        ordering = ["-hour_start"]
        constraints = [models.UniqueConstraint(fields=["zone", "hour_start"], name="powerprice_unique_hour")]

    def __str__(self) -> str:
        return f"{self.zone} {self.hour_start:%Y-%m-%dT%H:%MZ}: {self.price}"
