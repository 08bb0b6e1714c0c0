"""``python manage.py settle_deliveries``: settle every delivery that is due
now (confirmed, dispute resolved, or 24 h after delivery end undisputed).

Idempotent (API contract, "Operator commands"): each ticket is claimed by a
conditional update, so a second run, or a run beside the Celery job, pays
nothing twice. Prints how many tickets this run settled.
"""

from typing import Any

from django.core.management.base import BaseCommand

from clearing.services import deliveries_settle


class Command(BaseCommand):
    help = "Settle every delivery whose confirmation window has passed, and every confirmed or resolved one."

    def handle(self, *args: Any, **options: Any) -> None:
        settled = deliveries_settle()
        self.stdout.write(f"settled: {settled}")
