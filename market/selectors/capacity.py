"""Reads for the provider screen: the organisation's sites, and per delivery
hour how much of its capacity is committed (sold or offered) and how much is
still free in each zone, by the rule of ``market.capacity``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from market import calendar
from market.capacity import DE, free_quantity, is_feasible
from market.models import GpuClass, Instrument, Site, SiteCapacity
from market.services.capacity import as_commitments, capacity_by_state, commitments_by_hour, instrument_commitments

# Shown beside the repeated October hour, whose two halves share a wall clock.
_ZONE_ABBREVIATIONS = {"CEST": _("CEST"), "CET": _("CET")}


def sites_for(*, organisation: Organisation) -> list[Site]:
    """The organisation's sites by name, each with its capacities (by class
    code) prefetched: two queries."""
    capacities = SiteCapacity.objects.select_related("gpu_class").order_by("gpu_class__code")
    return list(
        Site.objects.filter(organisation=organisation)
        .prefetch_related(Prefetch("capacities", queryset=capacities))
        .order_by("name", "pk")
    )


def site_for(*, organisation: Organisation, pk: int) -> Site | None:
    """One of the organisation's sites; None for anyone else's."""
    return Site.objects.filter(organisation=organisation, pk=pk).first()


@dataclass(frozen=True)
class ZoneCell:
    zone: str
    registered: int  # GPUs that may back a sell in this zone: all sites for DE, the state's for DE-XX
    committed: int  # sold or offered in this zone's instrument, beyond resale of bought capacity
    free: int  # the most a new sell in this zone may add


@dataclass(frozen=True)
class HourRow:
    hour: calendar.DeliveryHour
    cells: list[ZoneCell]
    feasible: bool
    ended: bool  # delivery is over

    @property
    def local_range(self) -> str:
        """``14:00–15:00``; the repeated October hour also names its offset."""
        start = self.hour.start.astimezone(calendar.BERLIN)
        if self.hour.label.endswith(("A", "B")):
            # Both halves run 02:00-03:00 on the wall clock; the offset tells them apart.
            name = start.tzname() or ""
            return f"{start:%H}:00–{start.hour + 1:02d}:00 {_ZONE_ABBREVIATIONS.get(name, name)}"
        end = self.hour.end.astimezone(calendar.BERLIN)
        return f"{start:%H:%M}–{end:%H:%M}"


@dataclass(frozen=True)
class ClassOverview:
    gpu_class: str
    registered: int
    zones: list[ZoneCell]  # per zone: registered capacity (committed/free of the zone are per hour)
    rows: list[HourRow]

    @property
    def overcommitted(self) -> bool:
        return not all(row.feasible for row in self.rows)


@dataclass(frozen=True)
class CapacityOverview:
    day: date
    classes: list[ClassOverview]


def capacity_overview(*, organisation: Organisation, day: date, now: datetime | None = None) -> CapacityOverview:
    """Per GPU class (with capacity, or with commitments on ``day``) and per
    delivery hour of the local ``day``: committed and free GPUs in zone DE
    and in each state where the organisation has capacity or commitments.
    Three queries."""
    now = now or timezone.now()
    start = calendar.local_midnight(day)
    end = calendar.local_midnight(day + timedelta(days=1))
    capacity = capacity_by_state(organisation=organisation)
    rows = instrument_commitments(
        organisation=organisation,
        instruments=Instrument.objects.filter(delivery_start__gte=start, delivery_start__lt=end),
    )
    by_hour = commitments_by_hour(rows)
    class_ids = set(capacity) | {row.gpu_class_id for row in rows if row.committed}
    codes = dict(GpuClass.objects.filter(pk__in=class_ids).values_list("pk", "code")) if class_ids else {}
    classes = []
    for class_id in sorted(class_ids, key=lambda pk: codes[pk]):
        by_state = capacity.get(class_id, {})
        total = sum(by_state.values())
        states = set(by_state) | {
            zone for (cls, _start), by_zone in by_hour.items() if cls == class_id
            for zone, committed in by_zone.items() if committed and zone != DE
        }
        zones = [DE, *sorted(states)]
        hour_rows = []
        for hour in calendar.day_hours(day):
            by_zone = by_hour.get((class_id, hour.start), {})
            commitments = as_commitments(dict(by_zone))
            cells = [
                ZoneCell(
                    zone=zone,
                    registered=total if zone == DE else by_state.get(zone, 0),
                    committed=by_zone.get(zone, 0),
                    free=free_quantity(by_state, commitments, zone),
                )
                for zone in zones
            ]
            hour_rows.append(HourRow(hour=hour, cells=cells, feasible=is_feasible(by_state, commitments),
                                     ended=hour.end <= now))
        header = [ZoneCell(zone=zone, registered=total if zone == DE else by_state.get(zone, 0), committed=0, free=0)
                  for zone in zones]
        classes.append(ClassOverview(gpu_class=codes[class_id], registered=total, zones=header, rows=hour_rows))
    return CapacityOverview(day=day, classes=classes)
