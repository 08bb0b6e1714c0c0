"""Reads of the product catalogue."""

from __future__ import annotations

from datetime import date, timedelta

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from market import calendar
from market.models import Instrument, InstrumentStatus, Segment

# The live catalogue: what the instrument list shows unless asked for a status.
LIVE_STATUSES = (InstrumentStatus.SCHEDULED, InstrumentStatus.OPEN, InstrumentStatus.HALTED)


def instrument_queryset() -> QuerySet[Instrument]:
    return Instrument.objects.select_related("gpu_class", "zone").order_by("delivery_start", "segment", "symbol")


def instrument_get(*, symbol: str) -> Instrument:
    """The instrument with this symbol, in any status; ``Instrument.DoesNotExist`` if none."""
    return instrument_queryset().get(symbol=symbol)


class InstrumentFilter(django_filters.FilterSet):
    """Filters of ``GET /api/v1/instruments/``. Without ``status`` it lists the
    live catalogue (scheduled, open, halted)."""

    segment = django_filters.ChoiceFilter(choices=Segment.choices, help_text=_("Segment."))
    gpu_class = django_filters.CharFilter(field_name="gpu_class__code", help_text=_("GPU class code, e.g. H100."))
    zone = django_filters.CharFilter(field_name="zone__code", help_text=_("Delivery zone, e.g. DE or DE-BY."))
    status = django_filters.ChoiceFilter(
        choices=InstrumentStatus.choices,
        help_text=_("Status. Without it the list shows scheduled, open and halted instruments."),
    )
    delivery_date = django_filters.DateFilter(
        method="filter_delivery_date",
        help_text=_("Local (Europe/Berlin) day on which delivery starts, YYYY-MM-DD."),
    )

    class Meta:
        model = Instrument
        fields = ["segment", "gpu_class", "zone", "status", "delivery_date"]

    def filter_queryset(self, queryset: QuerySet[Instrument]) -> QuerySet[Instrument]:
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.filter(status__in=LIVE_STATUSES)
        return super().filter_queryset(queryset)

    def filter_delivery_date(self, queryset: QuerySet[Instrument], name: str, value: date) -> QuerySet[Instrument]:
        try:
            starts, ends = calendar.local_midnight(value), calendar.local_midnight(value + timedelta(days=1))
        except OverflowError:  # 0001-01-01 (year 0 in UTC), 9999-12-31 (no next day): nothing delivers then
            return queryset.none()
        return queryset.filter(delivery_start__gte=starts, delivery_start__lt=ends)
