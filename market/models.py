"""The product catalogue: GPU classes, delivery zones and instruments.

Instruments are listed by ``market.services.instruments_list_upcoming``; the
admin never adds or edits them. Delivery times are stored in UTC; the local
(Europe/Berlin) view of them lives in ``market.calendar``.
"""

from datetime import datetime
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

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
