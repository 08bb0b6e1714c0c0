"""``python manage.py expire_futures --date YYYY-MM-DD``: the expiry of a
business day (``market.services.futures.futures_expire``), after its margin
run; once per day: years and quarters cascade, months whose base index is
complete settle in cash."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.errors import ExchangeError
from market.services import futures


class Command(BaseCommand):
    help = "Cascade expiring years and quarters and settle ended months against their base index (once per day)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="business day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        try:
            done = futures.futures_expire(day=day)
        except ExchangeError as error:
            raise CommandError(error.detail) from None
        if not done:
            self.stdout.write(f"{day}: already done")
        else:
            self.stdout.write(f"{day}: {done['cascaded']} futures cascaded, {done['settled']} months settled")
