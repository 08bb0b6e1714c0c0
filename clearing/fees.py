"""Money arithmetic of the clearing house: trade values, fees, buy reservations.

Pure functions, no Django import, so the matching service, the auction and
the property tests share one definition. Every result is a ``Decimal`` in EUR
with exactly two decimal places; nothing here ever returns a sub-cent amount.

Rounding rules (decided with the lead, see docs/architecture.md):
- a trade value (price on the 0.01 tick x whole GPUs x whole hours) is always
  whole cents; a price off the tick is refused, never rounded;
- the fee of one trade side is rate x quantity x hours, rounded HALF_UP to the
  cent (rates such as 0.005 EUR/GPUh have sub-cent digits);
- the maximum fee reserved at order entry must cover the fees of however many
  partial fills the order gets. Each fill's fee is rounded on its own, so
  rounding the order's total up is not enough (two 1-GPU fills at 0.005 EUR
  cost 0.01 + 0.01, the total 0.01 rounded up only 0.01). The reservation
  rounds UP per GPU instead: quantity x ROUND_UP(rate x hours), which is at
  least the sum of the HALF_UP fees of any split of the quantity into fills.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    """Round an amount HALF_UP to the cent: the one rounding of money."""
    _require_decimal(amount, "amount")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def is_cents(amount: object) -> bool:
    """True for a finite Decimal with no digits beyond the cent (5, 5.1, 5.10)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return False
    return amount == amount.quantize(CENT, rounding=ROUND_HALF_UP)


def trade_value(price: Decimal, quantity: int, hours: int) -> Decimal:
    """price x quantity x hours, exact: always whole cents for a price on the tick."""
    _require_decimal(price, "price")
    _require_count(quantity, "quantity")
    _require_count(hours, "hours")
    if price < 0 or not is_cents(price):
        raise ValueError(f"price must be a non-negative amount on the 0.01 tick, not {price}")
    return (price * quantity * hours).quantize(CENT)


def fee_for(rate: Decimal, quantity: int, hours: int) -> Decimal:
    """The fee one side of one trade pays: rate x quantity x hours, HALF_UP to the cent."""
    _require_rate(rate)
    _require_count(quantity, "quantity")
    _require_count(hours, "hours")
    return (rate * quantity * hours).quantize(CENT, rounding=ROUND_HALF_UP)


def max_fee(rate: Decimal, quantity: int, hours: int) -> Decimal:
    """The most that fees at ``rate`` can come to over any split of ``quantity`` into fills.

    quantity x ROUND_UP(rate x hours): see the module docstring for why the
    rounding is per GPU and not on the total.
    """
    _require_rate(rate)
    _require_count(quantity, "quantity")
    _require_count(hours, "hours")
    return ((rate * hours).quantize(CENT, rounding=ROUND_UP) * quantity).quantize(CENT)


def buy_reservation(limit_price: Decimal, quantity: int, hours: int, taker_rate: Decimal) -> Decimal:
    """Cash reserved when a buy order enters: value at the limit plus the maximum fee.

    A buy order trades at or below its limit and pays at most the taker rate,
    so this covers every fill it can get.
    """
    return trade_value(limit_price, quantity, hours) + max_fee(taker_rate, quantity, hours)


def _require_decimal(value: object, name: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal, not {value!r}")


def _require_rate(rate: Decimal) -> None:
    _require_decimal(rate, "rate")
    if rate < 0:
        raise ValueError(f"a fee rate cannot be negative, not {rate}")


def _require_count(value: object, name: str) -> None:
    # bool is an int subclass; True GPUs is a bug, not a quantity.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number, not {value!r}")


# --- fee rates (issue 3) -------------------------------------------------------------------
# Market rules §3: intraday maker 0.005 and taker 0.015 EUR/GPUh per side.
# Decision for issue 3: the rates are constants here that a deployment (or a
# test) may override with the Django setting ``FEE_RATES_INTRADAY = {"maker":
# "0.005", "taker": "0.015"}`` (read by ``market.services.orders``; this module
# stays free of Django). Issue 4 replaces them with the admin-managed,
# effective-dated fee schedule without changing the callers: they ask for the
# rates once per transaction and pass them on.


@dataclass(frozen=True)
class FeeRates:
    """The per-side fee rates of one segment, EUR per GPU-hour."""

    maker: Decimal
    taker: Decimal

    def __post_init__(self) -> None:
        _require_rate(self.maker)
        _require_rate(self.taker)
        if self.maker > self.taker:
            # The buy reservation covers fees at the taker rate; a maker rate
            # above it could cost more than was reserved.
            raise ValueError(f"the maker rate {self.maker} must not exceed the taker rate {self.taker}")


INTRADAY_FEE_RATES = FeeRates(maker=Decimal("0.005"), taker=Decimal("0.015"))


def open_buy_reservation(limit_price: Decimal, open_quantity: int, hours: int, taker_rate: Decimal) -> Decimal:
    """What a buy order with ``open_quantity`` GPUs still open must hold
    reserved: ``buy_reservation`` of the open quantity, 0.00 when nothing is
    open. The order service keeps ``Order.reserved_amount`` equal to this
    after every fill, so the share of the reservation a fill uses is the
    difference before and after it, and nothing is left over at the end."""
    if open_quantity == 0:
        return Decimal("0.00")
    return buy_reservation(limit_price, open_quantity, hours, taker_rate)


def min_sell_price(taker_rate: Decimal, tick: Decimal = CENT) -> Decimal:
    """The lowest price at which a sell order may enter: the taker rate rounded
    up to the tick. The seller's fee is taken from the trade's proceeds; at a
    price on the tick at or above the rate, the fee (rate x qty x hours, HALF_UP)
    never exceeds the value (price x qty x hours, whole cents), so a seller can
    never owe more fee than the trade brings in."""
    _require_rate(taker_rate)
    return (taker_rate / tick).to_integral_value(rounding=ROUND_UP) * tick


# --- fee schedule and fund shares (issue 4) -----------------------------------------------


@dataclass(frozen=True)
class FeeTerms:
    """What one fee schedule says: the rates of every segment (EUR/GPUh per
    side) and the fractions of fee revenue that go to the two funds."""

    day_ahead_per_side: Decimal
    intraday: FeeRates
    futures_per_side: Decimal
    incentive_fund_share: Decimal
    rnd_fund_share: Decimal

    def __post_init__(self) -> None:
        _require_rate(self.day_ahead_per_side)
        _require_rate(self.futures_per_side)
        for share in (self.incentive_fund_share, self.rnd_fund_share):
            _require_decimal(share, "share")
            if share < 0:
                raise ValueError(f"a fund share cannot be negative, not {share}")
        if self.incentive_fund_share + self.rnd_fund_share > 1:
            raise ValueError("the fund shares together cannot exceed the fee revenue")


# Market rules §3 and §6; the same values the data migration seeds from
# 2026-01-01. They apply before the first schedule row and wherever the seed
# is missing (test databases flushed between transactional tests).
DEFAULT_FEE_TERMS = FeeTerms(
    day_ahead_per_side=Decimal("0.01"),
    intraday=INTRADAY_FEE_RATES,
    futures_per_side=Decimal("0.002"),
    incentive_fund_share=Decimal("0.20"),
    rnd_fund_share=Decimal("0.10"),
)


def fund_split(fee: Decimal, incentive_share: Decimal, rnd_share: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Split one trade's fee revenue into (fee revenue kept, incentive fund, R&D fund).

    Each fund's share is rounded HALF_UP to the cent; the remainder stays in
    fee revenue. The R&D share is capped at what the incentive share leaves,
    so the kept part is never negative (0.01 at 0.5/0.5 is 0.00, 0.01, 0.00).
    """
    _require_decimal(fee, "fee")
    if fee < 0 or not is_cents(fee):
        raise ValueError(f"a fee is a non-negative amount in cents, not {fee}")
    incentive = min(to_cents(fee * incentive_share), fee)
    rnd = min(to_cents(fee * rnd_share), fee - incentive)
    return fee - incentive - rnd, incentive, rnd
