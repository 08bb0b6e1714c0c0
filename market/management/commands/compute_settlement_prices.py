"""``python manage.py compute_settlement_prices --date YYYY-MM-DD``: the same service as the
Celery job (``market.services.futures.settlement_prices_compute``), exactly once per
business day: a second run does nothing and says so."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.errors import ExchangeError
from market.services import futures


class Command(BaseCommand):
    help = ("Compute the daily settlement prices of every listed future for a business day "
            "(once per day, from 17:30 Europe/Berlin).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="business day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        try:
            count = futures.settlement_prices_compute(day=day)
        except ExchangeError as error:
            raise CommandError(error.detail) from None
        self.stdout.write(f"{day}: {count} prices set" + ("" if count else " (already done, or nothing to do)"))
