"""The pure arithmetic of cash-settled futures (market rules §2.3, §3;
docs/architecture.md "Futures"). No Django: plain values in and out, every
amount a ``Decimal`` quantised explicitly.

* Daily settlement price: VWAP of the window's trades, else the mid of the
  best bid and ask, else the previous DSP (half up to the tick).
* Initial margin = rate × reference price × worst-case GPUs × hours per
  future, summed, rounded UP to the cent (a requirement is never rounded in
  the member's favour); maintenance = 75 % of it, rounded up.
* Variation margin = (price now − price then) × quantity × hours: exact, as
  prices are cents and quantities and hours whole numbers.
* Cascading: a year becomes its four quarters, a quarter its three months,
  at the same price and GPUs (the hours of the children add up to the
  parent's, so the value is kept).
* Default fund and waterfall as ECC: the fund covers the two largest stress
  losses beyond margin; contributions in proportion to initial margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum
from typing import TypeVar

CENT = Decimal("0.01")
TICK = Decimal("0.01")
MAINTENANCE_SHARE = Decimal("0.75")
STRESS_MOVE = Decimal("0.30")
ZERO = Decimal("0.00")

K = TypeVar("K", int, str)


class Source(StrEnum):
    VWAP = "vwap"
    MID = "mid"
    PREVIOUS = "previous"
    OVERRIDE = "override"


def _cents(value: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return value.quantize(CENT, rounding=rounding)


def settlement_price(*, trades: Sequence[tuple[Decimal, int]], best_bid: Decimal | None,
                     best_ask: Decimal | None, previous: Decimal | None,
                     tick: Decimal = TICK) -> tuple[Decimal, Source] | None:
    """The DSP by the market rules' cascade; None when there is nothing to go by."""
    volume = sum(quantity for _price, quantity in trades)
    if volume > 0:
        value = sum((price * quantity for price, quantity in trades), Decimal(0))
        return (value / volume).quantize(tick, rounding=ROUND_HALF_UP), Source.VWAP
    if best_bid is not None and best_ask is not None:
        return ((best_bid + best_ask) / 2).quantize(tick, rounding=ROUND_HALF_UP), Source.MID
    if previous is not None:
        return previous, Source.PREVIOUS
    return None


@dataclass(frozen=True)
class Leg:
    """One member's stake in one future: its net position (GPUs, + long),
    the open quantity of its resting buy and sell orders, the reference
    price and the hours of the delivery period."""

    position: int
    open_buy: int
    open_sell: int
    price: Decimal
    hours: int

    @property
    def worst_quantity(self) -> int:
        """The most GPUs the member can end up holding either way if every open order fills."""
        return max(abs(self.position + self.open_buy), abs(self.position - self.open_sell))


def margin_requirement(*, legs: Sequence[Leg], rate: Decimal) -> Decimal:
    """Initial margin for the legs at ``rate`` (e.g. 0.15), rounded up to the cent."""
    if rate < 0:
        raise ValueError("a margin rate is never negative")
    exact = sum((rate * leg.price * leg.worst_quantity * leg.hours for leg in legs), Decimal(0))
    return _cents(exact, ROUND_UP)


def maintenance(initial: Decimal) -> Decimal:
    """The maintenance margin: 75 % of the initial margin, rounded up to the cent."""
    return _cents(initial * MAINTENANCE_SHARE, ROUND_UP)


def variation_margin(*, quantity: int, hours: int, price_then: Decimal, price_now: Decimal) -> Decimal:
    """What a position of ``quantity`` GPUs (+ long) gains (+) or loses (−) when the price moves."""
    amount = (price_now - price_then) * quantity * hours
    if amount != _cents(amount):
        raise ValueError("prices must be whole cents")
    return _cents(amount)


def final_settlement(*, quantity: int, hours: int, last_dsp: Decimal, final_price: Decimal) -> Decimal:
    """The last variation: from the last DSP to the final settlement price."""
    return variation_margin(quantity=quantity, hours=hours, price_then=last_dsp, price_now=final_price)


@dataclass(frozen=True, order=True)
class Period:
    """A futures period: kind "M" (month, number 1-12), "Q" (quarter, 1-4) or "Y" (number 1)."""

    kind: str
    year: int
    number: int


def children(period: Period) -> list[Period]:
    """What a period cascades into: a year its quarters, a quarter its months; a month nothing."""
    if period.kind == "Y":
        return [Period("Q", period.year, q) for q in range(1, 5)]
    if period.kind == "Q":
        first = 3 * (period.number - 1) + 1
        return [Period("M", period.year, m) for m in range(first, first + 3)]
    if period.kind == "M":
        return []
    raise ValueError(f"unknown period kind {period.kind!r}")


def cascade(period: Period, quantity: int, price: Decimal) -> list[tuple[Period, int, Decimal]]:
    """A position in ``period`` as positions in its children, at the same GPUs and price."""
    kids = children(period)
    if not kids:
        raise ValueError("a month settles in cash; it does not cascade")
    return [(child, quantity, price) for child in kids]


def stress_loss(*, legs: Sequence[Leg], move: Decimal = STRESS_MOVE) -> Decimal:
    """The larger loss of the positions (open orders not counted) if every
    price moved by ``move`` up or down at once; 0.00 if neither loses."""
    up = sum((move * leg.price * leg.position * leg.hours for leg in legs), Decimal(0))
    # Prices up: a long gains (+up), a short loses; prices down: the mirror.
    return max(_cents(max(-up, up, Decimal(0)), ROUND_UP), ZERO)


def split_pro_rata(total: Decimal, weights: Mapping[K, Decimal]) -> dict[K, Decimal]:
    """``total`` (whole cents) split in proportion to ``weights`` by largest
    remainder (ties to the smaller key); the parts sum to ``total``."""
    keys = sorted(k for k, w in weights.items() if w > 0)
    if not keys:
        return {}
    whole = sum((weights[k] for k in keys), Decimal(0))
    exact = {k: total * weights[k] / whole for k in keys}
    parts = {k: exact[k].quantize(CENT, rounding=ROUND_DOWN) for k in keys}
    left = int((total - sum(parts.values(), ZERO)) / CENT)
    for k in sorted(keys, key=lambda k: (-(exact[k] - parts[k]), k))[:left]:
        parts[k] += CENT
    return parts


def default_fund(*, members: Mapping[K, tuple[Decimal, Decimal]]) -> tuple[Decimal, dict[K, Decimal]]:
    """``members``: id -> (stress loss, initial margin). The fund covers the
    two largest stress losses beyond margin (cover 2); every member with
    initial margin contributes in proportion to it."""
    uncovered = sorted((max(loss - margin, ZERO) for loss, margin in members.values()), reverse=True)
    size = _cents(sum(uncovered[:2], ZERO), ROUND_UP)
    return size, split_pro_rata(size, {k: margin for k, (_loss, margin) in members.items()})


class Layer(StrEnum):
    MARGIN = "defaulter_margin"
    CONTRIBUTION = "defaulter_contribution"
    SKIN_IN_THE_GAME = "skin_in_the_game"
    OTHERS = "other_contributions"
    UNCOVERED = "uncovered"


def waterfall(*, loss: Decimal, margin: Decimal, contribution: Decimal, skin_in_the_game: Decimal,
              others: Mapping[K, Decimal]) -> tuple[list[tuple[Layer, Decimal]], dict[K, Decimal]]:
    """Cover ``loss`` layer by layer: the defaulter's margin, its fund
    contribution, the exchange's own capital, then the other members'
    contributions pro rata (each at most its own). Answers the amounts
    taken per layer (only those used, in order; ``uncovered`` last if the
    layers run out) and what is taken from each other member."""
    if loss < 0:
        raise ValueError("a loss is not negative")
    left = _cents(loss, ROUND_UP)
    used: list[tuple[Layer, Decimal]] = []
    for layer, available in ((Layer.MARGIN, margin), (Layer.CONTRIBUTION, contribution),
                             (Layer.SKIN_IN_THE_GAME, skin_in_the_game)):
        take = min(left, max(available, ZERO))
        if take > 0:
            used.append((layer, take))
            left -= take
    taken: dict[K, Decimal] = {}
    pool = sum((v for v in others.values() if v > 0), ZERO)
    if left > 0 and pool > 0:
        take = min(left, pool)
        taken = split_pro_rata(take, {k: v for k, v in others.items() if v > 0})
        used.append((Layer.OTHERS, take))
        left -= take
    if left > 0:
        used.append((Layer.UNCOVERED, left))
    return used, taken
