"""Import of hourly electricity prices (issue 11): an operator uploads a
SMARD export (``market.power_csv``) in the admin.

All or nothing: a file with one bad row writes nothing, and the error names
the line. Idempotent per hour: an hour already stored is updated to the
file's price (SMARD revises a price now and then), an unchanged one is left
alone; a demo hour is replaced by the real one. Audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from market import power_csv
from market.models import PowerPrice


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    first: datetime
    last: datetime


def power_prices_import(*, text: str, operator: User | None, source: str = "SMARD",
                        now: datetime | None = None) -> ImportResult:
    """Store the file's hourly prices of DE-LU; raises ``power_csv.SmardError``
    (nothing written) for a file that cannot be read."""
    hours = power_csv.parse(text)
    now = now or timezone.now()
    created = updated = unchanged = 0
    with transaction.atomic():
        existing = {row.hour_start: row for row in PowerPrice.objects.select_for_update().filter(
            zone=PowerPrice.DE_LU, hour_start__in=[hour.hour_start for hour in hours])}
        new = []
        for hour in hours:
            row = existing.get(hour.hour_start)
            if row is None:
                new.append(PowerPrice(zone=PowerPrice.DE_LU, hour_start=hour.hour_start, price=hour.price,
                                      source=source[:100], imported_at=now))
            elif row.price == hour.price and not row.is_demo:
                unchanged += 1
            else:
                PowerPrice.objects.filter(pk=row.pk).update(price=hour.price, source=source[:100], is_demo=False,
                                                             imported_at=now)
                updated += 1
        PowerPrice.objects.bulk_create(new)
        created = len(new)
        result = ImportResult(created=created, updated=updated, unchanged=unchanged,
                              first=hours[0].hour_start, last=hours[-1].hour_start)
        if operator is not None:
            _audit(operator, result, source)
    return result


def _audit(operator: User, result: ImportResult, source: str) -> None:
    """One audit entry per import, on the file's first hour."""
    first = PowerPrice.objects.get(zone=PowerPrice.DE_LU, hour_start=result.first)
    audit_record(actor=operator, action="power_prices.import", organisation=None, obj=first, before={}, after={
        "source": source, "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
        "first_hour": result.first.isoformat(), "last_hour": result.last.isoformat()})
