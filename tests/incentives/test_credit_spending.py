"""Incentive credits are spent before cash, in an intraday trade, a day-ahead
trade and their fees, with hand-computed amounts (issue 12; docs/incentives.md,
"Credits"). The credits are granted through the ledger as a programme does:
start financing -> incentive fund -> programme budgets -> member credits.

Intraday (see tests/market/orders_world.py): maker 0.005, taker 0.015 EUR/GPUh;
a buy of 10 GPUs at 12.30 for one hour reserves 12.30 x 10 + 10 x 0.03 = 123.30.
"""

from decimal import Decimal

import pytest

from accounts.models import Organisation
from clearing.models import Account, JournalEntry
from clearing.reconcile import reconcile
from clearing.services import ledger_post
from clearing.services.ledger import accounts_for, house_account
from exchange.errors import ExchangeError
from incentives.services import start_financing_book
from market.models import DayAheadAuction, Trade
from market.services import dayahead
from market.services.orders import order_cancel, order_submit
from tests.factories import UserFactory
from tests.market.orders_world import D, books_balance, make_world

pytestmark = pytest.mark.django_db


def grant_credits(organisation: Organisation, amount: str) -> None:
    """What an approved application books (incentives.services), here straight in the ledger."""
    operator = UserFactory(is_staff=True)
    value = D(amount)
    start_financing_book(operator=operator, amount=value, repayment_share=D("0.5"), reason="Test")
    ledger_post(kind=JournalEntry.Kind.PROGRAMME_BUDGET, reference=f"test-budget:{organisation.pk}", lines=[
        (house_account(Account.Kind.INCENTIVE_FUND), -value),
        (house_account(Account.Kind.PROGRAMME_BUDGETS), value)])
    credits = Account.objects.get_or_create(organisation=organisation, kind=Account.Kind.CREDITS)[0]
    ledger_post(kind=JournalEntry.Kind.CREDIT_GRANT, reference=f"test-grant:{organisation.pk}", lines=[
        (house_account(Account.Kind.PROGRAMME_BUDGETS), -value), (credits, value)])


def credit_breaches() -> list[str]:
    return [breach.detail for breach in reconcile() if breach.check == "credits_accounted"]


def money(organisation: Organisation) -> dict[str, Decimal]:
    kinds = ("credits", "credits_reserved", "cash_available", "cash_reserved", "settlement_pending", "fee_reserve")
    held = dict(Account.objects.filter(organisation=organisation, kind__in=kinds).values_list("kind", "balance"))
    return {kind: held.get(kind, D("0.00")) for kind in kinds}


def test_an_intraday_purchase_and_its_fee_are_paid_from_credits_before_cash():
    world = make_world()
    grant_credits(world.org_c, "100.00")

    resting = order_submit(user=world.charlie, instrument=world.instrument, side="buy", quantity=10,
                           price=D("12.30")).order
    # 123.30 reserved: all 100.00 of credit first, 23.30 of cash.
    assert money(world.org_c) == {"credits": D("0.00"), "credits_reserved": D("100.00"),
                                  "cash_available": D("9976.70"), "cash_reserved": D("23.30"),
                                  "settlement_pending": D("0.00"), "fee_reserve": D("0.00")}

    order_submit(user=world.alice, instrument=world.instrument, side="sell", quantity=4, price=D("12.00"))
    # R = 49.32 of the reservation belongs to the 4 GPUs, all of it credit; V = 49.20 and the
    # maker fee held Δb = 0.02 are paid from it (49.22), its 0.10 left goes back to credits.
    assert Trade.objects.get().buyer_id == world.org_c.pk
    assert money(world.org_c) == {"credits": D("0.10"), "credits_reserved": D("50.68"),
                                  "cash_available": D("9976.70"), "cash_reserved": D("23.30"),
                                  "settlement_pending": D("49.20"), "fee_reserve": D("0.02")}
    entry = JournalEntry.objects.get(kind="trade")
    buyer_lines = sorted((line.account.kind, line.amount) for line in entry.lines.all()
                         if line.account.organisation_id == world.org_c.pk)
    assert buyer_lines == sorted([("credits_reserved", D("-49.32")), ("credits", D("0.10")),
                                  ("settlement_pending", D("49.20")), ("fee_reserve", D("0.02"))])

    order_cancel(user=world.charlie, order_id=resting.pk)
    # The 73.98 left: 50.68 of credit back to credits, 23.30 of cash back to cash.
    assert money(world.org_c) == {"credits": D("50.78"), "credits_reserved": D("0.00"),
                                  "cash_available": D("10000.00"), "cash_reserved": D("0.00"),
                                  "settlement_pending": D("49.20"), "fee_reserve": D("0.02")}
    # 100.00 granted = 49.22 used + 50.78 outstanding.
    assert credit_breaches() == []
    assert reconcile() == []
    books_balance()


def test_credits_let_a_member_buy_beyond_its_cash_and_a_buy_beyond_both_is_refused():
    world = make_world(cash=D("50.00"))
    grant_credits(world.org_c, "100.00")

    with pytest.raises(ExchangeError) as refused:
        order_submit(user=world.charlie, instrument=world.instrument, side="buy", quantity=13, price=D("12.30"))
    # 12.30 x 13 + 13 x 0.03 = 160.29 > 150.00 of cash and credits: nothing written.
    assert refused.value.code == "insufficient_funds"
    assert money(world.org_c)["credits"] == D("100.00")

    order = order_submit(user=world.charlie, instrument=world.instrument, side="buy", quantity=10,
                         price=D("12.30")).order
    assert order.reserved_amount == D("123.30")
    assert money(world.org_c)["credits_reserved"] == D("100.00")
    assert money(world.org_c)["cash_reserved"] == D("23.30")
    assert money(world.org_c)["cash_available"] == D("26.70")
    assert reconcile() == []


def test_credits_cannot_be_withdrawn():
    from clearing.services import withdrawal_request
    from tests.clearing.test_withdrawals import verify_payout_account

    world = make_world(cash=D("10.00"))
    grant_credits(world.org_c, "100.00")
    verify_payout_account(world.org_c)

    with pytest.raises(ExchangeError) as refused:
        withdrawal_request(user=world.charlie, amount=D("50.00"))
    assert refused.value.code == "insufficient_funds"
    assert money(world.org_c)["credits"] == D("100.00")
    # The cash can be withdrawn; the credits stay.
    withdrawal_request(user=world.charlie, amount=D("10.00"))
    assert money(world.org_c)["credits"] == D("100.00")
    assert money(world.org_c)["cash_available"] == D("0.00")


def test_a_day_ahead_purchase_and_its_fees_are_paid_from_credits_before_cash():
    from tests.market.test_dayahead_service import GATE, balance, hand_computed_book
    from tests.market.test_dayahead_service import market as market_fixture

    market = market_fixture.__wrapped__()
    b1 = market["b1"][0]
    grant_credits(b1, "700.00")
    hand_computed_book(market)
    # B1 reserves 681.00 (tests/market/test_dayahead_service.py): all of it credit.
    assert balance(b1, Account.Kind.CREDITS_RESERVED) == D("681.00")
    assert balance(b1, Account.Kind.CREDITS) == D("19.00")
    assert balance(b1, Account.Kind.CASH_AVAILABLE) == D("10000.00")

    assert dayahead.auctions_clear_due(now=GATE) == 1
    assert DayAheadAuction.objects.get().status == "cleared"
    # B1 bought 50 GPUh at 11.00 = 550.00 with fees held 0.60: 550.60 of credit spent,
    # the 130.40 left of its reservation back to credits: 19.00 + 130.40 = 149.40; cash untouched.
    assert balance(b1, Account.Kind.CREDITS_RESERVED) == D("0.00")
    assert balance(b1, Account.Kind.CREDITS) == D("149.40")
    assert balance(b1, Account.Kind.SETTLEMENT_PENDING) == D("550.00")
    assert balance(b1, Account.Kind.FEE_RESERVE) == D("0.60")
    assert balance(b1, Account.Kind.CASH_AVAILABLE) == D("10000.00")
    assert balance(b1, Account.Kind.CASH_RESERVED) == D("0.00")
    assert reconcile() == []


def test_reconcile_finds_credits_that_appear_from_nowhere():
    world = make_world()
    grant_credits(world.org_c, "10.00")
    # A correction that moves cash into credits: neither a grant nor a purchase.
    accounts = accounts_for(organisation=world.org_c)
    credits = Account.objects.get(organisation=world.org_c, kind=Account.Kind.CREDITS)
    ledger_post(kind=JournalEntry.Kind.CORRECTION, reference="test", lines=[
        (accounts[Account.Kind.CASH_AVAILABLE], D("-5.00")), (credits, D("5.00"))])
    problems = credit_breaches()
    assert any("10,00" in problem and "15,00" in problem for problem in problems), problems  # German by default
    assert any("correction" in problem for problem in problems), problems


def test_a_futures_fee_is_paid_from_credits_but_the_margin_only_from_cash():
    from tests.market.test_dayahead_service import balance, member
    from tests.market.test_futures_day import MON, at, january
    from tests.market.test_futures_orders import FEE_ONE, IM_ONE

    instrument, anna, berta = january(), member("Anna Hedge GmbH"), member("Berta Supply GmbH")
    grant_credits(anna[0], "10.00")

    order_submit(user=anna[1], instrument=instrument, side="buy", price=D("2.40"), quantity=10, now=at(MON, 10))
    # 10 x 1.78 = 17.80 of fees reserved: 10.00 of credit, 7.80 of cash; the initial margin
    # 10 x 267.84 = 2,678.40 from cash only.
    assert (balance(anna[0], Account.Kind.CREDITS_RESERVED), balance(anna[0], Account.Kind.CASH_RESERVED)) == (
        D("10.00"), D("7.80"))
    assert balance(anna[0], Account.Kind.MARGIN) == 10 * IM_ONE
    assert balance(anna[0], Account.Kind.CASH_AVAILABLE) == D("10000.00") - 10 * IM_ONE - D("7.80")
    assert 10 * FEE_ONE == D("17.80")

    order_submit(user=berta[1], instrument=instrument, side="sell", price=D("2.40"), quantity=10, now=at(MON, 10))
    # The fee held is 17.71 (tests/market/test_futures_orders.py): 10.00 from credit, 7.71 from the
    # cash reserved, whose 0.09 left goes back to cash.
    assert balance(anna[0], Account.Kind.CREDITS) == D("0.00")
    assert balance(anna[0], Account.Kind.CREDITS_RESERVED) == D("0.00")
    assert balance(anna[0], Account.Kind.FEE_RESERVE) == D("17.71")
    assert balance(anna[0], Account.Kind.CASH_AVAILABLE) == D("10000.00") - D("2678.40") - D("7.80") + D("0.09")
    assert credit_breaches() == []
    assert reconcile() == []
