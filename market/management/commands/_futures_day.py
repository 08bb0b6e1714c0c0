"""The shape of the futures day's commands (``compute_settlement_prices``,
``run_variation_margin``, ``expire_futures``): ``--date``, the service,
its refusal as a command error, one line of output. Not a command itself
(the leading underscore)."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.errors import ExchangeError


class FuturesDayCommand(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="business day, YYYY-MM-DD")

    def run(self, day: date) -> str:  # pragma: no cover - each command says what it does
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        try:
            line = self.run(day)
        except ExchangeError as error:
            raise CommandError(error.detail) from None
        self.stdout.write(f"{day}: {line}")


def counted(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count else " (already done, or nothing to do)")


__all__ = ["FuturesDayCommand", "counted"]
