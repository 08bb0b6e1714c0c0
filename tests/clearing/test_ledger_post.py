"""ledger_post: every entry balances, and a refused entry leaves nothing."""

import re
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clearing.models import Account, JournalEntry, JournalLine
from clearing.selectors import (
    house_balances,
    ledger_balance_from_lines,
    trial_balance,
    unbalanced_entries,
    unreconciled_accounts,
)
from clearing.services import accounts_for, house_account, ledger_post
from exchange.errors import ExchangeError
from tests.clearing.conftest import deposit

pytestmark = pytest.mark.django_db

D = Decimal


def books() -> tuple[int, int, dict[int, Decimal]]:
    """Everything ledger_post could have written: counts and every balance."""
    return (
        JournalEntry.objects.count(),
        JournalLine.objects.count(),
        dict(Account.objects.values_list("pk", "balance")),
    )


def test_a_posted_entry_balances_and_moves_each_balance(alice_org, operator):
    deposit(operator, alice_org, "500.00")
    accounts = accounts_for(organisation=alice_org)
    fees, ccp = house_account(Account.Kind.FEE_REVENUE), house_account(Account.Kind.CCP)

    entry = ledger_post(
        kind=JournalEntry.Kind.FEE,
        lines=[(accounts["cash_available"], D("-12.34")), (fees, D("2.34")), (ccp, D("10.00"))],
        reference="trade:7",
        memo="fee and value",
        actor=operator,
    )

    lines = list(entry.lines.order_by("id").values_list("account__kind", "amount"))
    assert lines == [("cash_available", D("-12.34")), ("fee_revenue", D("2.34")), ("ccp", D("10.00"))]
    assert sum(amount for _kind, amount in lines) == 0
    assert (entry.kind, entry.reference, entry.memo, entry.actor) == ("fee", "trade:7", "fee and value", operator)
    accounts["cash_available"].refresh_from_db()
    assert accounts["cash_available"].balance == D("487.66") == ledger_balance_from_lines(accounts["cash_available"])
    # House accounts keep no running balance (no hot row): their lines are the balance.
    assert house_balances()["fee_revenue"] == D("2.34")
    assert house_balances()["ccp"] == D("10.00")
    fees.refresh_from_db()
    assert fees.balance == D("0.00")
    assert trial_balance() == 0
    assert not unbalanced_entries().exists()
    assert not unreconciled_accounts().exists()


@pytest.mark.parametrize(
    "amounts",
    [
        [D("10.00"), D("-9.99")],  # does not balance
        [D("10.001"), D("-10.001")],  # balances, but below the cent
        [D("0.005"), D("-0.005")],
        [D("10.00"), D("0.00"), D("-10.00")],  # a zero line
        [D("NaN"), D("NaN")],
        [D("1e16"), D("-1e16")],  # beyond numeric(18, 2)
        [10, -10],  # not Decimal
        [10.0, -10.0],
        [D("10.00")],  # one line
        [],
    ],
)
def test_an_unbalanced_sub_cent_or_malformed_entry_is_refused_with_nothing_written(alice_org, amounts):
    accounts = accounts_for(organisation=alice_org)
    bank = house_account(Account.Kind.BANK)
    targets = [accounts["cash_available"], bank, accounts["margin"]]
    before = books()

    with pytest.raises(ExchangeError) as raised:
        ledger_post(kind="deposit", lines=list(zip(targets, amounts, strict=False)))

    assert raised.value.code == "invalid"
    assert books() == before


def test_an_unknown_kind_or_an_unsaved_account_is_refused(alice_org):
    available = accounts_for(organisation=alice_org)["cash_available"]
    bank = house_account(Account.Kind.BANK)
    before = books()

    with pytest.raises(ExchangeError) as unknown:
        ledger_post(kind="gift", lines=[(available, D("1.00")), (bank, D("-1.00"))])
    with pytest.raises(ExchangeError) as unsaved:
        ledger_post(kind="deposit", lines=[(Account(kind="ccp"), D("1.00")), (bank, D("-1.00"))])

    assert unknown.value.code == unsaved.value.code == "invalid"
    assert books() == before


def test_an_overdraft_of_a_guarded_account_is_refused_with_nothing_written(alice_org, operator):
    deposit(operator, alice_org, "100.00")
    accounts = accounts_for(organisation=alice_org)
    ccp = house_account(Account.Kind.CCP)
    before = books()

    # The CCP line comes first and would succeed on its own: the savepoint
    # must undo it when the member's line is refused.
    with pytest.raises(ExchangeError) as raised:
        ledger_post(kind="trade", lines=[(ccp, D("100.01")), (accounts["cash_available"], D("-100.01"))])

    assert raised.value.code == "insufficient_funds"
    assert raised.value.status == 409
    assert books() == before


@pytest.mark.parametrize("kind", ["cash_reserved", "settlement_pending", "margin"])
def test_every_member_account_is_guarded(alice_org, kind):
    account = accounts_for(organisation=alice_org)[kind]
    with pytest.raises(ExchangeError) as raised:
        ledger_post(kind="correction", lines=[(account, D("-0.01")), (house_account("ccp"), D("0.01"))])
    assert raised.value.code == "insufficient_funds"


@pytest.mark.parametrize("kind", ["incentive_fund", "rnd_fund"])
def test_the_funds_cannot_grant_more_than_they_hold(kind):
    fund = house_account(kind)
    ledger_post(kind="incentive", lines=[(house_account("fee_revenue"), D("-5.00")), (fund, D("5.00"))])
    with pytest.raises(ExchangeError) as raised:
        ledger_post(kind="incentive", lines=[(fund, D("-5.01")), (house_account("fee_revenue"), D("5.01"))])
    assert raised.value.code == "insufficient_funds"
    assert house_balances()[kind] == D("5.00")
    # Exactly what it holds may be paid out.
    ledger_post(kind="incentive", lines=[(fund, D("-5.00")), (house_account("fee_revenue"), D("5.00"))])
    assert house_balances()[kind] == D("0.00")


def test_unguarded_house_accounts_may_go_negative():
    # The bank carries minus the money it holds; the CCP swings both ways.
    ledger_post(kind="correction", lines=[(house_account("ccp"), D("-7.00")), (house_account("bank"), D("7.00"))])
    assert house_balances()["ccp"] == D("-7.00")
    assert trial_balance() == 0


def test_a_caller_that_catches_the_refusal_keeps_its_own_transaction_and_nothing_of_the_entry(alice_org, operator):
    deposit(operator, alice_org, "10.00")
    available = accounts_for(organisation=alice_org)["cash_available"]
    ccp = house_account("ccp")
    before = books()

    with transaction.atomic():
        with pytest.raises(ExchangeError):
            ledger_post(kind="trade", lines=[(ccp, D("11.00")), (available, D("-11.00"))])
        # The outer transaction is still usable and sees nothing of the entry.
        assert books() == before
        ledger_post(kind="trade", lines=[(ccp, D("4.00")), (available, D("-4.00"))])

    available.refresh_from_db()
    assert available.balance == D("6.00")
    assert trial_balance() == 0


def test_two_lines_on_one_account_net_out(alice_org, operator):
    deposit(operator, alice_org, "3.00")
    available = accounts_for(organisation=alice_org)["cash_available"]
    ccp = house_account("ccp")

    # Net -2.00 on cash_available: allowed although one line alone is -5.00.
    ledger_post(kind="correction", lines=[(available, D("-5.00")), (available, D("3.00")), (ccp, D("2.00"))])

    available.refresh_from_db()
    assert available.balance == D("1.00") == ledger_balance_from_lines(available)


def test_balances_are_updated_in_account_order_whatever_the_line_order(alice_org, charlie_org, operator):
    deposit(operator, alice_org, "50.00")
    accounts = accounts_for(organisation=alice_org)
    others = accounts_for(organisation=charlie_org)
    targets = sorted(
        [accounts["cash_available"], accounts["cash_reserved"], others["cash_available"], others["cash_reserved"]],
        key=lambda account: -account.pk,
    )
    amounts = [D("1.00"), D("2.00"), D("3.00"), D("-6.00")]  # the last one is cash_available (lowest pk)
    assert targets[-1] == accounts["cash_available"]

    with CaptureQueriesContext(connection) as queries:
        ledger_post(kind="correction", lines=list(zip(targets, amounts, strict=True)))

    updated = [int(match.group(1)) for query in queries.captured_queries
               if query["sql"].startswith('UPDATE "clearing_account"')
               for match in [re.search(r'"clearing_account"\."id" = (\d+)', query["sql"])] if match]
    assert updated == sorted(account.pk for account in targets)


def test_accounts_are_created_once_per_member_and_kind(alice_org, charlie_org):
    first = accounts_for(organisation=alice_org)
    again = accounts_for(organisation=alice_org)
    assert set(first) == {"cash_available", "cash_reserved", "settlement_pending", "margin"}
    assert {k: a.pk for k, a in first.items()} == {k: a.pk for k, a in again.items()}
    assert accounts_for(organisation=charlie_org)["cash_available"].pk != first["cash_available"].pk
    assert house_account("bank").pk == house_account("bank").pk
    assert Account.objects.filter(organisation__isnull=True, kind="bank").count() == 1
    with pytest.raises(ValueError):
        house_account("cash_available")


class _Rollback(Exception):
    pass


def test_reconciliation_finds_a_balance_that_differs_from_its_lines(alice_org, operator):
    deposit(operator, alice_org, "10.00")
    available = accounts_for(organisation=alice_org)["cash_available"]
    assert not unreconciled_accounts().exists()

    with pytest.raises(_Rollback), transaction.atomic():
        # What a bug bypassing ledger_post would do.
        Account.objects.filter(pk=available.pk).update(balance=D("11.00"))
        assert list(unreconciled_accounts()) == [available]
        raise _Rollback


def test_reconciliation_finds_an_entry_that_does_not_balance(alice_org):
    available = accounts_for(organisation=alice_org)["cash_available"]

    # Rolled back before commit, where PostgreSQL's own check would refuse it.
    with pytest.raises(_Rollback), transaction.atomic():
        entry = JournalEntry.objects.create(kind="correction")
        JournalLine.objects.create(entry=entry, account=available, amount=D("5.00"))
        assert list(unbalanced_entries()) == [entry]
        raise _Rollback
