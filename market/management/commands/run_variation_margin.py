"""``python manage.py run_variation_margin --date YYYY-MM-DD``: the same service as the
Celery job (``market.services.futures.variation_margin_run``), exactly once per
business day: a second run does nothing and says so."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.errors import ExchangeError
from market.services import futures


class Command(BaseCommand):
    help = "Book the variation and initial margin of a business day after its settlement prices (once per day)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="business day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        try:
            count = futures.variation_margin_run(day=day)
        except ExchangeError as error:
            raise CommandError(error.detail) from None
        self.stdout.write(f"{day}: {count} members booked" + ("" if count else " (already done, or nothing to do)"))
