"""``python manage.py reconcile``: check every clearing invariant now.

Prints ``OK: <check>`` for each check that passes and
``BROKEN: <check>: <detail>`` for each breach; exits 1 if anything is
broken (API contract, "Operator commands"). Records nothing: the history of
runs is the Celery job's.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from clearing.reconcile import run_checks


class Command(BaseCommand):
    help = "Check every clearing invariant; print each broken one and exit non-zero if any."

    def handle(self, *args: Any, **options: Any) -> None:
        broken = 0
        # In the site's language (German), like the job's e-mails and history.
        with translation.override(settings.LANGUAGE_CODE):
            results = run_checks()
        for result in results:
            if result.ok:
                self.stdout.write(self.style.SUCCESS(f"OK: {result.check.name}"))
                continue
            broken += 1
            for breach in result.breaches:
                self.stdout.write(self.style.ERROR(f"BROKEN: {breach.check}: {breach.detail}"))
        if broken:
            # CommandError prints to stderr and exits with status 1.
            raise CommandError(f"{broken} reconciliation check(s) broken.", returncode=1)
