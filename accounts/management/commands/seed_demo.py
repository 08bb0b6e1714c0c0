from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.demo import seed_accounts
from clearing.demo import seed_clearing, seed_settlement
from incentives.demo import seed_incentives
from market.demo import HISTORY_DAYS, maker_traders, seed_history, seed_market, seed_quotes, seed_sites
from market.demo_dayahead import seed_dayahead_bids, seed_dayahead_results
from market.demo_futures import seed_futures
from market.demo_index import seed_index_history
from market.demo_power import seed_power_history


class Command(BaseCommand):
    help = ("Create or refresh the demo members, products, sites and cash, a year of index history marked as demo "
            "data, the market makers' week of trades and their resting quotes (idempotent). "
            "Password: $DEMO_PASSWORD or the demo default.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--history-days", type=int, default=HISTORY_DAYS,
                            help=f"days of past trades between the market makers (default {HISTORY_DAYS}; 0: none)")
        parser.add_argument("--no-trading", action="store_true",
                            help="members, products, sites, cash and index history only: no trades, no quotes")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = seed_accounts()
        # Each step is idempotent and runs after the members its data belongs to.
        market = seed_market()
        sites = seed_sites()
        # Cash for every organisation that may trade: not for one still in KYC.
        approved = [org for org in summary.members if org.kyc.is_approved]
        deposits = seed_clearing(approved, operator=summary.operator)
        index_values = seed_index_history()
        power_hours = seed_power_history()
        programme = seed_incentives(operator=summary.operator)  # type: ignore[arg-type]  # seed_accounts sets it
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
        self.stdout.write(f"Index history: {index_values} demo values added (a year, marked as demo data).")
        self.stdout.write(f"Electricity prices: {power_hours} demo hours added (a year, marked as demo data).")
        self.stdout.write(f"Incentives: programme {programme.name!r} open ({programme.budget} EUR); "
                          "demo start-ups may apply at /incentives/.")
        if not options["no_trading"]:
            # Trades first (oldest first, under the services' clock), then
            # their deliveries and fees, then the quotes around the last prices.
            history = seed_history(days=options["history_days"])
            futures_days = seed_futures()  # before the fees of past months are charged
            auctions = seed_dayahead_results()  # before the deliveries are advanced
            settlement = seed_settlement(traders=maker_traders())
            quotes = seed_quotes()
            bids = seed_dayahead_bids()
            months = ", ".join(f"{month:%Y-%m}" for month in settlement.months_charged) or "none"
            self.stdout.write(
                f"Market makers: {history.trades} trades added over {options['history_days']} days "
                f"({history.listed} past instruments listed), {settlement.deliveries.access_posted} accesses posted, "
                f"{settlement.deliveries.confirmed} deliveries confirmed, {settlement.settled} settled, "
                f"fees charged for: {months}; {quotes} quotes added; {bids} day-ahead bids entered; "
                f"futures quoted and settled on {futures_days} business days; {auctions} past day-ahead auctions "
                f"cleared."
            )
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))
