"""House balances are derived from the journal lines (issue 7 item 2, "no
hot rows"): the selectors, the trial balance and the operators' account list
read the sum of a house account's lines, never its ``balance`` column, which
the ledger no longer maintains (it stays 0.00)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import User
from clearing.models import Account
from clearing.selectors import account_balance, house_balances, trial_balance, unreconciled_accounts
from clearing.services import accounts_for, house_account
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from tests.factories import spot_trade
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db

D = Decimal


def zero_house_columns() -> None:
    """What the house columns hold once the ledger no longer writes them,
    whichever ledger this database ran."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clearing_account SET balance = 0 WHERE organisation_id IS NULL")


@pytest.fixture
def traded(db):
    """Four members with 10,000.00 each; Alice sold 4 H100 to Charlie at 12.30
    (value 49.20, fees 0.06 + 0.02 = 0.08), and the month's fees were charged:
    VAT 0.01 (Charlie's), incentive 0.02, R&D 0.01, revenue keeps 0.05."""
    world = make_world()
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    month = month_of(trade.executed_at)
    fees_charge_month(month=month, now=month_bounds(month)[1])
    zero_house_columns()
    return world


def test_house_balances_are_the_sums_of_the_lines(traded):
    assert house_balances() == {
        "bank": D("-40000.00"),
        "ccp": D("-49.20"),
        "fee_revenue": D("0.05"),
        "incentive_fund": D("0.02"),
        "rnd_fund": D("0.01"),
        "vat_payable": D("0.01"),
        "start_financing": D("0.00"),
        "programme_budgets": D("0.00"),
    }


def test_house_balances_of_some_kinds_only(traded):
    assert house_balances(["ccp", "rnd_fund"]) == {"ccp": D("-49.20"), "rnd_fund": D("0.01")}


def test_house_kinds_without_lines_read_zero(db):
    assert house_balances() == dict.fromkeys(("bank", "ccp", "fee_revenue", "incentive_fund", "rnd_fund",
                                              "vat_payable", "start_financing", "programme_budgets"),
                                                 D("0.00"))


def test_account_balance_reads_the_column_for_members_and_the_lines_for_the_house(traded):
    charlie = accounts_for(organisation=traded.org_c)["settlement_pending"]
    ccp = house_account("ccp")
    assert Account.objects.get(pk=ccp.pk).balance == D("0.00")  # the column
    assert account_balance(ccp) == D("-49.20")
    assert account_balance(Account.objects.get(pk=charlie.pk)) == D("49.20")


def test_the_trial_balance_adds_member_columns_and_house_lines(traded):
    assert trial_balance() == D("0.00")
    # A house column written by someone is not part of the books ...
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clearing_account SET balance = 7 WHERE organisation_id IS NULL AND kind = 'ccp'")
    assert trial_balance() == D("0.00")
    # ... but it is an unreconciled account.
    assert [account.kind for account in unreconciled_accounts()] == ["ccp"]


def test_a_member_column_that_moved_without_lines_breaks_the_trial_balance(traded):
    available = accounts_for(organisation=traded.org_a)["cash_available"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clearing_account SET balance = balance - 3 WHERE id = %s", [available.pk])
    assert trial_balance() == D("-3.00")
    assert list(unreconciled_accounts()) == [available]


def test_the_account_admin_shows_house_balances_from_the_lines(traded, client):
    operator = User.objects.create_superuser(email="root@house.test", password="correct horse battery")
    client.force_login(operator)

    response = client.get(reverse("admin:clearing_account_changelist"), {"kind": "ccp"})

    assert response.status_code == 200
    [ccp] = response.context["cl"].result_list
    assert ccp.current_balance == D("-49.20")
    assert "-49,20" in response.content.decode()  # German, the default language
    detail = client.get(reverse("admin:clearing_account_change", args=[ccp.pk]))
    assert "-49,20" in detail.content.decode()
