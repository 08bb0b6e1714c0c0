"""Reconciliation: every invariant holds on a clean ledger, and each one is
reported when it is broken on purpose (raw SQL past the ORM's and the
database's guards, inside the test's transaction, which is rolled back)."""

import smtplib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format

from accounts.models import User
from clearing import reconcile as reconcile_module
from clearing.invoicing import invoice_issue
from clearing.management.commands.reconcile import Command as ReconcileCommand
from clearing.models import Account, DeliveryTicket, FeeAccrual, JournalEntry, JournalLine, ReconciliationRun
from clearing.reconcile import MAX_DETAILS_PER_CHECK, Breach, reconcile, registered_checks, run_checks
from clearing.selectors import account_summary, house_balances
from clearing.services import (
    accounts_for,
    cash_reserve,
    delivery_access_post,
    delivery_confirm,
    house_account,
    ledger_post,
    ticket_settle,
)
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from clearing.tasks import reconcile as reconcile_task
from exchange.celery import app as celery_app
from market.models import OrderStatus, Position, Side, SiteCapacity, SiteUsage
from tests.clearing.conftest import deposit
from tests.factories import BuyOrderRowFactory, OpenInstrumentFactory, delivery_hour, fee_line, spot_trade
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db

D = Decimal
CHECK_NAMES = [
    "entries_balance",
    "trial_balance",
    "balances_match_lines",
    "reserved_matches_orders",
    "no_negative_balances",
    "invoice_numbers_consecutive",
    "delivered_equals_traded",
    "ccp_matches_open_tickets",
    "pending_matches_tickets",
    "fee_accruals_match_trades",
    "fee_reserve_matches_accruals",
    "fee_charges_match_entries",
    "fees_charged_monthly",
    "positions_match_trades",
    "margin_covers_requirement",
    "site_use_within_capacity",
    "jobs_succeed",
    "start_financing_matches_bookings",
    "credits_accounted",
]


@pytest.fixture
def ledger(operator, alice_org, alice, charlie_org):
    """Deposits for Alice and Charlie; Alice has two resting buy orders
    whose reservations are in the ledger, plus a cancelled and a sell order
    that reserve nothing."""
    deposit(operator, alice_org, "1000.00")
    deposit(operator, charlie_org, "500.00")
    first = BuyOrderRowFactory(organisation=alice_org, placed_by=alice, reserved_amount=D("25.00"))
    second = BuyOrderRowFactory(organisation=alice_org, placed_by=alice, reserved_amount=D("70.50"),
                                status=OrderStatus.PARTIALLY_FILLED, instrument=first.instrument)
    cash_reserve(organisation=alice_org, amount=D("25.00"), reference=f"order:{first.pk}")
    cash_reserve(organisation=alice_org, amount=D("70.50"), reference=f"order:{second.pk}")
    BuyOrderRowFactory(organisation=alice_org, placed_by=alice, status=OrderStatus.CANCELLED,
                       reserved_amount=D("0.00"), instrument=first.instrument)
    BuyOrderRowFactory(organisation=alice_org, placed_by=alice, side=Side.SELL, reserved_amount=D("0.00"),
                       instrument=first.instrument)
    invoice_issue(organisation=alice_org, reference="delivery:1:buyer", lines=[fee_line("0.02")])
    return {"order": first}


@pytest.fixture(autouse=True)
def english(settings):
    """Details in English with 95.50; the site's default (German) has its own test."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


def broken(breaches: list[Breach]) -> set[str]:
    return {breach.check for breach in breaches}


def details(breaches: list[Breach], check: str) -> list[str]:
    return [breach.detail for breach in breaches if breach.check == check]


def sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_the_registry_holds_every_invariant_in_order():
    assert [check.name for check in registered_checks()] == CHECK_NAMES


def test_a_clean_ledger_reconciles(ledger, alice_org):
    assert accounts_for(organisation=alice_org)["cash_reserved"].balance == D("95.50")
    results = run_checks()
    assert [result.check.name for result in results] == CHECK_NAMES
    assert all(result.ok for result in results)
    assert reconcile() == []


def test_an_unbalanced_entry_is_reported(ledger, alice_org):
    available = accounts_for(organisation=alice_org)["cash_available"]
    entry = available.lines.first().entry
    # The append-only and balanced-entry triggers would refuse this; the
    # ALTER is rolled back with the test's transaction. The fixture's entries
    # are checked first (PostgreSQL won't alter a table with pending checks).
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE clearing_journalline DISABLE TRIGGER USER")
    sql("INSERT INTO clearing_journalline (entry_id, account_id, amount) VALUES (%s, %s, 1.00)",
        [entry.pk, available.pk])

    breaches = reconcile()

    assert details(breaches, "entries_balance") == [
        f"Journal entry #{entry.pk} ({entry.reference}): its lines sum to 1.00."
    ]
    # Alice's stored balance no longer matches her lines either.
    assert broken(breaches) == {"entries_balance", "balances_match_lines"}


def test_accounts_not_summing_to_zero_are_reported(ledger, charlie_org):
    # A member balance moved without a journal line: the books no longer sum to zero.
    available = accounts_for(organisation=charlie_org)["cash_available"]
    sql("UPDATE clearing_account SET balance = balance + 5 WHERE id = %s", [available.pk])

    breaches = reconcile()

    assert details(breaches, "trial_balance") == ["The balances of all accounts sum to 5.00 instead of 0.00."]
    assert details(breaches, "balances_match_lines") == [
        f"Account #{available.pk} (cash available – Charlie Cloud AG): balance 505.00, its lines sum to 500.00."
    ]
    assert broken(breaches) == {"trial_balance", "balances_match_lines"}


def test_a_written_house_balance_column_is_reported_but_not_counted(ledger):
    # House accounts keep no running balance: their balance is the sum of
    # their lines and the column stays 0.00. A value written into it is not
    # part of the books (the trial balance holds) but is reported.
    ccp = house_account("ccp")
    sql("UPDATE clearing_account SET balance = 5 WHERE id = %s", [ccp.pk])

    breaches = reconcile()

    assert broken(breaches) == {"balances_match_lines"}
    assert details(breaches, "balances_match_lines") == [
        f"Account #{ccp.pk} (central counterparty (clearing house)): its balance column holds 5.00, but a "
        "house account's balance is the sum of its lines (0.00) and the column stays 0.00."
    ]


def test_a_house_column_still_holding_the_old_running_total_is_accepted(ledger):
    # Tolerated until every database runs the ledger without house running
    # balances: a column equal to the sum of the lines (what the old
    # ledger_post kept there) is no breach; any other value is.
    bank = house_account("bank")
    sql("UPDATE clearing_account SET balance = -1500 WHERE id = %s", [bank.pk])
    assert reconcile() == []

    sql("UPDATE clearing_account SET balance = -1499 WHERE id = %s", [bank.pk])
    assert details(reconcile(), "balances_match_lines") == [
        f"Account #{bank.pk} (bank (clearing house)): its balance column holds -1,499.00, but a house "
        "account's balance is the sum of its lines (-1,500.00) and the column stays 0.00."
    ]


def test_a_balance_that_differs_from_its_lines_is_reported(ledger, alice_org, charlie_org):
    available = accounts_for(organisation=alice_org)["cash_available"]
    other = accounts_for(organisation=charlie_org)["cash_available"]
    # Moved in both, so the trial balance still holds: only the lines disagree.
    sql("UPDATE clearing_account SET balance = balance + 1 WHERE id = %s", [available.pk])
    sql("UPDATE clearing_account SET balance = balance - 1 WHERE id = %s", [other.pk])

    breaches = reconcile()

    assert broken(breaches) == {"balances_match_lines"}
    assert details(breaches, "balances_match_lines") == [
        f"Account #{available.pk} (cash available – Alice Compute GmbH): balance 905.50, its lines sum to 904.50.",
        f"Account #{other.pk} (cash available – Charlie Cloud AG): balance 499.00, its lines sum to 500.00.",
    ]


def test_reserved_cash_that_differs_from_the_open_buy_orders_is_reported(ledger, alice_org, alice, charlie_org,
                                                                         charlie):
    # Alice's book says 30.00 more than her ledger; Charlie reserves in the
    # book without any reservation in the ledger (no account even).
    BuyOrderRowFactory(organisation=alice_org, placed_by=alice, reserved_amount=D("30.00"),
                       instrument=ledger["order"].instrument)
    BuyOrderRowFactory(organisation=charlie_org, placed_by=charlie, reserved_amount=D("12.34"),
                       instrument=ledger["order"].instrument)

    breaches = reconcile()

    assert broken(breaches) == {"reserved_matches_orders"}
    assert details(breaches, "reserved_matches_orders") == [
        f"Alice Compute GmbH (#{alice_org.pk}): cash and credits reserved 95.50, open orders and auction bids "
        "reserve 125.50.",
        f"Charlie Cloud AG (#{charlie_org.pk}): cash and credits reserved 0.00, open orders and auction bids "
        "reserve 12.34.",
    ]


def test_reserved_cash_without_open_orders_is_reported(ledger, alice_org):
    # The order was cancelled but its reservation never released.
    order = ledger["order"]
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)

    assert details(reconcile(), "reserved_matches_orders") == [
        f"Alice Compute GmbH (#{alice_org.pk}): cash and credits reserved 95.50, open orders and auction bids "
        "reserve 70.50."
    ]


def test_a_negative_member_account_is_reported(ledger, alice_org):
    pending = accounts_for(organisation=alice_org)["settlement_pending"]
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE clearing_account DROP CONSTRAINT clearing_account_guarded_not_negative")
    sql("UPDATE clearing_account SET balance = -5 WHERE id = %s", [pending.pk])

    breaches = reconcile()

    assert details(breaches, "no_negative_balances") == [
        f"Account #{pending.pk} (settlement pending – Alice Compute GmbH) is negative: -5.00."
    ]
    assert "reserved_matches_orders" not in broken(breaches)


def test_a_gap_in_the_invoice_numbers_is_reported(ledger, alice_org):
    sql("UPDATE clearing_invoicesequence SET last_number = last_number + 1")
    invoice_issue(organisation=alice_org, reference="delivery:2:buyer", lines=[fee_line("0.02")])

    breaches = reconcile()

    assert broken(breaches) == {"invoice_numbers_consecutive"}
    [detail] = details(breaches, "invoice_numbers_consecutive")
    assert "2 issued, numbers 1 to 3, the sequence stands at 3" in detail


def test_a_check_that_fails_is_a_breach_not_a_pass(ledger, monkeypatch):
    def exploding() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        return []

    monkeypatch.setitem(reconcile_module._REGISTRY, "exploding",
                        reconcile_module.Check("exploding", "Exploding", exploding))

    results = {result.check.name: result for result in run_checks()}

    [breach] = results["exploding"].breaches
    assert breach.detail.startswith("The check failed: ") and "no_such_table" in breach.detail
    # The failed query did not poison the snapshot: the checks after it ran.
    assert results["invoice_numbers_consecutive"].ok


def test_details_are_capped_per_check(monkeypatch):
    monkeypatch.setitem(reconcile_module._REGISTRY, "noisy",
                        reconcile_module.Check("noisy", "Noisy", lambda: (f"detail {i}" for i in range(60))))

    noisy = details(reconcile(), "noisy")

    assert len(noisy) == MAX_DETAILS_PER_CHECK + 1
    assert noisy[:2] == ["detail 0", "detail 1"] and noisy[-1] == "… and 10 more."


# --- the clearing-core checks (issue 7 item 8) -----------------------------------------------


@pytest.fixture
def trading(db):
    """The orders world (tests/market/orders_world.py) after two trades in
    tomorrow's H100 DE hour: Alice sold 4 to Charlie at 12.30 and that ticket
    is paid out; Dora sold 3 to Charlie at 12.40 and that ticket is still
    open. Fees: maker 0.005, taker 0.015 EUR/GPUh."""
    world = make_world()
    first = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    second = spot_trade(seller=world.dora, buyer=world.charlie, instrument=world.instrument, quantity=3,
                        price=D("12.40"))
    paid = DeliveryTicket.objects.get(trade=first)
    start = paid.delivery_start
    delivery_access_post(user=world.alice, ticket=paid, endpoint="ssh://gpu.example", instructions="",
                         now=start - timedelta(minutes=5))
    delivery_confirm(user=world.charlie, ticket=paid, now=start + timedelta(minutes=5))
    assert ticket_settle(ticket_id=paid.pk, now=start + timedelta(minutes=6))
    return {"world": world, "paid": paid, "open": DeliveryTicket.objects.get(trade=second), "first": first,
            "second": second}


def test_trades_settled_and_open_reconcile(trading):
    world, open_ticket = trading["world"], trading["open"]
    assert (open_ticket.value, open_ticket.seller_fee) == (D("37.20"), D("0.02"))
    assert account_summary(organisation=world.org_c)["settlement_pending"] == D("37.20")
    assert account_summary(organisation=world.org_d)["settlement_pending"] == D("37.18")
    assert house_balances()[Account.Kind.CCP] == D("-37.20")
    assert reconcile() == []


def post(kind: str, *lines: tuple[Account, str]) -> None:
    """A balanced journal entry through the ledger, past the services that would never write it."""
    ledger_post(kind=kind, lines=[(account, D(amount)) for account, amount in lines], reference="test")


def test_the_new_details_speak_german(trading):
    post("correction", (house_account("ccp"), "5.00"), (house_account("bank"), "-5.00"))
    SiteCapacity.objects.filter(site=trading["paid"].seller_site).update(gpus=3)
    with translation.override("de"):
        breaches = reconcile()
    assert details(breaches, "ccp_matches_open_tickets") == [
        "Der zentrale Kontrahent steht bei -32,20; die 1 nicht abgerechneten Lieferscheine sind 37,20 wert, "
        "er müsste also bei -37,20 stehen."
    ]
    [site] = details(breaches, "site_use_within_capacity")
    assert site.startswith("Standort ") and site.endswith(": 4 GPUs auf Lieferscheinen, Kapazität 3.")


def test_a_ccp_that_differs_from_the_open_tickets_is_reported(trading):
    # A balanced entry (trial balance and every account's lines agree) that
    # moves the CCP away from what the open tickets say.
    post("correction", (house_account("ccp"), "5.00"), (house_account("bank"), "-5.00"))

    breaches = reconcile()

    assert broken(breaches) == {"ccp_matches_open_tickets"}
    assert details(breaches, "ccp_matches_open_tickets") == [
        "The central counterparty holds -32.20; the 1 unsettled delivery tickets are worth 37.20, "
        "so it should hold -37.20."
    ]


def test_a_settled_ticket_that_paid_nothing_is_seen_by_the_ccp_check(trading):
    # The open ticket marked settled without its payout entry: the CCP still
    # carries its value, and both parties still wait for it.
    open_ticket, world = trading["open"], trading["world"]
    sql("UPDATE clearing_deliveryticket SET status = 'settled', settled_at = now() WHERE id = %s", [open_ticket.pk])

    breaches = reconcile()

    assert broken(breaches) == {"ccp_matches_open_tickets", "pending_matches_tickets"}
    assert details(breaches, "ccp_matches_open_tickets") == [
        "The central counterparty holds -37.20; the 0 unsettled delivery tickets are worth 0.00, "
        "so it should hold 0.00."
    ]
    assert details(breaches, "pending_matches_tickets") == [
        f"Charlie Cloud AG (#{world.org_c.pk}): settlement pending 37.20, its unsettled delivery tickets "
        "make 0.00 (as buyer 0.00, as seller 0.00).",
        f"Dora Data GmbH (#{world.org_d.pk}): settlement pending 37.18, its unsettled delivery tickets "
        "make 0.00 (as buyer 0.00, as seller 0.00).",
    ]


def test_settlement_pending_that_differs_from_the_tickets_is_reported(trading):
    world = trading["world"]
    charlie = accounts_for(organisation=world.org_c)
    # The buyer side: money moved into pending without a ticket.
    post("correction", (charlie["settlement_pending"], "1.00"), (charlie["cash_available"], "-1.00"))
    # The seller side: the open ticket's seller fee changed, so Dora waits for less than her ledger says.
    sql("UPDATE clearing_deliveryticket SET seller_fee = seller_fee + 0.05 WHERE id = %s", [trading["open"].pk])

    breaches = reconcile()

    assert broken(breaches) == {"pending_matches_tickets"}
    assert details(breaches, "pending_matches_tickets") == [
        f"Charlie Cloud AG (#{world.org_c.pk}): settlement pending 38.20, its unsettled delivery tickets "
        "make 37.20 (as buyer 37.20, as seller 0.00).",
        f"Dora Data GmbH (#{world.org_d.pk}): settlement pending 37.18, its unsettled delivery tickets "
        "make 37.13 (as buyer 0.00, as seller 37.13).",
    ]


def month_text(trading) -> str:  # type: ignore[no-untyped-def]
    return f"{month_of(trading['first'].executed_at):%Y-%m}"


def test_a_fee_accrual_that_differs_from_the_trades_is_reported(trading):
    first, second, world = trading["first"], trading["second"], trading["world"]
    # Charlie took both trades: 0.015 x 4 + 0.015 x 3 = 0.105, held 0.11 + VAT r(0.0209) = 0.13.
    assert first.buyer_fee + second.buyer_fee == D("0.105")
    assert FeeAccrual.objects.get(organisation=world.org_c).held == D("0.13")
    # A trade that charged a cent more than was accrued for it.
    type(first).objects.filter(pk=first.pk).update(buyer_fee=first.buyer_fee + D("0.01"))

    breaches = reconcile()

    assert broken(breaches) == {"fee_accruals_match_trades"}
    assert details(breaches, "fee_accruals_match_trades") == [
        f"Charlie Cloud AG (#{world.org_c.pk}), {month_text(trading)}: fees accrued 0.105, held 0.13; its trades "
        "accrued 0.115, which holds 0.14."
    ]


def test_a_held_amount_that_is_not_the_months_charge_is_reported(trading):
    world = trading["world"]
    sql("UPDATE clearing_feeaccrual SET held = held + 0.01 WHERE organisation_id = %s", [world.org_d.pk])

    breaches = reconcile()

    assert broken(breaches) == {"fee_accruals_match_trades", "fee_reserve_matches_accruals"}
    assert details(breaches, "fee_accruals_match_trades") == [
        f"Dora Data GmbH (#{world.org_d.pk}), {month_text(trading)}: fees accrued 0.015, held 0.03; its trades "
        "accrued 0.015, which holds 0.02."
    ]
    assert details(breaches, "fee_reserve_matches_accruals") == [
        f"Dora Data GmbH (#{world.org_d.pk}): fee reserve 0.02, its months not yet charged hold 0.03."
    ]


def test_a_fee_reserve_that_differs_from_the_months_is_reported(trading):
    world = trading["world"]
    charlie = accounts_for(organisation=world.org_c)
    reserve = Account.objects.get(organisation=world.org_c, kind="fee_reserve")
    post("correction", (reserve, "0.01"), (charlie["cash_available"], "-0.01"))

    breaches = reconcile()

    assert broken(breaches) == {"fee_reserve_matches_accruals"}
    assert details(breaches, "fee_reserve_matches_accruals") == [
        f"Charlie Cloud AG (#{world.org_c.pk}): fee reserve 0.14, its months not yet charged hold 0.13."
    ]


def test_fee_lines_of_a_trade_entry_are_reported(trading):
    post("trade", (house_account("fee_revenue"), "1.00"), (house_account("bank"), "-1.00"))

    assert details(reconcile(), "fee_charges_match_entries") == [
        "Trade entries booked 1.00 to fee revenue and the funds; fees are charged monthly."
    ]


def test_a_charged_month_reconciles_and_a_fee_entry_beyond_it_is_reported(trading):
    month = month_of(trading["first"].executed_at)
    end = month_bounds(month)[1]
    # Charlie net 0.11 + VAT 0.02, Alice 0.02 + 0.00, Dora 0.02 + 0.00.
    assert fees_charge_month(month=month, now=end) == 3
    assert house_balances()[Account.Kind.VAT_PAYABLE] == D("0.02")
    assert reconcile(now=end + timedelta(days=2)) == []

    post("fee", (house_account("fee_revenue"), "1.00"), (house_account("bank"), "-1.00"))

    assert details(reconcile(now=end + timedelta(days=2)), "fee_charges_match_entries") == [
        "The fee entries booked 1.15 to fee revenue and the funds and 0.02 to VAT; the months charged come "
        "to 0.15 net and 0.02 VAT."
    ]


def test_a_month_left_uncharged_is_reported_a_day_after_its_end(trading):
    month = month_of(trading["first"].executed_at)
    end = month_bounds(month)[1]
    assert reconcile(now=end + timedelta(hours=23)) == []  # the charge runs at 00:30 on the 1st

    assert details(reconcile(now=end + timedelta(days=1, minutes=1)), "fees_charged_monthly") == [
        f"{month:%Y-%m}: the fees of 3 organisations are not charged."
    ]


def test_money_for_the_funds_from_elsewhere_does_not_break_the_fee_check(trading):
    # E.g. a grant paid into the incentive fund: not a fee entry.
    post("incentive", (house_account("incentive_fund"), "100.00"), (house_account("bank"), "-100.00"))
    assert reconcile() == []


def test_a_negative_fund_is_reported_from_its_lines(trading):
    # ledger_post refuses to take a fund below zero; written past it. The
    # fund's column stays 0.00: its balance is the sum of its lines.
    fund = house_account("rnd_fund")
    held = house_balances()[Account.Kind.RND_FUND]
    entry = JournalEntry.objects.create(kind="correction", reference="test")
    JournalLine.objects.bulk_create([
        JournalLine(entry=entry, account=fund, amount=-(held + D("1.00"))),
        JournalLine(entry=entry, account=house_account("bank"), amount=held + D("1.00")),
    ])
    # Whether or not this database's ledger still keeps the old running
    # totals in the house columns: a column of 0.00 is what it must hold.
    sql("UPDATE clearing_account SET balance = 0 WHERE organisation_id IS NULL")

    breaches = reconcile()

    assert broken(breaches) == {"no_negative_balances"}
    assert details(breaches, "no_negative_balances") == [
        f"Account #{fund.pk} (R&D fund (clearing house)) is negative: -1.00."
    ]


def test_a_position_that_differs_from_its_trades_is_reported(trading):
    world, instrument = trading["world"], trading["world"].instrument
    Position.objects.filter(organisation=world.org_c, instrument=instrument).update(
        quantity=F("quantity") + 1, bought=F("bought") + 1)
    Position.objects.filter(organisation=world.org_d, instrument=instrument).delete()

    breaches = reconcile()

    assert broken(breaches) == {"positions_match_trades"}
    assert details(breaches, "positions_match_trades") == [
        f"Charlie Cloud AG (#{world.org_c.pk}) in {instrument.symbol}: position net 8, bought 8, sold 0, "
        "buy cost 86.40, sell proceeds 0.00, its trades give net 7, bought 7, sold 0, buy cost 86.40, "
        "sell proceeds 0.00.",
        f"Dora Data GmbH (#{world.org_d.pk}) in {instrument.symbol}: no position, its trades give net -3, "
        "bought 0, sold 3, buy cost 0.00, sell proceeds 37.20.",
    ]


def test_a_position_without_trades_must_be_empty(trading):
    world = trading["world"]
    other = OpenInstrumentFactory(hour=delivery_hour(2, "10"))
    Position.objects.create(organisation=world.org_a, instrument=other)  # all zeros: fine
    assert reconcile() == []
    Position.objects.filter(organisation=world.org_a, instrument=other).update(sell_proceeds=D("1.00"))
    assert details(reconcile(), "positions_match_trades") == [
        f"Alice Rechenwerk GmbH (#{world.org_a.pk}) in {other.symbol}: position net 0, bought 0, sold 0, "
        "buy cost 0.00, sell proceeds 1.00, its trades give net 0, bought 0, sold 0, buy cost 0.00, "
        "sell proceeds 0.00."
    ]


def test_a_site_delivering_more_than_its_capacity_is_reported(trading):
    world, paid = trading["world"], trading["paid"]
    site = paid.seller_site
    hour = paid.delivery_start
    assert reconcile() == []
    SiteCapacity.objects.filter(site=site).update(gpus=3)  # 4 GPUs sold there for that hour

    breaches = reconcile()

    assert broken(breaches) == {"site_use_within_capacity"}
    local = date_format(timezone.localtime(hour), "SHORT_DATETIME_FORMAT")
    assert details(breaches, "site_use_within_capacity") == [
        f"Site {site.name} of Alice Rechenwerk GmbH (#{site.pk}), H100, hour from {local}: "
        "4 GPUs on delivery tickets, capacity 3."
    ]
    # A capacity row that is gone counts as 0.
    SiteCapacity.objects.filter(site=trading["open"].seller_site).delete()
    assert len(details(reconcile(), "site_use_within_capacity")) == 2
    assert world.org_a.pk != world.org_d.pk


def test_site_use_counts_the_tickets_of_one_hour_together(trading):
    # A second trade in the same hour on Alice's site: 4 + 5 GPUs against a capacity of 8.
    world = trading["world"]
    spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=5)
    assert DeliveryTicket.objects.filter(seller_site=trading["paid"].seller_site).count() == 2
    SiteCapacity.objects.filter(site=trading["paid"].seller_site).update(gpus=9)
    assert reconcile() == []
    SiteCapacity.objects.filter(site=trading["paid"].seller_site).update(gpus=8)
    [detail] = details(reconcile(), "site_use_within_capacity")
    assert "9 GPUs on delivery tickets, capacity 8." in detail


def test_site_usage_that_differs_from_the_tickets_is_reported(trading):
    paid, open_ticket = trading["paid"], trading["open"]
    assert (SiteUsage.objects.get(site=paid.seller_site, hour_start=paid.delivery_start).gpus,
            SiteUsage.objects.get(site=open_ticket.seller_site, hour_start=open_ticket.delivery_start).gpus) == (4, 3)
    # Alice's usage a GPU higher than her tickets; Dora's usage row gone.
    SiteUsage.objects.filter(site=paid.seller_site).update(gpus=F("gpus") + 1)
    SiteUsage.objects.filter(site=open_ticket.seller_site).delete()

    breaches = reconcile()

    assert broken(breaches) == {"site_use_within_capacity"}
    local = date_format(timezone.localtime(paid.delivery_start), "SHORT_DATETIME_FORMAT")
    alice_site, dora_site = paid.seller_site, open_ticket.seller_site
    assert sorted(details(breaches, "site_use_within_capacity")) == sorted([
        f"Site {alice_site.name} of Alice Rechenwerk GmbH (#{alice_site.pk}), H100, hour from {local}: "
        "5 GPUs recorded in use, 4 on delivery tickets.",
        f"Site {dora_site.name} of Dora Data GmbH (#{dora_site.pk}), H100, hour from {local}: "
        "0 GPUs recorded in use, 3 on delivery tickets.",
    ])


def test_an_hour_already_delivered_may_exceed_todays_capacity(trading):
    # Capacity may be lowered once an hour is delivered: past hours are not compared.
    SiteCapacity.objects.filter(site=trading["paid"].seller_site).update(gpus=1)
    end = trading["paid"].delivery_end
    assert "site_use_within_capacity" in broken(reconcile(now=end - timedelta(seconds=1)))
    assert reconcile(now=end) == []


# --- the command ----------------------------------------------------------------------------


def test_the_command_prints_ok_per_check_and_exits_zero(ledger, capsys):
    call_command("reconcile")
    assert capsys.readouterr().out.splitlines() == [f"OK: {name}" for name in CHECK_NAMES]


def test_the_command_prints_each_breach_and_exits_one(ledger, alice_org, alice, capsys):
    BuyOrderRowFactory(organisation=alice_org, placed_by=alice, reserved_amount=D("30.00"),
                       instrument=ledger["order"].instrument)

    with pytest.raises(SystemExit) as exit_info:
        ReconcileCommand().run_from_argv(["manage.py", "reconcile"])

    assert exit_info.value.code == 1
    output = capsys.readouterr()
    assert output.out.splitlines() == [
        "OK: entries_balance",
        "OK: trial_balance",
        "OK: balances_match_lines",
        f"BROKEN: reserved_matches_orders: Alice Compute GmbH (#{alice_org.pk}): cash and credits reserved 95.50, "
        "open orders and auction bids reserve 125.50.",
        "OK: no_negative_balances",
        "OK: invoice_numbers_consecutive",
        "OK: delivered_equals_traded",
        "OK: ccp_matches_open_tickets",
        "OK: pending_matches_tickets",
        "OK: fee_accruals_match_trades",
        "OK: fee_reserve_matches_accruals",
        "OK: fee_charges_match_entries",
        "OK: fees_charged_monthly",
        "OK: positions_match_trades",
        "OK: margin_covers_requirement",
        "OK: site_use_within_capacity",
        "OK: jobs_succeed",
        "OK: start_financing_matches_bookings",
        "OK: credits_accounted",
    ]
    assert "1 reconciliation check(s) broken." in output.err


def test_the_command_speaks_the_site_language(ledger, alice_org, alice, settings, capsys):
    settings.LANGUAGE_CODE = "de"
    break_reservations(ledger, alice_org, alice)
    with pytest.raises(CommandError):
        call_command("reconcile")
    broken_line = capsys.readouterr().out.splitlines()[3]
    assert broken_line.startswith("BROKEN: reserved_matches_orders: Alice Compute GmbH")
    assert "95,50" in broken_line and "125,50" in broken_line


def test_call_command_raises_with_return_code_one(ledger, alice_org, alice):
    BuyOrderRowFactory(organisation=alice_org, placed_by=alice, instrument=ledger["order"].instrument)
    with pytest.raises(CommandError) as error:
        call_command("reconcile")
    assert error.value.returncode == 1


# --- the scheduled job ----------------------------------------------------------------------


@pytest.fixture
def operators(settings):
    settings.OPERATOR_EMAILS = ["ops@rechenboerse.test", "Root@Clearing.test"]
    User.objects.create_superuser(email="root@clearing.test", password="correct horse battery")
    User.objects.create(email="former@clearing.test", is_staff=True, is_active=False)
    User.objects.create(email="", is_staff=True)
    # Each address once, case-insensitively (as first written); sorted.
    return ["Root@Clearing.test", "operator@clearing.test", "ops@rechenboerse.test"]


def break_reservations(ledger, organisation, user, amount: str = "30.00"):
    return BuyOrderRowFactory(organisation=organisation, placed_by=user, reserved_amount=D(amount),
                              instrument=ledger["order"].instrument)


def test_the_job_is_on_the_beat_every_fifteen_minutes():
    entry = celery_app.conf.beat_schedule["clearing-reconcile"]
    assert entry["task"] == "clearing.reconcile" == reconcile_task.name
    assert entry["schedule"].minute == {0, 15, 30, 45}


def test_the_job_records_a_clean_run_and_mails_nobody(ledger, operators, mailoutbox):
    result = reconcile_task.apply().get()

    run = ReconciliationRun.objects.get()
    assert result == {"run": run.pk, "ok": True, "broken": []}
    assert run.ok and run.breaches == [] and run.checks == CHECK_NAMES
    assert run.finished_at >= run.started_at
    assert run.alert_sent is None
    assert mailoutbox == []


def test_the_job_mails_the_operators_when_a_check_breaks_and_not_again_while_it_stays_broken(
    ledger, operators, alice_org, alice, mailoutbox
):
    reconcile_task.apply()  # ok
    extra = break_reservations(ledger, alice_org, alice)

    reconcile_task.apply()  # ok -> broken: one mail
    reconcile_task.apply()  # still broken: no mail

    first_broken, still_broken = ReconciliationRun.objects.order_by("id")[1:]
    assert not first_broken.ok and first_broken.broken_checks == ["reserved_matches_orders"]
    assert first_broken.breaches == [{
        "check": "reserved_matches_orders",
        "detail": f"Alice Compute GmbH (#{alice_org.pk}): cash and credits reserved 95.50, open orders and auction "
                  "bids reserve 125.50.",
    }]
    assert first_broken.alert_sent is True and still_broken.alert_sent is None
    [mail] = mailoutbox
    assert sorted(mail.to) == operators  # settings, active staff with an address; each once
    assert mail.subject == "[Rechenbörse] Reconciliation: 1 check broken"
    assert "reserved_matches_orders" in mail.body and "open orders and auction bids reserve 125.50" in mail.body
    assert reverse("admin:clearing_reconciliationrun_changelist") in mail.body

    # Repaired, then broken again: a new ok -> broken transition mails again.
    type(extra).objects.filter(pk=extra.pk).update(status=OrderStatus.CANCELLED)
    reconcile_task.apply()
    break_reservations(ledger, alice_org, alice, "1.00")
    reconcile_task.apply()
    assert len(mailoutbox) == 2
    assert [run.ok for run in ReconciliationRun.objects.order_by("id")] == [True, False, False, True, False]


def test_another_check_breaking_while_one_is_broken_mails_again(ledger, operators, alice_org, alice, mailoutbox):
    break_reservations(ledger, alice_org, alice)
    reconcile_task.apply()
    available = accounts_for(organisation=alice_org)["cash_available"]
    sql("UPDATE clearing_account SET balance = balance + 5 WHERE id = %s", [available.pk])
    reconcile_task.apply()

    assert len(mailoutbox) == 2
    assert "trial_balance" in mailoutbox[1].body


def test_an_alert_that_could_not_be_sent_is_sent_at_the_next_run(ledger, operators, alice_org, alice, mailoutbox,
                                                                 monkeypatch):
    break_reservations(ledger, alice_org, alice)

    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("mail server away")

    with monkeypatch.context() as patch:
        patch.setattr("django.core.mail.EmailMessage.send", refuse)
        reconcile_task.apply()
    reconcile_task.apply()
    reconcile_task.apply()

    assert [run.alert_sent for run in ReconciliationRun.objects.order_by("id")] == [False, True, None]
    assert len(mailoutbox) == 1


def test_the_cash_account_kinds_the_checks_guard():
    # The negative-balance check covers exactly the kinds the database guards.
    guarded = {"cash_available", "cash_reserved", "settlement_pending", "margin", "withdrawal_pending",
               "fee_reserve", "incentive_fund", "rnd_fund", "default_fund", "credits", "credits_reserved",
               "programme_budgets"}
    assert {kind for kind in Account.Kind.values if kind in reconcile_module.GUARDED_KINDS} == guarded


# --- the admin page -------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, operators):
    client.force_login(User.objects.get(email="root@clearing.test"))
    return client


def test_the_admin_page_runs_the_checks_and_lists_the_runs(ledger, admin_client, alice_org, alice, settings):
    reconcile_task.apply()
    settings.LANGUAGE_CODE = "de"  # the page speaks the operator's language, German by default
    break_reservations(ledger, alice_org, alice)

    response = admin_client.get(reverse("admin:clearing_reconciliationrun_changelist"))

    assert response.status_code == 200
    results = {result.check.name: result.ok for result in response.context["check_results"]}
    assert results == dict.fromkeys(CHECK_NAMES, True) | {"reserved_matches_orders": False}
    assert response.context["all_ok"] is False
    page = response.content.decode()
    assert page.count('<tr class="rb-row-broken">') == 1
    assert page.count('<tr class="rb-row-ok">') == len(CHECK_NAMES) - 1
    assert "125,50" in page  # the detail, in German
    assert "Abstimmung" in page
    assert len(response.context["cl"].result_list) == 1  # the one recorded run


def test_the_admin_page_is_for_operators_only(client, alice, ledger):
    client.force_login(alice)
    response = client.get(reverse("admin:clearing_reconciliationrun_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_all_checks_share_one_repeatable_read_snapshot(monkeypatch):
    seen: list[tuple[object, ...]] = []

    def isolation() -> list[str]:
        with connection.cursor() as cursor:
            # transaction_timestamp() is the start of the current transaction:
            # equal in both checks means one transaction, hence one snapshot.
            cursor.execute("SELECT current_setting('transaction_isolation'), "
                           "current_setting('transaction_read_only'), transaction_timestamp()")
            seen.append(cursor.fetchone())
        return []

    monkeypatch.setitem(reconcile_module._REGISTRY, "isolation_a",
                        reconcile_module.Check("isolation_a", "A", isolation))
    monkeypatch.setitem(reconcile_module._REGISTRY, "isolation_b",
                        reconcile_module.Check("isolation_b", "B", isolation))

    assert reconcile() == []
    [first, second] = seen
    assert first[:2] == ("repeatable read", "on")
    assert first == second


def test_reconcile_messages_group_thousands():
    from django.utils import translation

    from clearing.reconcile import _money

    with translation.override("de"):
        assert _money(D("1095.50")) == "1.095,50"
    with translation.override("en"):
        assert _money(D("1095.50")) == "1,095.50"
