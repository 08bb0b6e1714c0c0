"""``python manage.py expire_futures --date YYYY-MM-DD``: the expiry of a
business day (``market.services.futures.futures_expire``), after its margin
run; once per day: years and quarters cascade, months whose base index is
complete settle in cash."""

from datetime import date

from market.management.commands._futures_day import FuturesDayCommand
from market.services import futures


class Command(FuturesDayCommand):
    help = "Cascade expiring years and quarters and settle ended months against their base index (once per day)."

    def run(self, day: date) -> str:
        done = futures.futures_expire(day=day)
        if not done:
            return "already done"
        return f"{done['cascaded']} futures cascaded, {done['settled']} months settled"
