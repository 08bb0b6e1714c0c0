"""Credits under concurrent orders (issue 12 on the ground of issue 7): twenty
buys of one member at once, in twenty instruments so that only the
organisation lock and the guarded ledger stand between them, with credits
for four and cash for six: exactly ten are accepted, credits first, and
neither credits nor cash ever go below zero."""

from collections import Counter

import pytest

from clearing.models import Account, JournalEntry
from clearing.reconcile import reconcile
from clearing.services import ledger_post
from clearing.services.ledger import accounts_for, house_account
from tests.concurrency import BalanceWatcher
from tests.incentives.test_credit_spending import grant_credits
from tests.market.orders_world import D, books_balance
from tests.market.test_orders_concurrency import RESERVATION, buy_all, cash_race  # noqa: F401 (fixture)

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]


def test_twenty_buys_with_credits_for_four_and_cash_for_six_exactly_ten_are_accepted(cash_race):  # noqa: F811
    trader, organisation, instruments = cash_race  # cash for 10 buys
    grant_credits(organisation, str(4 * RESERVATION))
    # Cash for 6 buys: an operator's correction takes 4 buys' worth back out.
    ledger_post(kind=JournalEntry.Kind.CORRECTION, reference="test-less-cash", lines=[
        (accounts_for(organisation=organisation)[Account.Kind.CASH_AVAILABLE], -4 * RESERVATION),
        (house_account(Account.Kind.BANK), 4 * RESERVATION)])
    credits = Account.objects.get(organisation=organisation, kind=Account.Kind.CREDITS)

    with BalanceWatcher(credits.pk) as watcher:
        outcomes = buy_all(trader, instruments)

    assert outcomes == Counter({"accepted": 10, "insufficient_funds": 10})
    balances = dict(Account.objects.filter(organisation=organisation).values_list("kind", "balance"))
    assert balances["credits"] == D("0.00") and balances["credits_reserved"] == 4 * RESERVATION
    assert balances["cash_available"] == D("0.00") and balances["cash_reserved"] == 6 * RESERVATION
    assert watcher.seen and min(watcher.seen) >= 0
    assert reconcile() == []
    books_balance()
