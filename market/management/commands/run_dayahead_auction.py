"""``python manage.py run_dayahead_auction --date YYYY-MM-DD``: clear the
day-ahead auctions of one delivery day now (API contract, "Operator
commands"). The same service as the Celery job; idempotent: an auction
already cleared is skipped, and one whose gate closure has not passed is
not touched (the command says so)."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from market import calendar
from market.models import AuctionStatus, DayAheadAuction
from market.services import dayahead


class Command(BaseCommand):
    help = "Clear the day-ahead auctions of one delivery day (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="delivery day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        now = timezone.now()
        gate = calendar.dayahead_gate_closure(day)
        if now < gate:
            raise CommandError(f"gate closure for {day} is {gate.astimezone(calendar.BERLIN):%Y-%m-%d %H:%M %Z}; "
                               "bids can still change until then")
        cleared = dayahead.auctions_clear_due(now=now, delivery_date=day)
        total = DayAheadAuction.objects.filter(delivery_date=day)
        done = total.filter(status=AuctionStatus.CLEARED).count()
        self.stdout.write(f"cleared now: {cleared}; cleared in all: {done} of {total.count()} auctions for {day}")
