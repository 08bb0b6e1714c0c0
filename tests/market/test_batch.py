"""A batch is one transaction (market.services.orders.orders_submit_batch):
it must enter its orders exactly as the same orders sent one by one would,
refuse each bad order on its own without a trace, and keep the lock order
under concurrent load."""

import itertools
from collections import Counter

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing.models import Account
from clearing.reconcile import reconcile
from market.models import Instrument, Order, Trade
from market.services import orders as services
from market.services.orders import order_submit, orders_submit_batch
from tests.concurrency import run_at_once
from tests.factories import (
    GpuClassFactory,
    OpenInstrumentFactory,
    SiteCapacityFactory,
    SiteFactory,
    TraderFactory,
    delivery_hour,
    deposit,
)
from tests.market.orders_world import D, books_balance, held, make_world, money

# --- the same orders, batched or one by one ----------------------------------------------------


_hours = itertools.count()


def _pair_of_books(world) -> tuple[Instrument, Instrument]:  # type: ignore[no-untyped-def]
    """Two new delivery hours of the world's class and zone (from the day after tomorrow on)."""
    def book() -> Instrument:
        n = next(_hours)
        return OpenInstrumentFactory(gpu_class=world.instrument.gpu_class, zone=world.instrument.zone,
                                     hour=delivery_hour(2 + n // 24, f"{n % 24:02d}"))
    return book(), book()


def _resting(world, books: tuple[Instrument, Instrument]) -> None:  # type: ignore[no-untyped-def]
    """The same resting orders of Alice and Dora in both books of a pair."""
    for book in books:
        order_submit(user=world.alice, instrument=book, side="sell", price=D("12.00"), quantity=5)
        order_submit(user=world.dora, instrument=book, side="sell", price=D("12.10"), quantity=5)
        order_submit(user=world.dora, instrument=book, side="buy", price=D("11.00"), quantity=3)


def _charlie_orders(books: tuple[Instrument, Instrument], client_order_id: str) -> list[dict]:
    first, second = books
    return [
        {"instrument": first, "side": "buy", "price": D("12.10"), "quantity": 7},   # 5 @ 12.00, 2 @ 12.10
        {"instrument": first, "side": "buy", "price": D("12.05"), "quantity": 1},   # rests
        {"instrument": first, "side": "buy", "price": D("9.00"), "quantity": 100_000},  # more than the cash
        {"instrument": second, "side": "buy", "price": D("12.00"), "quantity": 2, "time_in_force": "IOC"},
        {"instrument": first, "side": "buy", "price": D("12.001"), "quantity": 1},  # off the tick
        {"instrument": second, "side": "buy", "type": "market", "quantity": 4},      # 3 @ 12.00, 1 @ 12.10
        {"instrument": first, "side": "sell", "price": D("11.00"), "quantity": 1},   # resells 1 of the 7: to Dora
        {"instrument": second, "side": "sell", "price": D("13.00"), "quantity": 9},  # 4 bought, no sites
        {"instrument": second, "side": "buy", "price": D("12.10"), "quantity": 3, "client_order_id": client_order_id},
        {"instrument": second, "side": "buy", "price": D("12.10"), "quantity": 3, "client_order_id": client_order_id},
    ]


def _outcome(result) -> tuple:  # type: ignore[no-untyped-def]
    if isinstance(result, services.SubmitResult):
        order = result.order
        return ("ok", result.created, order.side, order.status, order.reason, order.price, order.quantity,
                order.filled_quantity, order.reserved_amount)
    return ("refused", result.code)


def _trades(book: Instrument) -> list[tuple]:
    return list(Trade.objects.filter(instrument=book).order_by("id").values_list(
        "buyer_id", "seller_id", "price", "quantity", "aggressor", "buyer_fee", "seller_fee"))


def _cash(world) -> dict:  # type: ignore[no-untyped-def]
    """Per organisation: cash reserved, and everything it holds (available +
    pending + fee reserve). The fee reserve moves in cents rounded on the
    month's running total (clearing.fees), so the second run's steps may
    differ by a cent from the first's; what the member holds does not."""
    cash = {}
    for organisation in (world.org_a, world.org_c, world.org_d):
        summary = money(organisation)
        cash[organisation.pk] = (summary["cash_reserved"], summary["cash_available"] + summary["settlement_pending"]
                                 + held(organisation))
    return cash


def _delta(after: dict, before: dict) -> dict:
    return {org: tuple(a - b for a, b in zip(after[org], before[org], strict=True)) for org in after}


@pytest.mark.django_db
def test_a_batch_enters_its_orders_exactly_as_one_by_one_would(checked_commitments):
    world = make_world()
    batched, single = _pair_of_books(world), _pair_of_books(world)
    _resting(world, batched)
    _resting(world, single)

    before = _cash(world)
    batch_results = orders_submit_batch(user=world.charlie, orders=_charlie_orders(batched, "batched"))
    middle = _cash(world)
    single_results = []
    for kwargs in _charlie_orders(single, "single"):
        try:
            single_results.append(order_submit(user=world.charlie, **kwargs))
        except services.ExchangeError as error:
            single_results.append(error)
    after = _cash(world)

    assert [_outcome(r) for r in batch_results] == [_outcome(r) for r in single_results]
    outcomes = [_outcome(r)[0:2] for r in batch_results]
    assert outcomes == [("ok", True), ("ok", True), ("refused", "insufficient_funds"), ("ok", True),
                        ("refused", "tick_size"), ("ok", True), ("ok", True), ("refused", "insufficient_capacity"),
                        ("ok", True), ("ok", False)]
    for batch_book, single_book in zip(batched, single, strict=True):
        assert _trades(batch_book) == _trades(single_book)
    assert _delta(middle, before) == _delta(after, middle)
    # The refused orders left nothing: 2 + 2 + 1 + 1 orders per pair of books (resting, and Charlie's 4).
    assert Order.objects.filter(instrument__in=batched).count() == Order.objects.filter(instrument__in=single).count()
    books_balance()
    assert reconcile() == []
    assert checked_commitments["checked"] > 0
    assert checked_commitments["_seller_sites"] > 0 and checked_commitments["_resale_sources"] > 0


settings_fast = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

order_strategy = st.fixed_dictionaries({
    "book": st.integers(0, 1),
    "side": st.sampled_from(["buy", "sell"]),
    "price": st.sampled_from([D("11.90"), D("12.00"), D("12.05"), D("12.10"), D("12.20")]),
    "quantity": st.integers(1, 6),
    "time_in_force": st.sampled_from(["GTC", "GTC", "IOC", "FOK"]),
})


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    return make_world(cash=D("1000000.00"))


@pytest.mark.django_db
@settings_fast
@given(specs=st.lists(order_strategy, min_size=1, max_size=12))
def test_any_batch_equals_the_same_orders_one_by_one(world, checked_commitments, specs):
    """Bob (Alice's organisation: a provider with 100 H100, and Alice's resting
    sells are its own) sends any batch; the same orders one by one in a twin
    pair of books give the same orders, trades and money."""
    batched, single = _pair_of_books(world), _pair_of_books(world)
    _resting(world, batched)
    _resting(world, single)

    def orders(books: tuple[Instrument, Instrument]) -> list[dict]:
        return [{"instrument": books[spec["book"]], "side": spec["side"], "price": spec["price"],
                 "quantity": spec["quantity"], "time_in_force": spec["time_in_force"]} for spec in specs]

    before = _cash(world)
    batch_results = orders_submit_batch(user=world.bob, orders=orders(batched))
    middle = _cash(world)
    single_results = []
    for kwargs in orders(single):
        try:
            single_results.append(order_submit(user=world.bob, **kwargs))
        except services.ExchangeError as error:
            single_results.append(error)
    after = _cash(world)

    assert [_outcome(r) for r in batch_results] == [_outcome(r) for r in single_results]
    for batch_book, single_book in zip(batched, single, strict=True):
        assert _trades(batch_book) == _trades(single_book)
    assert _delta(middle, before) == _delta(after, middle)
    books_balance()


# --- concurrency -------------------------------------------------------------------------------

ROUNDS = 4


@pytest.fixture
def crowded():
    """Three hours of H100 and four members who all buy and sell."""
    gpu_class = GpuClassFactory(code="H100")
    books = [OpenInstrumentFactory(gpu_class=gpu_class, hour=delivery_hour(1, hour)) for hour in ("14", "15", "16")]
    members = []
    for state in ("DE-BY", "DE-NW", "DE-BE", "DE-HE"):
        user = TraderFactory(is_provider=True).user
        organisation = user.membership.organisation
        SiteCapacityFactory(site=SiteFactory(organisation=organisation, state=state), gpu_class=gpu_class,
                            gpus=1000)
        deposit(organisation, "100000.00")
        members.append(user)
    return books, members


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_batches_and_single_orders_of_four_members_at_once_never_deadlock(crowded, caplog):
    caplog.set_level("WARNING", logger="market.services.orders")
    books, members = crowded

    def work(i: int) -> str:
        user = members[i % len(members)]
        for n in range(ROUNDS):
            if i % 2:
                orders = [{"instrument": books[(k + n) % len(books)], "side": "buy" if (k + i) % 2 else "sell",
                           "price": D("10.00") + D("0.10") * (k % 3), "quantity": 1} for k in range(12)]
                orders_submit_batch(user=user, orders=orders)
            else:
                for book in books:
                    order_submit(user=user, instrument=book, side="sell" if n % 2 else "buy",
                                 price=D("10.10"), quantity=1)
        return "ok"

    outcomes = run_at_once(8, work)

    assert outcomes == Counter({"ok": 8})
    assert "aborted" not in caplog.text  # not one deadlock retry
    assert Trade.objects.exists()
    for user in members:
        organisation = user.membership.organisation
        reserved = Order.objects.filter(organisation=organisation, status__in=("open", "partially_filled")).aggregate(
            total=Sum("reserved_amount"))["total"] or D("0.00")
        assert money(organisation)["cash_reserved"] == reserved
        assert Account.objects.get(organisation=organisation, kind="cash_available").balance >= 0
    assert reconcile() == []


# --- every row, batched or one by one (the batch reads its books once: market.services.orders._BatchBook) -------


def _rows(book: Instrument) -> dict:
    """Everything the orders wrote in one book, with order and trade ids
    replaced by their rank in the book (the twin books draw other ids)."""
    from clearing.models import DeliveryTicket
    from market.models import OrderEvent, Position

    orders = {pk: rank for rank, pk in enumerate(Order.objects.filter(instrument=book).order_by("id")
                                                 .values_list("id", flat=True))}
    trades = {pk: rank for rank, pk in enumerate(Trade.objects.filter(instrument=book).order_by("id")
                                                 .values_list("id", flat=True))}
    return {
        "orders": list(Order.objects.filter(instrument=book).order_by("id").values_list(
            "organisation_id", "side", "type", "status", "reason", "price", "quantity", "filled_quantity",
            "reserved_amount", "time_in_force", "maker_rate", "taker_rate")),
        "trades": [(orders[buy], orders[sell], *rest) for buy, sell, *rest in Trade.objects.filter(
            instrument=book).order_by("id").values_list("buy_order_id", "sell_order_id", "buyer_id", "seller_id",
                                                          "price", "quantity", "aggressor", "buyer_fee",
                                                          "seller_fee")],
        "events": [(orders[order], None if trade is None else trades[trade], *rest)
                   for order, trade, *rest in OrderEvent.objects.filter(instrument=book).order_by("id").values_list(
                       "order_id", "trade_id", "organisation_id", "kind", "side", "price", "quantity",
                       "filled_quantity", "status", "reason", "fill_price", "fill_quantity")],
        "tickets": [(trades[trade], *rest) for trade, *rest in DeliveryTicket.objects.filter(
            trade__instrument=book).order_by("id").values_list("trade_id", "seller_id", "buyer_id", "seller_site_id",
                                                                "gpus", "value")],
        "positions": sorted(Position.objects.filter(instrument=book).values_list(
            "organisation_id", "quantity", "bought", "sold", "buy_cost", "sell_proceeds")),
    }


@pytest.fixture
def checked_commitments(monkeypatch):  # type: ignore[no-untyped-def]
    """Every answer of a batch's HourCommitments and AllocationMemo (read
    once, then kept up to date by the batch's writes) checked against the
    database's at that moment."""
    from clearing.services import allocation
    from market.services.capacity import HourCommitments, hour_commitments

    kept = HourCommitments.get
    answers = Counter()

    def get(self, **key):  # type: ignore[no-untyped-def]
        answer = kept(self, **key)
        assert sorted(answer, key=lambda row: row.instrument_id) == sorted(
            hour_commitments(**key), key=lambda row: row.instrument_id)
        answers["checked"] += 1
        return answer

    monkeypatch.setattr(HourCommitments, "get", get)

    def checked(name: str, read: str):  # type: ignore[no-untyped-def]
        kept = getattr(allocation, name)

        def answer(trade, memo=None):  # type: ignore[no-untyped-def]
            found = kept(trade, memo)
            if memo is not None:
                assert found == getattr(allocation, read)(trade)
                answers[name] += 1
            return found
        monkeypatch.setattr(allocation, name, answer)

    checked("_seller_sites", "_read_seller_sites")
    checked("_resale_sources", "_read_resale_sources")
    return answers


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(order_strategy, min_size=1, max_size=16),
       who=st.sampled_from(["bob", "charlie", "dora"]))
def test_any_batch_writes_the_same_rows_as_one_by_one(world, checked_commitments, specs, who):
    """Members of three organisations each send the batch's orders (Bob's
    against his own organisation's resting sells, Dora's against hers): the
    orders, trades, order events, delivery tickets and positions a batch
    writes are those the same orders one by one write in a twin pair of
    books, row for row. Not the priority numbers: a refused order of a
    batch has drawn one, so later ones may skip a number (their order in
    the book is the same: the rows are compared in id order). The batch's
    capacity commitments equal the database's whenever they are asked."""
    batched, single = _pair_of_books(world), _pair_of_books(world)
    _resting(world, batched)
    _resting(world, single)
    user = getattr(world, who)

    def orders(books: tuple[Instrument, Instrument]) -> list[dict]:
        return [{"instrument": books[spec["book"]], "side": spec["side"], "price": spec["price"],
                 "quantity": spec["quantity"], "time_in_force": spec["time_in_force"]} for spec in specs]

    orders_submit_batch(user=user, orders=orders(batched))
    for kwargs in orders(single):
        try:
            order_submit(user=user, **kwargs)
        except services.ExchangeError:
            pass
    for batch_book, single_book in zip(batched, single, strict=True):
        assert _rows(batch_book) == _rows(single_book)
    books_balance()
