from typing import Any

from django.core.management.base import BaseCommand

from accounts.demo import seed_accounts
from clearing.demo import seed_clearing
from market.demo import seed_market, seed_sites


class Command(BaseCommand):
    help = "Create or refresh the demo members (idempotent). Password: $DEMO_PASSWORD or the demo default."

    def handle(self, *args: Any, **options: Any) -> None:
        summary = seed_accounts()
        # Each step is idempotent and runs after the members its data belongs to.
        market = seed_market()
        sites = seed_sites()
        # Cash for every organisation that may trade: not for one still in KYC.
        approved = [org for org in summary.members if org.kyc.is_approved]
        deposits = seed_clearing(approved, operator=summary.operator)
        self.stdout.write(f"Demo organisations ({len(summary.organisations)}):")
        for line in summary.organisations:
            self.stdout.write(f"  {line}")
        self.stdout.write(f"Demo users ({len(summary.users)}), password {summary.password!r}:")
        for line in summary.users:
            self.stdout.write(f"  {line}")
        self.stdout.write(
            f"Market: {market.classes_created} GPU classes and {market.instruments_listed} instruments added, "
            f"{market.opened} opened, {market.closed} closed."
        )
        self.stdout.write(f"Provider sites ({len(sites.sites)}, {sites.created} added now):")
        for line in sites.sites:
            self.stdout.write(f"  {line}")
        self.stdout.write(
            f"Cash: {len(approved)} approved organisations hold 1,000,000.00 EUR "
            f"({len(deposits)} deposits booked now)."
        )
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))
