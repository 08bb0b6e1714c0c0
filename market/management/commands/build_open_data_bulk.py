"""``python manage.py build_open_data_bulk [--date YYYY-MM-DD]``: the daily
bulk file of all open data (``market.open_data.bulk_build``), as the Celery
job writes it at 00:30 for the day before; written once per day."""

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from market import calendar, open_data


class Command(BaseCommand):
    help = "Write the bulk file (ZIP) of all open data for a day (default: yesterday, Europe/Berlin); once per day."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="the day, YYYY-MM-DD (default: yesterday)")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        try:
            day = (date.fromisoformat(options["date"]) if options["date"]
                   else now.astimezone(calendar.BERLIN).date() - timedelta(days=1))
        except ValueError as error:
            raise CommandError("Enter the date as YYYY-MM-DD.") from error
        path = open_data.bulk_build(day, now=now)
        self.stdout.write(f"{path} written." if path else f"{open_data.bulk_path(day)} exists already; nothing done.")
