"""market.services.orders: every order type and rule, with fills, fees,
reservations and positions computed by hand (see orders_world for the actors).

Fees: maker 0.005, taker 0.015 EUR/GPUh per side, exact per trade. Each
trade side moves what its month's charge grows by into its fee reserve:
H(A) = r(A) + r(0.19 x r(A)), r HALF_UP to the cent, Δ = H(A + f) - H(A)
(clearing.fees). A buy reserves limit x quantity x hours + quantity x
m(0.015 x hours), m(u) = ROUND_UP(u) + ROUND_UP(0.19 x ROUND_UP(u)) = + 0.03
per GPU for one hour.
"""

from datetime import timedelta

import psycopg.errors
import pytest
from django.db import OperationalError
from django.utils import timezone, translation

from clearing.models import FeeSchedule, JournalEntry
from exchange.errors import ExchangeError
from market import broadcast
from market.models import InstrumentStatus, Order, Trade
from market.services import orders as services
from market.services.orders import order_amend, order_cancel, order_submit, orders_expire, orders_submit_batch
from market.tasks import expire_orders
from tests.factories import OpenInstrumentFactory, SiteCapacityFactory, SiteFactory, TraderFactory, deposit
from tests.market.orders_world import CASH, D, World, books_balance, held, make_world, money, position, written

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


def buy(world: World, user=None, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("quantity", 10)
    return order_submit(user=user or world.charlie, instrument=world.instrument, side="buy", **kwargs).order


def sell(world: World, user=None, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("quantity", 10)
    return order_submit(user=user or world.alice, instrument=world.instrument, side="sell", **kwargs).order


def refused(code: str, call, *args, **kwargs) -> ExchangeError:  # type: ignore[no-untyped-def]
    """Run a call that must be refused with ``code`` and write nothing."""
    before = written()
    with pytest.raises(ExchangeError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    assert written() == before
    books_balance()
    return caught.value


# --- limit orders, fills, fees, reservations, positions -------------------------------------


def test_a_resting_buy_reserves_its_limit_value_and_maximum_fee(world):
    order = buy(world, price=D("12.30"))

    assert order.status == "open"
    # 12.30 x 10 x 1 + 10 x 0.03
    assert order.reserved_amount == D("123.30")
    assert money(world.org_c)["cash_available"] == D("9876.70")
    assert money(world.org_c)["cash_reserved"] == D("123.30")
    assert Trade.objects.count() == 0
    books_balance()


def test_a_crossing_sell_trades_at_the_resting_price_with_maker_and_taker_fees(world):
    resting = buy(world, price=D("12.30"))
    incoming = sell(world, price=D("12.00"), quantity=4)

    trade = Trade.objects.get()
    assert (trade.price, trade.quantity, trade.aggressor) == (D("12.30"), 4, "sell")
    assert (trade.buyer, trade.seller) == (world.org_c, world.org_a)
    # Buyer is the maker: 0.005 x 4 = 0.02; seller the taker: 0.015 x 4 = 0.06 (exact).
    assert (trade.buyer_fee, trade.seller_fee) == (D("0.02"), D("0.06"))
    # Held for the month: the buyer 0.02 + VAT r(0.0038) = 0.02; the seller 0.06 + r(0.0114) = 0.07.
    assert (held(world.org_c), held(world.org_a)) == (D("0.02"), D("0.07"))
    incoming.refresh_from_db()
    resting.refresh_from_db()
    assert (incoming.status, incoming.filled_quantity, incoming.remaining_quantity) == ("filled", 4, 0)
    assert (resting.status, resting.filled_quantity, resting.remaining_quantity) == ("partially_filled", 4, 6)
    # The reservation left is exactly what the 6 open GPUs need: 12.30 x 6 + 6 x 0.03.
    assert resting.reserved_amount == D("73.98")

    # R = 123.30 - 73.98 = 49.32; V = 49.20; the buyer gets R - V - Δb = 0.10 back.
    assert money(world.org_c) == {"cash_available": D("9876.80"), "cash_reserved": D("73.98"),
                                  "settlement_pending": D("49.20"), "margin": D("0.00")}
    # The seller is due V - Fs = 49.14 on delivery.
    assert money(world.org_a) == {"cash_available": CASH, "cash_reserved": D("0.00"),
                                  "settlement_pending": D("49.13"), "margin": D("0.00")}
    assert position(world.org_c, world.instrument) == (4, 4, 0, D("49.20"), D("0.00"))
    assert position(world.org_a, world.instrument) == (-4, 0, 4, D("0.00"), D("49.20"))
    entry = JournalEntry.objects.get(kind="trade")
    assert entry.reference == f"trade:{trade.pk}"
    # No fee revenue at the trade: the fees go to the parties' fee reserves,
    # charged once a month (clearing.services.fees).
    assert sorted((line.account.kind, line.amount) for line in entry.lines.all()) == sorted([
        ("cash_reserved", D("-49.32")), ("cash_available", D("0.10")), ("settlement_pending", D("49.20")),
        ("fee_reserve", D("0.02")), ("settlement_pending", D("49.13")), ("fee_reserve", D("0.07")),
        ("ccp", D("-49.20")),
    ])
    books_balance()


def test_cancel_releases_the_whole_remaining_reservation(world):
    resting = buy(world, price=D("12.30"))
    sell(world, price=D("12.30"), quantity=4)

    cancelled = order_cancel(user=world.charlie, order_id=resting.pk)

    assert (cancelled.status, cancelled.reason, cancelled.reserved_amount) == ("cancelled", "cancelled_by_member", 0)
    assert cancelled.remaining_quantity == 0
    # 10,000 - V 49.20 - maker fee 0.02: nothing stays reserved.
    assert money(world.org_c)["cash_available"] == D("9950.78")
    assert money(world.org_c)["cash_reserved"] == D("0.00")
    assert JournalEntry.objects.filter(kind="release", reference=f"order:{resting.pk}").count() == 1
    books_balance()


def test_a_buy_sweeping_two_levels_pays_each_resting_price_and_gets_the_limit_difference_back(world):
    sell(world, price=D("12.00"), quantity=3)
    sell(world, user=world.dora, price=D("12.10"), quantity=5)

    order = buy(world, price=D("12.50"), quantity=6)

    order.refresh_from_db()
    assert order.status == "filled"
    trades = list(Trade.objects.order_by("id").values_list("price", "quantity", "buyer_fee", "seller_fee"))
    # 3 @ 12.00 (taker fee 0.045, maker 0.015, exact), 3 @ 12.10 (the same fees).
    assert trades == [(D("12.00"), 3, D("0.045"), D("0.015")), (D("12.10"), 3, D("0.045"), D("0.015"))]
    # The buyer's month: 0.045 holds 0.05 + VAT 0.01 = 0.06; 0.090 holds 0.09 + 0.02 = 0.11 (+0.05).
    assert held(world.org_c) == D("0.11")
    # Reserved 12.50 x 6 + 0.18 = 75.18; paid 36.00 + 36.30 + 0.11 held; the rest is available again.
    assert money(world.org_c) == {"cash_available": CASH - D("72.41"), "cash_reserved": D("0.00"),
                                  "settlement_pending": D("72.30"), "margin": D("0.00")}
    assert money(world.org_a)["settlement_pending"] == D("35.98")
    assert money(world.org_d)["settlement_pending"] == D("36.28")
    assert position(world.org_c, world.instrument) == (6, 6, 0, D("72.30"), D("0.00"))
    book = Order.objects.filter(side="sell", status__in=["open", "partially_filled"])
    assert [(o.price, o.remaining_quantity) for o in book] == [(D("12.10"), 2)]
    books_balance()


def test_price_time_priority_within_a_level(world):
    first = sell(world, price=D("13.00"), quantity=5)
    second = sell(world, user=world.dora, price=D("13.00"), quantity=5)

    buy(world, price=D("13.00"), quantity=7)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.filled_quantity) == ("filled", 5)
    assert (second.status, second.filled_quantity) == ("partially_filled", 2)
    books_balance()


# --- order types and time in force ----------------------------------------------------------


def test_market_buy_trades_up_to_the_protection_price_and_reserves_at_it(world):
    sell(world, price=D("12.30"), quantity=1)
    buy(world, price=D("12.30"), quantity=1)  # last trade: 12.30
    sell(world, user=world.dora, price=D("12.50"), quantity=5)
    available = money(world.org_c)["cash_available"]

    order = buy(world, type="market", quantity=3)

    order.refresh_from_db()
    # Protection price: 12.30 x 1.5 = 18.45; reserved 18.45 x 3 + 0.09 = 55.44, all of it used or returned.
    assert (order.type, order.price, order.status, order.reserved_amount) == ("market", D("18.45"), "filled", 0)
    trade = Trade.objects.latest("id")
    assert (trade.price, trade.quantity, trade.buyer_fee, trade.seller_fee) == (D("12.50"), 3, D("0.045"),
                                                                                D("0.015"))
    # The month had 0.015 (holding 0.02); 0.060 holds 0.06 + 0.01 = 0.07: 0.05 more.
    assert money(world.org_c)["cash_available"] == available - D("37.55")
    books_balance()


def test_market_order_remainder_is_cancelled_and_its_reservation_released(world):
    sell(world, price=D("50.00"), quantity=2)

    order = buy(world, type="market", quantity=5)

    order.refresh_from_db()
    # No trade yet, no mid: the reference is the bounds' middle, 100.00; +50 % = 150.00.
    assert order.price == D("150.00")
    assert (order.status, order.reason, order.filled_quantity, order.remaining_quantity) == (
        "cancelled", "market_remainder", 2, 0)
    # Paid 2 x 50.00 + taker fee 0.03 with VAT r(0.0057) = 0.01 held; nothing stays reserved.
    assert money(world.org_c) == {"cash_available": CASH - D("100.04"), "cash_reserved": D("0.00"),
                                  "settlement_pending": D("100.00"), "margin": D("0.00")}
    books_balance()


def test_market_sell_uses_the_mid_as_reference(world):
    buy(world, price=D("10.00"), quantity=2)
    sell(world, user=world.dora, price=D("11.00"), quantity=2)

    order = sell(world, type="market", quantity=3)

    order.refresh_from_db()
    # Mid 10.50, -50 % = 5.25; it sells 2 at the bid and the remainder is cancelled.
    assert (order.price, order.status, order.filled_quantity, order.reason) == (
        D("5.25"), "cancelled", 2, "market_remainder")
    books_balance()


def test_ioc_fills_what_it_can_and_cancels_the_rest(world):
    sell(world, price=D("13.00"), quantity=2)

    order = buy(world, price=D("13.00"), quantity=5, time_in_force="IOC")

    order.refresh_from_db()
    assert (order.status, order.reason, order.filled_quantity) == ("cancelled", "ioc_remainder", 2)
    # 2 x 13.00 + taker fee 0.03 with VAT 0.01 held; the other 3 GPUs' reservation (39.09) is released.
    assert money(world.org_c)["cash_available"] == CASH - D("26.04")
    assert money(world.org_c)["cash_reserved"] == D("0.00")
    books_balance()


def test_ioc_with_nothing_to_trade_is_created_and_cancelled(world):
    order = buy(world, price=D("13.00"), quantity=5, time_in_force="IOC")

    assert (order.status, order.reason, order.filled_quantity) == ("cancelled", "ioc_remainder", 0)
    assert money(world.org_c)["cash_available"] == CASH
    books_balance()


def test_fok_fills_completely_or_is_refused_with_nothing_written(world):
    sell(world, price=D("13.00"), quantity=3)

    refused("fok_not_fillable", buy, world, price=D("13.00"), quantity=4, time_in_force="FOK")
    assert money(world.org_c)["cash_available"] == CASH

    order = buy(world, price=D("13.00"), quantity=3, time_in_force="FOK")
    assert order.status == "filled"
    books_balance()


def test_post_only_rests_or_is_refused_when_it_would_trade(world):
    sell(world, price=D("13.00"), quantity=3)

    refused("post_only_would_trade", buy, world, price=D("13.00"), quantity=1, post_only=True)

    order = buy(world, price=D("12.99"), quantity=1, post_only=True)
    assert (order.status, order.post_only) == ("open", True)


def test_gtd_order_rests_until_it_expires(world):
    now = timezone.now()
    order = buy(world, price=D("12.00"), quantity=5, time_in_force="GTD", expires_at=now + timedelta(minutes=10))

    assert orders_expire(now=now + timedelta(minutes=9)) == 0
    assert orders_expire(now=now + timedelta(minutes=10)) == 1

    order.refresh_from_db()
    assert (order.status, order.reason, order.reserved_amount) == ("expired", "expired", 0)
    assert money(world.org_c)["cash_available"] == CASH
    # Idempotent: a second run finds nothing.
    assert orders_expire(now=now + timedelta(minutes=11)) == 0
    assert JournalEntry.objects.filter(kind="release").count() == 1
    books_balance()


def test_an_expired_gtd_order_is_not_matched_even_before_the_job_runs(world):
    now = timezone.now()
    stale = sell(world, price=D("12.00"), quantity=5, time_in_force="GTD", expires_at=now + timedelta(minutes=1))

    order = buy(world, price=D("12.00"), quantity=5, now=now + timedelta(minutes=2))

    stale.refresh_from_db()
    order.refresh_from_db()
    assert (stale.status, stale.reason) == ("expired", "expired")
    assert (order.status, order.filled_quantity) == ("open", 0)
    assert Trade.objects.count() == 0
    books_balance()


def test_orders_of_a_closed_instrument_expire_with_the_celery_task(world):
    resting = buy(world, price=D("12.00"), quantity=5)
    seller = sell(world, price=D("14.00"), quantity=5)
    world.instrument.closes_at = timezone.now() - timedelta(seconds=1)
    world.instrument.save(update_fields=["closes_at"])

    assert expire_orders() == 2

    for order in (resting, seller):
        order.refresh_from_db()
        assert (order.status, order.reason) == ("expired", "instrument_closed")
    assert money(world.org_c)["cash_available"] == CASH
    assert expire_orders() == 0
    books_balance()


# --- self-trade prevention ------------------------------------------------------------------


def test_self_trade_prevention_cancels_the_incoming_order_by_default(world):
    resting = sell(world, price=D("13.00"), quantity=5)

    incoming = buy(world, user=world.bob, price=D("13.00"), quantity=5)

    incoming.refresh_from_db()
    resting.refresh_from_db()
    assert (incoming.status, incoming.reason) == ("cancelled", "self_trade_prevention")
    assert resting.status == "open"
    assert Trade.objects.count() == 0
    assert money(world.org_a)["cash_reserved"] == D("0.00")
    assert money(world.org_a)["cash_available"] == CASH
    books_balance()


def test_self_trade_prevention_may_cancel_the_resting_order_instead(world):
    own = sell(world, price=D("13.00"), quantity=5)
    other = sell(world, user=world.dora, price=D("13.00"), quantity=5)

    incoming = buy(world, user=world.bob, price=D("13.00"), quantity=5, stp_mode="cancel_resting")

    own.refresh_from_db()
    other.refresh_from_db()
    incoming.refresh_from_db()
    assert (own.status, own.reason) == ("cancelled", "self_trade_prevention")
    assert other.status == "filled"
    assert incoming.status == "filled"
    assert Trade.objects.get().seller == world.org_d
    books_balance()


# --- amend ----------------------------------------------------------------------------------


def test_lowering_the_quantity_keeps_time_priority_and_releases_cash(world):
    first = buy(world, price=D("12.00"), quantity=5)
    second = buy(world, user=world.dora, price=D("12.00"), quantity=5)

    amended = order_amend(user=world.charlie, order_id=first.pk, quantity=3)

    assert (amended.quantity, amended.priority) == (3, first.priority)
    # 12.00 x 3 + 3 x 0.03
    assert amended.reserved_amount == D("36.09")
    assert money(world.org_c)["cash_reserved"] == D("36.09")
    sell(world, price=D("12.00"), quantity=3)
    amended.refresh_from_db()
    second.refresh_from_db()
    assert (amended.status, second.filled_quantity) == ("filled", 0)
    books_balance()


def test_raising_the_quantity_loses_time_priority(world):
    first = buy(world, price=D("12.00"), quantity=5)
    second = buy(world, user=world.dora, price=D("12.00"), quantity=5)

    amended = order_amend(user=world.charlie, order_id=first.pk, quantity=6)

    assert amended.priority > second.priority
    assert amended.reserved_amount == D("72.18")
    sell(world, price=D("12.00"), quantity=5)
    amended.refresh_from_db()
    second.refresh_from_db()
    assert (second.status, amended.filled_quantity) == ("filled", 0)
    books_balance()


def test_a_price_amend_loses_priority_and_may_trade(world):
    sell(world, price=D("12.50"), quantity=2)
    order = buy(world, price=D("12.00"), quantity=5)

    amended = order_amend(user=world.charlie, order_id=order.pk, price=D("12.60"))

    assert (amended.price, amended.status, amended.filled_quantity) == (D("12.60"), "partially_filled", 2)
    trade = Trade.objects.get()
    assert (trade.price, trade.aggressor) == (D("12.50"), "buy")
    # The amended order is the taker: 0.015 x 2 = 0.03, held with VAT 0.01; the rest
    # reserved at the new price: 12.60 x 3 + 3 x 0.03.
    assert (trade.buyer_fee, held(world.org_c)) == (D("0.03"), D("0.04"))
    assert amended.reserved_amount == D("37.89")
    assert money(world.org_c) == {"cash_available": CASH - D("25.00") - D("0.04") - D("37.89"),
                                  "cash_reserved": D("37.89"), "settlement_pending": D("25.00"),
                                  "margin": D("0.00")}
    books_balance()


def test_amend_refusals_leave_the_order_as_it_was(world):
    sell(world, price=D("12.50"), quantity=2)
    order = buy(world, price=D("12.00"), quantity=5, post_only=True)

    refused("post_only_would_trade", order_amend, user=world.charlie, order_id=order.pk, price=D("12.50"))
    refused("tick_size", order_amend, user=world.charlie, order_id=order.pk, price=D("12.005"))
    refused("invalid", order_amend, user=world.charlie, order_id=order.pk)
    refused("insufficient_funds", order_amend, user=world.charlie, order_id=order.pk, quantity=5000)
    refused("not_found", order_amend, user=world.dora, order_id=order.pk, quantity=1)

    order.refresh_from_db()
    assert (order.price, order.quantity, order.status, order.reserved_amount) == (D("12.00"), 5, "open", D("60.15"))


def test_amend_to_the_filled_quantity_is_refused(world):
    order = buy(world, price=D("12.00"), quantity=5)
    sell(world, price=D("12.00"), quantity=2)

    error = refused("invalid", order_amend, user=world.charlie, order_id=order.pk, quantity=2)
    assert "quantity" in error.fields


def test_an_unchanged_amend_writes_nothing(world):
    order = buy(world, price=D("12.00"), quantity=5)
    before = written()

    same = order_amend(user=world.charlie, order_id=order.pk, quantity=5, price=D("12.00"))

    assert (same.pk, same.priority) == (order.pk, order.priority)
    assert written() == before


def test_cancel_and_amend_of_an_order_no_longer_in_the_book_answer_order_not_open(world):
    order = buy(world, price=D("12.00"), quantity=5)
    order_cancel(user=world.charlie, order_id=order.pk)

    assert refused("order_not_open", order_cancel, user=world.charlie, order_id=order.pk).status == 409
    refused("order_not_open", order_amend, user=world.charlie, order_id=order.pk, quantity=3)


def test_cancel_is_allowed_while_the_instrument_is_halted(world):
    order = buy(world, price=D("12.00"), quantity=5)
    world.instrument.status = InstrumentStatus.HALTED
    world.instrument.save(update_fields=["status"])

    refused("market_halted", order_amend, user=world.charlie, order_id=order.pk, quantity=3)
    assert order_cancel(user=world.charlie, order_id=order.pk).status == "cancelled"


def test_another_organisations_order_does_not_exist_for_cancel(world):
    order = buy(world, price=D("12.00"), quantity=5)

    refused("not_found", order_cancel, user=world.alice, order_id=order.pk)


# --- sell side: capacity and resale ---------------------------------------------------------


def test_sells_beyond_registered_capacity_are_refused(world):
    sell(world, price=D("13.00"), quantity=60)
    sell(world, price=D("14.00"), quantity=40)

    error = refused("insufficient_capacity", sell, world, price=D("15.00"), quantity=1)
    assert "quantity" in error.fields


def test_a_sell_amend_raising_the_quantity_needs_capacity(world):
    order = sell(world, price=D("13.00"), quantity=100)

    refused("insufficient_capacity", order_amend, user=world.alice, order_id=order.pk, quantity=101)
    assert order_amend(user=world.alice, order_id=order.pk, quantity=90).quantity == 90


def test_bought_capacity_may_be_resold_without_sites_but_no_more(world):
    sell(world, price=D("12.00"), quantity=4)
    buy(world, price=D("12.00"), quantity=4)  # Charlie is long 4 and has no sites

    refused("insufficient_capacity", sell, world, user=world.charlie, price=D("12.50"), quantity=5)
    resale = sell(world, user=world.charlie, price=D("12.50"), quantity=4)
    assert resale.status == "open"
    refused("insufficient_capacity", sell, world, user=world.charlie, price=D("12.50"), quantity=1)

    buy(world, user=world.dora, price=D("12.50"), quantity=4)
    assert position(world.org_c, world.instrument)[0] == 0
    books_balance()


def test_resale_is_checked_across_zones_with_the_organisations_sites(world):
    bavaria = OpenInstrumentFactory(zone_code="DE-BY")
    order_submit(user=world.alice, instrument=bavaria, side="sell", price=D("13.00"), quantity=70)

    # 100 GPUs in Bavaria, 70 committed to DE-BY: 30 are left for DE.
    refused("insufficient_capacity", sell, world, price=D("13.00"), quantity=31)
    assert sell(world, price=D("13.00"), quantity=30).status == "open"


# --- refusals: every contract code, nothing written -----------------------------------------


def test_invalid_orders_name_their_fields(world):
    assert "price" in refused("invalid", buy, world).fields
    assert "price" in refused("invalid", buy, world, type="market", price=D("12.00")).fields
    assert "expires_at" in refused("invalid", buy, world, price=D("12.00"), time_in_force="GTD").fields
    assert "expires_at" in refused("invalid", buy, world, price=D("12.00"), time_in_force="GTD",
                                   expires_at=timezone.now() - timedelta(seconds=1)).fields
    assert "expires_at" in refused("invalid", buy, world, price=D("12.00"),
                                   expires_at=timezone.now() + timedelta(hours=1)).fields
    assert "post_only" in refused("invalid", buy, world, price=D("12.00"), time_in_force="IOC",
                                  post_only=True).fields
    assert "quantity" in refused("invalid", buy, world, price=D("12.00"), quantity=0).fields
    assert "quantity" in refused("invalid", buy, world, price=D("12.00"), quantity=1_000_001).fields
    assert "side" in refused("invalid", order_submit, user=world.charlie, instrument=world.instrument,
                             side="hold", price=D("12.00"), quantity=1).fields


def test_tick_and_bounds(world):
    with translation.override("en"):
        assert refused("tick_size", buy, world, price=D("12.345")).fields == {"price": [
            "The price must be a multiple of the tick size 0.01 EUR/GPUh."]}
    refused("price_out_of_bounds", buy, world, price=D("200.01"))
    refused("price_out_of_bounds", buy, world, price=D("-1.00"))
    # A sell below m(0.015) = 0.02 + VAT rounded up 0.01 = 0.03 could owe more fee than it earns.
    refused("price_out_of_bounds", sell, world, price=D("0.02"))
    assert sell(world, price=D("0.03"), quantity=1).status == "open"


def test_closed_and_halted_instruments_take_no_orders(world):
    world.instrument.status = InstrumentStatus.HALTED
    world.instrument.save(update_fields=["status"])
    refused("market_halted", buy, world, price=D("12.00"))

    world.instrument.status = InstrumentStatus.OPEN
    world.instrument.save(update_fields=["status"])
    refused("instrument_closed", buy, world, price=D("12.00"), now=world.instrument.closes_at)
    refused("instrument_closed", buy, world, price=D("12.00"), now=world.instrument.opens_at - timedelta(seconds=1))


def test_insufficient_funds(world):
    # 10,000.00 covers 12.00 x 831 + 831 x 0.03 = 9,996.93 but not 832 GPUs (10,008.96).
    refused("insufficient_funds", buy, world, price=D("12.00"), quantity=832)
    assert buy(world, price=D("12.00"), quantity=831).reserved_amount == D("9996.93")


def test_who_may_trade(world):
    refused("kyc_not_approved", buy, world, user=world.kai, price=D("12.00"))
    refused("not_permitted", buy, world, user=world.vera, price=D("12.00"))


def test_day_ahead_instruments_take_no_orders(world):
    """Futures trade here since issue 10 (tests/market/test_futures_orders.py); the day-ahead segment bids
    in its auction (market.services.dayahead)."""
    dayahead = OpenInstrumentFactory(segment="dayahead", symbol="H100.DE.DA2099-01-01")

    with translation.override("en"):
        error = refused("not_permitted", order_submit, user=world.charlie, instrument=dayahead, side="buy",
                        price=D("12.00"), quantity=1)
    assert error.detail == "Only instruments of continuous trading take orders."
    with translation.override("de"):
        error = refused("not_permitted", order_submit, user=world.charlie, instrument=dayahead, side="buy",
                        price=D("12.00"), quantity=1)
    assert error.detail.startswith("Nur ")


# --- idempotency ----------------------------------------------------------------------------


def test_a_client_order_id_used_before_returns_the_existing_order_and_writes_nothing(world):
    first = order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=5,
                         client_order_id="c-1")
    before = written()

    again = order_submit(user=world.charlie, instrument=world.instrument, side="buy",
                         price=D("99.00"), quantity=1, client_order_id="c-1")

    assert (first.created, again.created) == (True, False)
    assert again.order.pk == first.order.pk
    assert written() == before
    # Another organisation may use the same id.
    assert order_submit(user=world.dora, instrument=world.instrument, side="buy", price=D("12.00"), quantity=1,
                        client_order_id="c-1").created


def test_a_duplicate_that_loses_the_race_at_the_unique_index_returns_the_winner(world, monkeypatch):
    winner = order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=5,
                          client_order_id="race")
    # Pretend both requests passed the look-ups before either had committed.
    real = services._existing
    calls = {"n": 0}

    def blind(organisation, client_order_id):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return None if calls["n"] <= 2 else real(organisation, client_order_id)

    monkeypatch.setattr(services, "_existing", blind)
    before = written()

    result = order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=5,
                          client_order_id="race")

    assert (result.created, result.order.pk) == (False, winner.order.pk)
    assert written() == before


# --- batch ----------------------------------------------------------------------------------


def test_batch_submits_each_order_on_its_own(world):
    results = orders_submit_batch(user=world.charlie, orders=[
        {"instrument": world.instrument, "side": "buy", "price": D("12.00"), "quantity": 1},
        {"instrument": world.instrument, "side": "buy", "price": D("12.001"), "quantity": 1},
        {"instrument": world.instrument, "side": "buy", "price": D("12.10"), "quantity": 2, "client_order_id": "b"},
        {"instrument": world.instrument, "side": "buy", "price": D("12.10"), "quantity": 2, "client_order_id": "b"},
    ])

    assert [type(r).__name__ for r in results] == ["SubmitResult", "ExchangeError", "SubmitResult", "SubmitResult"]
    assert results[1].code == "tick_size"  # type: ignore[union-attr]
    assert [r.created for r in results if isinstance(r, services.SubmitResult)] == [True, True, False]
    assert Order.objects.count() == 2


def test_batch_limits(world):
    refused("invalid", orders_submit_batch, user=world.charlie, orders=[])
    refused("invalid", orders_submit_batch, user=world.charlie,
            orders=[{"instrument": world.instrument, "side": "buy", "price": D("1.00"), "quantity": 1}] * 101)
    refused("kyc_not_approved", orders_submit_batch, user=world.kai,
            orders=[{"instrument": world.instrument, "side": "buy", "price": D("1.00"), "quantity": 1}])


# --- broadcasts -----------------------------------------------------------------------------


def capture_broadcasts(monkeypatch) -> list[tuple]:
    """What one commit publishes, decoded from the channel-layer messages:
    ("book", symbol, sequence, bids, asks), ("trade", symbol, trade),
    ("private", organisation id, event)."""
    sent: list[tuple] = []

    def publish(messages):
        for group, event in messages:
            kind, _, key = group.partition(".")
            if kind == "book":
                sent.append(("book", key, event["sequence"], [(D(p), q) for p, q in event["bids"]],
                             [(D(p), q) for p, q in event["asks"]]))
            elif kind == "trades":
                sent.append(("trade", key, {k: v for k, v in event.items() if k != "type"}))
            else:
                sent.append(("private", int(key), event))

    monkeypatch.setattr(broadcast, "publish", publish)
    return sent



def test_after_commit_the_book_delta_the_trade_and_each_sides_private_events_are_published(
        world, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_broadcasts(monkeypatch)
    symbol = world.instrument.symbol

    with django_capture_on_commit_callbacks(execute=True):
        resting = buy(world, price=D("12.30"), quantity=10)
    with django_capture_on_commit_callbacks(execute=True):
        incoming = sell(world, price=D("12.30"), quantity=4)

    books = [event[1:] for event in sent if event[0] == "book"]
    assert books == [(symbol, 1, [(D("12.30"), 10)], []), (symbol, 2, [(D("12.30"), 6)], [])]
    trade = Trade.objects.get()
    trades = [event[1:] for event in sent if event[0] == "trade"]
    assert len(trades) == 1
    assert trades[0][1]["id"] == trade.pk
    assert set(trades[0][1]) == {"id", "price", "quantity", "executed_at", "aggressor"}
    private = [(event[1], event[2]) for event in sent if event[0] == "private"]
    to_c = [e for org, e in private if org == world.org_c.pk]
    to_a = [e for org, e in private if org == world.org_a.pk]
    assert {e["type"] for e in to_c} == {"order", "fill"} == {e["type"] for e in to_a}
    assert all(e["order"]["id"] == resting.pk for e in to_c if e["type"] == "order")
    assert all(e["order"]["id"] == incoming.pk for e in to_a if e["type"] == "order")
    fill_c = next(e["fill"] for e in to_c if e["type"] == "fill")
    fill_a = next(e["fill"] for e in to_a if e["type"] == "fill")
    assert (fill_c["side"], fill_c["liquidity"], fill_c["fee"], fill_c["order_id"]) == ("buy", "maker", "0.02",
                                                                                       resting.pk)
    assert (fill_a["side"], fill_a["liquidity"], fill_a["fee"], fill_a["order_id"]) == ("sell", "taker", "0.06",
                                                                                       incoming.pk)
    # Each side sees its own order and fill, never the other party.
    assert set(fill_c) == {"trade_id", "order_id", "instrument", "side", "price", "quantity", "liquidity", "fee",
                           "executed_at"}
    assert not any("Alice" in str(e) or "Rechenwerk" in str(e) for e in to_c)
    assert not any("Charlie" in str(e) for e in to_a)
    world.instrument.refresh_from_db()
    assert world.instrument.book_sequence == 2


def test_nothing_is_published_for_a_refused_order(world, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_broadcasts(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ExchangeError):
        buy(world, price=D("12.00"), quantity=1, time_in_force="FOK")
    assert callbacks == [] and sent == []


# --- retries --------------------------------------------------------------------------------


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected()
    return error


def test_a_deadlocked_transaction_is_retried_as_a_whole(world, monkeypatch):
    real = services._lock_instrument
    calls = {"n": 0}

    def flaky(instrument_id):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] <= 2:
            raise _deadlock()
        return real(instrument_id)

    monkeypatch.setattr(services, "_lock_instrument", flaky)

    assert buy(world, price=D("12.00"), quantity=1).status == "open"
    assert calls["n"] == 3


def test_retries_stop_after_three_and_other_errors_are_not_retried(world, monkeypatch):
    calls = {"n": 0}

    def always(instrument_id):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise _deadlock()

    monkeypatch.setattr(services, "_lock_instrument", always)
    with pytest.raises(OperationalError):
        buy(world, price=D("12.00"), quantity=1)
    assert calls["n"] == 1 + services.MAX_RETRIES

    calls["n"] = 0

    def broken(instrument_id):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(services, "_lock_instrument", broken)
    with pytest.raises(OperationalError):
        buy(world, price=D("12.00"), quantity=1)
    assert calls["n"] == 1


# --- fee rates ------------------------------------------------------------------------------


def _schedule(valid_from, *, maker: str, taker: str):  # type: ignore[no-untyped-def]
    return FeeSchedule.objects.create(
        valid_from=valid_from, day_ahead_per_side=D("0.01"), intraday_maker=D(maker), intraday_taker=D(taker),
        futures_per_side=D("0.002"), incentive_fund_share=D("0.20"), rnd_fund_share=D("0.10"))


def test_a_fee_rise_between_entry_and_fill_charges_the_rates_of_entry(world):
    now = timezone.now()
    _schedule(now + timedelta(minutes=5), maker="0.050", taker="0.100")
    # Entered under 0.005/0.015: reserves 120.00 + 10 x 0.03, and stores those rates.
    order = buy(world, price=D("12.00"), quantity=10, now=now)
    assert (order.maker_rate, order.taker_rate) == (D("0.005"), D("0.015"))

    later = now + timedelta(minutes=10)
    sell(world, price=D("12.00"), quantity=10, now=later)  # Alice enters under the new rates

    trade = Trade.objects.get()
    # The resting buy pays its entry's maker rate (0.05, not 0.50); it still
    # had every cent it needed reserved, and the incoming sell was not refused.
    assert (trade.buyer_fee, trade.seller_fee) == (D("0.05"), D("1.00"))
    # Held: 0.05 + VAT r(0.0095) = 0.06.
    assert money(world.org_c)["cash_available"] == CASH - D("120.06")
    assert money(world.org_c)["cash_reserved"] == D("0.00")
    books_balance()


def test_a_fee_cut_between_entry_and_fill_charges_the_lower_rates(world):
    now = timezone.now()
    _schedule(now + timedelta(minutes=5), maker="0.001", taker="0.002")
    buy(world, price=D("12.00"), quantity=10, now=now)  # entered at 0.005/0.015

    sell(world, price=D("12.00"), quantity=10, now=now + timedelta(minutes=10))

    trade = Trade.objects.get()
    assert (trade.buyer_fee, trade.seller_fee) == (D("0.01"), D("0.02"))  # 0.001 x 10, 0.002 x 10
    assert money(world.org_c)["cash_available"] == CASH - D("120.01")
    books_balance()


def test_a_new_organisation_without_accounts_can_sell_and_is_paid(world):
    seller = TraderFactory(is_provider=True).user
    SiteCapacityFactory(site=SiteFactory(organisation=seller.membership.organisation),
                        gpu_class=world.instrument.gpu_class, gpus=5)
    buy(world, price=D("12.00"), quantity=5)

    order_submit(user=seller, instrument=world.instrument, side="sell", price=D("12.00"), quantity=5)

    # V 60.00 - the taker fee 0.075 held as 0.08 + VAT r(0.0152) = 0.10
    assert money(seller.membership.organisation)["settlement_pending"] == D("59.90")
    assert held(seller.membership.organisation) == D("0.10")
    deposit(seller.membership.organisation, "1.00")
    books_balance()


# --- the money rules behind the service (pure) ----------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from clearing import fees  # noqa: E402


def test_fee_helpers():
    assert fees.min_sell_price(D("0.015")) == D("0.03")
    assert fees.min_sell_price(D("0.01")) == D("0.02")
    assert fees.min_sell_price(D("0")) == D("0.00")
    assert fees.open_buy_reservation(D("12.30"), 0, 1, D("0.015")) == D("0.00")
    assert fees.open_buy_reservation(D("12.30"), 6, 1, D("0.015")) == D("73.98")
    with pytest.raises(ValueError):
        fees.FeeRates(maker=D("0.02"), taker=D("0.01"))


prices = st.integers(min_value=3, max_value=20000).map(lambda cents: D(cents) / 100)
# What the member accrued in the month before a fill (other trades included).
accrued = st.integers(min_value=0, max_value=10**9).map(lambda micro: D(micro) / 1_000_000)


@given(limit=prices, hours=st.integers(min_value=1, max_value=25),
       fills=st.lists(st.tuples(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=20000),
                                st.booleans(), accrued), min_size=1, max_size=12))
def test_reservation_shares_cover_every_fill_and_add_up_to_the_reservation(limit, hours, fills):
    """What _apply_match does per fill: the share is the old reservation minus
    what the open quantity still needs. Each share pays its fill and its fee
    step (from whatever the month has accrued); the shares of a filled order
    add up to exactly what was reserved."""
    rates = fees.INTRADAY_FEE_RATES
    quantity = sum(q for q, _price, _maker, _accrued in fills)
    reserved = fees.buy_reservation(limit, quantity, hours, rates.taker)
    total, open_quantity = D("0.00"), quantity
    for fill_quantity, price_cents, maker, month in fills:
        price = min(limit, D(price_cents) / 100)
        open_quantity -= fill_quantity
        needed = min(reserved, fees.open_buy_reservation(limit, open_quantity, hours, rates.taker))
        share, reserved = reserved - needed, needed
        value = fees.trade_value(price, fill_quantity, hours)
        fee = fees.fee_step(month, fees.exact_fee(rates.maker if maker else rates.taker, fill_quantity, hours))
        assert share >= value + fee >= 0
        total += share
    assert reserved == 0
    assert total == fees.buy_reservation(limit, quantity, hours, rates.taker)


@given(price=prices, quantity=st.integers(min_value=1, max_value=10000), hours=st.integers(min_value=1, max_value=25),
       month=accrued)
def test_at_or_above_the_sell_floor_the_seller_fee_never_exceeds_the_value(price, quantity, hours, month):
    rates = fees.INTRADAY_FEE_RATES
    assert price >= fees.min_sell_price(rates.taker)  # the strategy starts at the floor, 0.03
    assert fees.fee_step(month, fees.exact_fee(rates.taker, quantity, hours)) <= fees.trade_value(
        price, quantity, hours)


def test_below_the_sell_floor_the_fee_could_exceed_the_value():
    # Why the floor is m(0.015) = 0.03: with 0.01 accrued before (held 0.01),
    # one taker GPU-hour (0.015) takes the month to 0.025 -> net 0.03 + VAT
    # r(0.0057) = 0.01 = 0.04, a step of 0.03, more than a sale at 0.02 brings.
    step = fees.fee_step(D("0.01"), fees.exact_fee(D("0.015"), 1, 1))
    assert step == D("0.03")
    assert step > fees.trade_value(D("0.02"), 1, 1)
    assert step <= fees.trade_value(fees.min_sell_price(D("0.015")), 1, 1)


def test_a_sweep_reads_the_crossing_orders_page_by_page_in_price_time_priority(world, monkeypatch):
    monkeypatch.setattr(services, "CROSSING_FIRST_PAGE", 2)
    monkeypatch.setattr(services, "CROSSING_PAGE", 3)
    resting = []
    for n in range(10):  # 12.00, 12.01, ... alternating sellers; two at each of the first prices
        user = world.alice if n % 2 else world.dora
        resting.append(sell(world, user=user, price=D("12.00") + D("0.01") * (n // 2), quantity=1))

    taker = buy(world, price=D("12.03"), quantity=7)  # reaches the 8 sells at 12.00-12.03, takes 7

    fills = list(Trade.objects.order_by("id").values_list("sell_order_id", "price"))
    assert [order_id for order_id, _price in fills] == [order.pk for order in resting[:7]]
    assert [price for _order_id, price in fills] == [D("12.00"), D("12.00"), D("12.01"), D("12.01"),
                                                     D("12.02"), D("12.02"), D("12.03")]
    taker.refresh_from_db()
    assert (taker.status, taker.filled_quantity) == ("filled", 7)
    books_balance()
