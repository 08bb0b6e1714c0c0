"""``python manage.py run_variation_margin --date YYYY-MM-DD``: the same
service as the Celery job (``market.services.futures.variation_margin_run``),
exactly once per business day: a second run does nothing and says so."""

from datetime import date

from market.management.commands._futures_day import FuturesDayCommand, counted
from market.services import futures


class Command(FuturesDayCommand):
    help = "Book the variation and initial margin of a business day after its settlement prices (once per day)."

    def run(self, day: date) -> str:
        return counted(futures.variation_margin_run(day=day), "members booked")
