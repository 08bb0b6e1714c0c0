"""The one lock order under real concurrency (issue 7): two books traded by
the same members in opposite directions at once, with deposits and a
settlement run going on, never deadlock and leave exact books; an order that
queues behind the instrument lock past ``closes_at`` does not trade.

Each race has a control twin that takes the locks in a different order per
transaction, and PostgreSQL then has to abort transactions for deadlocks.
"""

import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from clearing.fees import fee_held
from clearing.models import Account, DeliveryTicket
from clearing.reconcile import reconcile
from clearing.selectors import account_summary, fee_reserve_balance, house_balances
from clearing.services import (
    LedgerAccounts,
    cash_deposit_book,
    deliveries_settle,
    house_account,
    ledger_accounts,
    ledger_post,
)
from exchange.errors import ExchangeError
from exchange.locks import lock_organisations
from market.models import Instrument, Order, Trade
from market.services import orders as services
from market.services.orders import order_submit
from tests.concurrency import run_at_once
from tests.factories import (
    GpuClassFactory,
    OpenInstrumentFactory,
    SiteCapacityFactory,
    SiteFactory,
    TraderFactory,
    UserFactory,
    delivery_hour,
    deposit,
)

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

D = Decimal
ROUNDS = 6


@pytest.fixture
def two_books():
    """Two members, each a provider and a buyer, and two hours: in book A
    Xenia sells and Yusuf buys, in book B the other way round."""
    gpu_class = GpuClassFactory(code="H100")
    book_a = OpenInstrumentFactory(gpu_class=gpu_class, hour=delivery_hour(1, "14"))
    book_b = OpenInstrumentFactory(gpu_class=gpu_class, hour=delivery_hour(1, "15"))
    members = []
    for state in ("DE-BY", "DE-NW"):
        user = TraderFactory(is_provider=True).user
        organisation = user.membership.organisation
        SiteCapacityFactory(site=SiteFactory(organisation=organisation, state=state), gpu_class=gpu_class,
                            gpus=1000)
        deposit(organisation, "100000.00")
        members.append(user)
    operator = UserFactory(email="operator@locks.test", is_staff=True)
    return book_a, book_b, members, operator


def crossing_flow(two_books, *, threads: int = 8) -> Counter[str]:
    book_a, book_b, (xenia, yusuf), operator = two_books

    def work(i: int) -> str:
        book, seller, buyer = (book_a, xenia, yusuf) if i % 2 else (book_b, yusuf, xenia)
        for n in range(ROUNDS):
            if i == 0 and n % 2:
                # A deposit for both members while their trades run.
                for user in (xenia, yusuf):
                    cash_deposit_book(operator=operator, organisation=user.membership.organisation,
                                      amount=D("1.00"), bank_reference=f"LOCK-{user.pk}-{n}")
            order_submit(user=seller, instrument=book, side="sell", price=D("10.00"), quantity=1)
            order_submit(user=buyer, instrument=book, side="buy", price=D("10.00"), quantity=1)
        return "ok"

    return run_at_once(threads, work)


def test_two_books_crossed_by_the_same_members_with_deposits_never_deadlock(two_books, caplog):
    caplog.set_level("WARNING", logger="market.services.orders")

    outcomes = crossing_flow(two_books)

    assert outcomes == Counter({"ok": 8})
    assert "aborted" not in caplog.text  # not one deadlock retry
    assert Trade.objects.count() == 8 * ROUNDS
    _, _, (xenia, yusuf), _ = two_books
    for user in (xenia, yusuf):
        money = account_summary(organisation=user.membership.organisation)
        # Each member bought and sold 4 x 6 GPU-hours at 10.00: cash out 240.00 + the fees
        # held, 240.00 - the seller's fee steps pending. Exact to the cent, whatever the interleaving.
        organisation = user.membership.organisation
        assert money["cash_reserved"] == D("0.00")
        assert money["settlement_pending"] == D("240.00") + D("240.00") - sum(
            DeliveryTicket.objects.filter(seller=organisation).values_list("seller_fee", flat=True), D("0"))
        # 24 fills at 0.005 or 0.015 per side: what is held is the month's exact fees, rounded once, + VAT.
        accrued = sum(Trade.objects.filter(seller=organisation).values_list("seller_fee", flat=True), D("0")) + sum(
            Trade.objects.filter(buyer=organisation).values_list("buyer_fee", flat=True), D("0"))
        assert fee_reserve_balance(organisation=organisation) == fee_held(accrued)
    assert reconcile() == []


def test_a_settlement_run_during_trading_neither_deadlocks_nor_pays_twice(two_books, caplog):
    caplog.set_level("WARNING", logger="market.services.orders")
    book_a, _book_b, (xenia, yusuf), _operator = two_books
    for _ in range(6):
        order_submit(user=xenia, instrument=book_a, side="sell", price=D("10.00"), quantity=1)
        order_submit(user=yusuf, instrument=book_a, side="buy", price=D("10.00"), quantity=1)
    DeliveryTicket.objects.update(status=DeliveryTicket.Status.CONFIRMED)  # ready to pay, as after confirmation
    settled: list[int] = []

    def work(i: int) -> str:
        if i < 2:
            settled.append(deliveries_settle(now=timezone.now()))
            return "settled"
        crossing_flow_once = two_books[1] if i % 2 else book_a
        seller, buyer = (yusuf, xenia) if i % 2 else (xenia, yusuf)
        for _ in range(ROUNDS):
            order_submit(user=seller, instrument=crossing_flow_once, side="sell", price=D("10.00"), quantity=1)
            order_submit(user=buyer, instrument=crossing_flow_once, side="buy", price=D("10.00"), quantity=1)
        return "traded"

    outcomes = run_at_once(6, work)

    assert outcomes == Counter({"settled": 2, "traded": 4})
    assert sum(settled) == 6  # each of the six confirmed tickets paid exactly once
    assert "aborted" not in caplog.text
    assert reconcile() == []
    # The CCP stands only between the parties of tickets not yet settled.
    open_value = sum(DeliveryTicket.objects.filter(settled_at__isnull=True).values_list("value", flat=True), D("0"))
    assert house_balances()["ccp"] == -open_value


def test_control_twin_without_one_lock_order_postgresql_aborts_deadlocked_transactions(two_books, monkeypatch):
    """The same flow with each transaction locking its organisations one by
    one in the order it meets them (taker first), with a pause between:
    crossing books then wait on each other, and PostgreSQL aborts one."""

    direction = threading.local()

    def unordered(organisation_ids: set[int]) -> LedgerAccounts:
        from accounts.models import Organisation

        for pk in sorted(organisation_ids, reverse=getattr(direction, "reverse", False)):
            Organisation.objects.select_for_update().filter(pk=pk).values_list("pk").first()
            time.sleep(0.05)
        return ledger_accounts(organisation_ids=organisation_ids)

    monkeypatch.setattr(services, "_lock_parties", unordered)
    monkeypatch.setattr(services, "MAX_RETRIES", 0)  # show the deadlock instead of retrying it away

    book_a, book_b, (xenia, yusuf), _operator = two_books
    # Resting sells in both books, so each buy below trades and locks both members.
    for book, seller in ((book_a, xenia), (book_b, yusuf)):
        for _ in range(8):
            order_submit(user=seller, instrument=book, side="sell", price=D("10.00"), quantity=1)

    def work(i: int) -> str:
        book, buyer = (book_a, yusuf) if i % 2 else (book_b, xenia)
        direction.reverse = bool(i % 2)  # book A locks its members in one order, book B in the other
        try:
            for _ in range(4):
                order_submit(user=buyer, instrument=book, side="buy", price=D("10.00"), quantity=1)
        except OperationalError as error:
            return "deadlock" if "deadlock detected" in str(error) else "other"
        return "ok"

    outcomes = run_at_once(4, work)
    assert outcomes["deadlock"] >= 1


def test_an_order_that_queued_past_closes_at_does_not_trade():
    gpu_class = GpuClassFactory(code="H100")
    instrument = OpenInstrumentFactory(gpu_class=gpu_class)
    seller = TraderFactory(is_provider=True).user
    SiteCapacityFactory(site=SiteFactory(organisation=seller.membership.organisation), gpu_class=gpu_class, gpus=10)
    order_submit(user=seller, instrument=instrument, side="sell", price=D("10.00"), quantity=5)
    buyer = TraderFactory().user
    deposit(buyer.membership.organisation, "1000.00")
    closes_at = timezone.now() + timedelta(seconds=1)
    Instrument.objects.filter(pk=instrument.pk).update(closes_at=closes_at)
    instrument.refresh_from_db()
    holding = threading.Event()
    outcome: dict[str, str] = {}

    def hold_the_book() -> None:
        try:
            with transaction.atomic():
                Instrument.objects.select_for_update().get(pk=instrument.pk)
                holding.set()
                time.sleep(max(0.0, (closes_at - timezone.now()).total_seconds()) + 0.3)
        finally:
            connection.close()

    def submit() -> None:
        holding.wait()
        try:
            order_submit(user=buyer, instrument=instrument, side="buy", price=D("10.00"), quantity=5)
            outcome["result"] = "traded"
        except ExchangeError as error:
            outcome["result"] = error.code
        finally:
            connection.close()

    threads = [threading.Thread(target=hold_the_book), threading.Thread(target=submit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # It was submitted before closes_at, but reached the book after it.
    assert outcome["result"] == "instrument_closed"
    assert not Trade.objects.exists()
    assert Order.objects.filter(organisation=buyer.membership.organisation).count() == 0


def test_a_buy_that_waited_for_a_deposit_sees_the_deposited_cash(two_books):
    """The order path reads the accounts after the organisation lock, in a
    statement of its own: one that waited for the lock would see the balance
    from before the holder committed (a statement's snapshot is taken when it
    starts) and refuse a buy that the deposit covers."""
    book_a, _book_b, (xenia, _yusuf), _operator = two_books
    organisation = xenia.membership.organisation
    available = Account.objects.get(organisation=organisation, kind="cash_available")
    bank = house_account(Account.Kind.BANK)
    whole = available.balance
    locked = threading.Event()

    def work(i: int) -> str:
        if i == 0:
            with transaction.atomic():
                lock_organisations([organisation.pk])
                ledger_post(kind="deposit", lines=[(available, D("1000.00")), (bank, D("-1000.00"))],
                            reference="LATE-DEPOSIT")
                locked.set()
                time.sleep(0.5)  # the buy below queues behind this lock meanwhile
            return "deposited"
        locked.wait(timeout=10)
        # 10.00 EUR x (balance / 10 + 10) GPUs and fees: more than the cash before the deposit, less than after.
        quantity = int(whole / D("10.00")) + 10
        order_submit(user=xenia, instrument=book_a, side="buy", price=D("10.00"), quantity=quantity)
        return "bought"

    assert run_at_once(2, work) == Counter({"deposited": 1, "bought": 1})
    assert reconcile() == []
