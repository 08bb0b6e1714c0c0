"""Money arithmetic of the clearing house: trade values, fees, buy reservations.

Pure functions, no Django import, so the matching service, the auction and
the property tests share one definition. Money results are ``Decimal`` EUR
with exactly two decimal places; the one exception is ``exact_fee``, the fee
of one trade side at full precision (market rules §3).

Rounding rules (docs/architecture.md, "Fees as published"):
- a trade value (price on the 0.01 tick x whole GPUs x whole hours) is always
  whole cents; a price off the tick is refused, never rounded;
- the fee of one trade side is rate x quantity x hours, exact (rates have
  four places). Fees accrue per member and calendar month and are charged
  once, rounded once: net r(A), VAT r(vat x r(A)), r = HALF_UP to the cent;
- at each trade side a member moves what the month's charge grows by,
  ``fee_held(A + f) - fee_held(A)`` (whole cents), into its fee reserve, so
  the reserve holds the month's charge exactly;
- that step is at most ``fee_step_cap(f)`` = ROUND_UP(f) + ROUND_UP(vat x
  ROUND_UP(f)) whatever the month has accrued, and ROUND_UP is subadditive,
  so the reservation at order entry, quantity x fee_step_cap(rate x hours),
  covers the fee steps of any split of the quantity into fills (two 1-GPU
  fills at 0.005 EUR may step 0.01 + 0.01 while the total's step is 0.01).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

CENT = Decimal("0.01")
# Trade fees are stored with six places (numeric(18, 6)); rates have four,
# so every fee of a rate x whole GPUs x whole hours is exact there.
FEE_PLACES = Decimal("0.000001")
# German VAT at the standard rate on the fees, in per cent (§ 12 Abs. 1 UStG;
# every member is a German company). The one definition: the invoices
# (clearing.invoicing) and the fee reserve use it.
VAT_RATE = Decimal("19.00")
VAT = VAT_RATE / 100


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


def exact_fee(rate: Decimal, quantity: int, hours: int) -> Decimal:
    """The fee one side of one trade accrues: rate x quantity x hours, exact (six places)."""
    _require_rate(rate)
    _require_count(quantity, "quantity")
    _require_count(hours, "hours")
    fee = rate * quantity * hours
    if fee != fee.quantize(FEE_PLACES, rounding=ROUND_DOWN):
        raise ValueError(f"a fee rate has at most four places, not {rate}")
    return fee.quantize(FEE_PLACES)


def fee_held(accrued: Decimal, vat: Decimal = VAT) -> Decimal:
    """H(A): what a month with ``accrued`` exact fees costs if it ends now,
    net plus VAT, each rounded once HALF_UP to the cent. Monotone in A."""
    _require_decimal(accrued, "accrued")
    if accrued < 0:
        raise ValueError(f"accrued fees cannot be negative, not {accrued}")
    net = to_cents(accrued)
    return net + to_cents(vat * net)


def fee_step(accrued: Decimal, fee: Decimal, vat: Decimal = VAT) -> Decimal:
    """What the month's charge grows by when a fee accrues: H(A + f) - H(A), whole cents, >= 0."""
    _require_decimal(fee, "fee")
    if fee < 0:
        raise ValueError(f"a fee cannot be negative, not {fee}")
    return fee_held(accrued + fee, vat) - fee_held(accrued, vat)


def fee_step_cap(fee: Decimal, vat: Decimal = VAT) -> Decimal:
    """m(f) = ROUND_UP(f) + ROUND_UP(vat x ROUND_UP(f)): at least ``fee_step(A, f)`` for every A.

    r(A + f) - r(A) is a multiple of a cent below f + 0.01, so at most
    ROUND_UP(f); the VAT part, r(vat x n2) - r(vat x n1) with n2 - n1 at
    most ROUND_UP(f), is at most ROUND_UP(vat x ROUND_UP(f)).
    """
    _require_decimal(fee, "fee")
    net = fee.quantize(CENT, rounding=ROUND_UP)
    return net + (vat * net).quantize(CENT, rounding=ROUND_UP)


def max_fee(rate: Decimal, quantity: int, hours: int, vat: Decimal = VAT) -> Decimal:
    """The most that fees at ``rate`` can add to the fee reserve over any split of ``quantity`` into fills.

    quantity x m(rate x hours): m is monotone and ROUND_UP subadditive, so a
    fill of k GPUs steps at most m(k x rate x hours) <= k x m(rate x hours),
    whatever the month has accrued before (see the module docstring).
    """
    _require_rate(rate)
    _require_count(quantity, "quantity")
    _require_count(hours, "hours")
    return (fee_step_cap(rate * hours, vat) * quantity).quantize(CENT)


def split_rounded(total: Decimal, exact_parts: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (whole cents, the rounded sum of ``exact_parts``) over
    the parts by largest remainder: each part is its exact amount cut down to
    the cent, and the cents left over go one each to the largest cut-off
    remainders (ties: first first). The parts sum to ``total`` exactly."""
    if not is_cents(total) or total < 0 or any(part < 0 for part in exact_parts) or not exact_parts:
        raise ValueError("split a non-negative amount in cents over non-negative parts")
    floors = [part.quantize(CENT, rounding=ROUND_DOWN) for part in exact_parts]
    left = int(((total - sum(floors, Decimal("0"))) / CENT).to_integral_value())
    if not 0 <= left <= len(floors):
        raise ValueError(f"{total} is not the rounded sum of {list(exact_parts)}")
    for index in sorted(range(len(floors)), key=lambda i: (-(exact_parts[i] - floors[i]), i))[:left]:
        floors[index] += CENT
    return [part.quantize(CENT) for part in floors]


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


def open_fee_reservation(open_quantity: int, hours: int, rate: Decimal) -> Decimal:
    """What a futures order (either side) holds reserved for the fees of its
    ``open_quantity`` GPUs: ``max_fee`` at its rate, 0.00 when nothing is
    open. A futures trade moves no value at the trade (variation margin does,
    after the DSP), so its fee is all an order reserves; initial margin is
    held apart (``market.services.futures``)."""
    if open_quantity == 0:
        return Decimal("0.00")
    return max_fee(rate, open_quantity, hours)


def min_sell_price(taker_rate: Decimal, tick: Decimal = CENT, vat: Decimal = VAT) -> Decimal:
    """The lowest price at which a sell order may enter: m(taker rate) per
    GPU-hour (``fee_step_cap``), rounded up to the tick; 0.03 at 0.015 and
    19 % VAT. The seller's fee reserve is filled from the trade's proceeds;
    at this price or above, V = p x k x h >= k x h x m(rate) >= m(rate x k x h),
    at least the fee step of the fill (a maker or a lowered rate steps no
    more), so a seller never owes more than the trade brings in."""
    _require_rate(taker_rate)
    return (fee_step_cap(taker_rate, vat) / tick).to_integral_value(rounding=ROUND_UP) * tick


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

    @property
    def futures(self) -> FeeRates:
        """The futures rates as maker and taker: one rate per side, either way."""
        return FeeRates(maker=self.futures_per_side, taker=self.futures_per_side)


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
    """Split a month's net fee revenue into (fee revenue kept, incentive fund, R&D fund): the sweep.

    Each fund's share is rounded HALF_UP to the cent; the remainder stays in
    fee revenue. The R&D share is capped at what the incentive share leaves,
    so the kept part is never negative (0.01 at 0.5/0.5 is 0.00, 0.01, 0.00).
    """
    _require_decimal(fee, "fee")
    if fee < 0 or not is_cents(fee):
        raise ValueError(f"fee revenue is a non-negative amount in cents, not {fee}")
    incentive = min(to_cents(fee * incentive_share), fee)
    rnd = min(to_cents(fee * rnd_share), fee - incentive)
    return fee - incentive - rnd, incentive, rnd
