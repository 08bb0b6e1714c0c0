"""Run the instrument listing job once: list, then open and close by the clock.

    python manage.py list_instruments [--at 2026-10-24T15:00+02:00]
"""

from argparse import ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from market import services


def _aware(value: str) -> datetime:
    """argparse type: an aware datetime, or a usage error."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ArgumentTypeError(_("Give an ISO 8601 time with offset, e.g. 2026-10-24T15:00+02:00."))
    return moment


class Command(BaseCommand):
    help = "List upcoming instruments and open/close them by the clock (the Celery job, once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", type=_aware, default=None,
                            help="Act as if it were this time (ISO 8601 with offset). Default: now.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = options["at"] or timezone.now()
        listed = services.instruments_list_upcoming(now=now)
        opened, closed = services.instruments_open_close(now=now)
        self.stdout.write(_("%(listed)d listed, %(opened)d opened, %(closed)d closed.")
                          % {"listed": listed, "opened": opened, "closed": closed})
