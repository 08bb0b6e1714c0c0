"""``python manage.py compute_settlement_prices --date YYYY-MM-DD``: the same
service as the Celery job (``market.services.futures.settlement_prices_compute``),
exactly once per business day: a second run does nothing and says so."""

from datetime import date

from market.management.commands._futures_day import FuturesDayCommand, counted
from market.services import futures


class Command(FuturesDayCommand):
    help = ("Compute the daily settlement prices of every listed future for a business day "
            "(once per day, from 17:30 Europe/Berlin).")

    def run(self, day: date) -> str:
        return counted(futures.settlement_prices_compute(day=day), "prices set")
