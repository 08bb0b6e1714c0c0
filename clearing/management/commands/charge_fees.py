"""``python manage.py charge_fees [--month YYYY-MM]``: charge every member's
fees of a calendar month (default: the previous one, Europe/Berlin), one
invoice each with VAT, and sweep the funds' shares.

Idempotent: the same service as the Celery job ``clearing.charge_fees``; a
month charged before charges nothing again. Prints how many organisations
this run charged; exits with an error if some could not be charged.
"""

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clearing.models import FeeAccrual
from clearing.services.fees import fees_charge_month, previous_month


def _month(value: str) -> datetime.date:
    try:
        return datetime.datetime.strptime(value, "%Y-%m").date()  # noqa: DTZ007 (a calendar month, no instant)
    except ValueError:
        raise CommandError(f"--month takes YYYY-MM, not {value!r}") from None


class Command(BaseCommand):
    help = "Charge the fees of a calendar month (default: the previous month) and sweep the funds' shares."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", type=_month, default=None, help="YYYY-MM (default: the previous month)")

    def handle(self, *args: Any, month: datetime.date | None = None, **options: Any) -> None:
        month = month or previous_month()
        try:
            charged = fees_charge_month(month=month)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"charged: {charged}")
        left = FeeAccrual.objects.filter(month=month, charged_at__isnull=True).count()
        if left:
            raise CommandError(f"{left} organisation(s) not charged for {month:%Y-%m}; see the log")
