"""``python manage.py expire_credits``: return the unused part of every
credit grant past its expiry to the incentive fund (idempotent: a second
run, or a run beside the Celery job, books nothing twice)."""

from typing import Any

from django.core.management.base import BaseCommand

from incentives.services import credits_expire


class Command(BaseCommand):
    help = "Return the unused part of expired incentive credits to the incentive fund."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"expired: {credits_expire()}")
