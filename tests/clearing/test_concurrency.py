"""Real parallel transactions against PostgreSQL.

Each race has a control twin where it matters: the same race run with a
naive read-check-write reservation, which over-reserves. That shows the test
can see the race, so the service's passing is not luck."""

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import OperationalError, transaction

from clearing.models import Account, CashDeposit
from clearing.selectors import (
    account_balance,
    account_summary,
    trial_balance,
    unbalanced_entries,
    unreconciled_accounts,
)
from clearing.services import accounts_for, cash_deposit_book, cash_reserve, house_account, ledger_post
from clearing.services import ledger as services
from exchange.errors import ExchangeError
from tests.clearing.conftest import make_organisation, make_user
from tests.concurrency import BalanceWatcher, run_at_once

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

D = Decimal
THREADS = 20
FUNDS = D("1000.00")
TENTH = D("100.00")


@pytest.fixture
def funded():
    operator = make_user("operator@race.test", staff=True)
    organisation = make_organisation("Race Compute GmbH")
    cash_deposit_book(operator=operator, organisation=organisation, amount=FUNDS, bank_reference="RACE-1")
    return organisation


def test_twenty_simultaneous_reservations_of_a_tenth_each_exactly_ten_succeed(funded):
    def reserve(i: int) -> str:
        try:
            with transaction.atomic(durable=True):  # as the order service will
                cash_reserve(organisation=funded, amount=TENTH, reference=f"order:{i}")
        except ExchangeError as error:
            return error.code
        return "reserved"

    available = accounts_for(organisation=funded)["cash_available"]
    with BalanceWatcher(available.pk) as watcher:
        outcomes = run_at_once(THREADS, reserve)

    assert outcomes == Counter({"reserved": 10, "insufficient_funds": 10})
    summary = account_summary(organisation=funded)
    assert summary["cash_available"] == D("0.00")
    assert summary["cash_reserved"] == FUNDS
    assert watcher.seen and min(watcher.seen) >= 0
    assert trial_balance() == 0
    assert not unreconciled_accounts().exists()
    assert not unbalanced_entries().exists()


def naive_reserve(organisation, amount: Decimal) -> bool:
    """The bug the service avoids: read the balance, check it, write the
    result back. The sleep widens the window between read and write so the
    race shows on every run, not just on an unlucky one."""
    with transaction.atomic(durable=True):
        available = Account.objects.get(organisation=organisation, kind="cash_available")
        reserved = Account.objects.get(organisation=organisation, kind="cash_reserved")
        if available.balance < amount:
            return False
        time.sleep(0.05)
        Account.objects.filter(pk=available.pk).update(balance=available.balance - amount)
        Account.objects.filter(pk=reserved.pk).update(balance=reserved.balance + amount)
    return True


def test_control_twin_a_naive_read_check_write_over_reserves(funded):
    outcomes = run_at_once(THREADS, lambda i: "reserved" if naive_reserve(funded, TENTH) else "refused")

    # More orders believe they hold a tenth of the money than there are tenths:
    # the race is real and visible to this test.
    assert outcomes["reserved"] > 10
    summary = account_summary(organisation=funded)
    promised = outcomes["reserved"] * TENTH
    assert promised > FUNDS
    # ...and the books no longer show what was promised: lost updates.
    assert summary["cash_reserved"] < promised


def test_concurrent_first_use_creates_each_account_once(funded):
    newcomer = make_organisation("Newcomer UG (haftungsbeschränkt)")

    def open_accounts(i: int) -> str:
        with transaction.atomic(durable=True):
            accounts_for(organisation=newcomer)
            house_account("incentive_fund")
        return "ok"

    assert run_at_once(THREADS, open_accounts) == Counter({"ok": THREADS})
    assert Account.objects.filter(organisation=newcomer).count() == 4
    assert Account.objects.filter(organisation__isnull=True, kind="incentive_fund").count() == 1


def test_two_operators_booking_the_same_transfer_at_once_book_it_once(funded):
    operator = make_user("second-operator@race.test", staff=True)
    newcomer = make_organisation("Doppelbuchung GmbH")

    def book(i: int) -> str:
        try:
            cash_deposit_book(operator=operator, organisation=newcomer, amount=D("250.00"),
                              bank_reference="SEPA-SAME")
        except ExchangeError as error:
            return f"{error.code}:{','.join(error.fields)}"
        return "booked"

    assert run_at_once(8, book) == Counter({"booked": 1, "invalid:bank_reference": 7})
    assert CashDeposit.objects.filter(bank_reference="SEPA-SAME").count() == 1
    assert account_summary(organisation=newcomer)["cash_available"] == D("250.00")
    assert trial_balance() == 0


def crossing_transfers(funded, *, threads: int = THREADS) -> tuple[Counter[str], list[Account]]:
    """Half the threads post A -> B, half B -> A, each entry touching both
    member rows (and the CCP), listed in the order of the transfer."""
    other = make_organisation("Gegenseite GmbH")
    operator = make_user("third-operator@race.test", staff=True)
    cash_deposit_book(operator=operator, organisation=other, amount=FUNDS, bank_reference="RACE-2")
    a = accounts_for(organisation=funded)["cash_available"]
    b = accounts_for(organisation=other)["cash_available"]
    ccp = house_account("ccp")
    # PostgreSQL takes a second (deadlock_timeout) to find each deadlock: one
    # is proof enough, so the others stop after it.
    deadlocked = threading.Event()

    def transfer(i: int) -> str:
        for round_ in range(10):
            if deadlocked.is_set():
                return "stopped"
            first, second = (a, b) if (i + round_) % 2 else (b, a)
            try:
                with transaction.atomic(durable=True):
                    ledger_post(kind="correction",
                                lines=[(first, D("-1.00")), (ccp, D("0.50")), (second, D("0.50"))])
            except OperationalError as error:
                if "deadlock detected" not in str(error):
                    raise
                deadlocked.set()
                return "deadlock"
        return "ok"

    return run_at_once(threads, transfer), [a, b, ccp]


def test_crossing_transfers_do_not_deadlock(funded):
    outcomes, accounts = crossing_transfers(funded)

    assert outcomes == Counter({"ok": THREADS})
    for account in accounts:
        account.refresh_from_db()
    assert sum(account_balance(account) for account in accounts) == 2 * FUNDS
    assert trial_balance() == 0
    assert not unreconciled_accounts().exists()


def test_control_twin_crossing_transfers_deadlock_when_rows_are_locked_in_line_order(funded, monkeypatch):
    # The same race with ledger_post taking the row locks in the order the
    # lines are listed: PostgreSQL has to abort transactions to break deadlocks.
    monkeypatch.setattr(services, "_in_lock_order", list)

    # Fewer threads than the real test: every thread caught in a deadlock
    # tangle waits out deadlock_timeout, and a handful deadlock just as surely.
    outcomes, _accounts = crossing_transfers(funded, threads=6)

    assert outcomes["deadlock"] >= 1
    assert set(outcomes) <= {"ok", "deadlock", "stopped"}
    assert trial_balance() == 0  # an aborted transaction leaves nothing behind either
