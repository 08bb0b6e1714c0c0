"""The pure clearing core of the day-ahead auction (market rules §2.1).

No Django here (like :mod:`market.matching`): plain values in and out, no
clock but the solver's time limit, no I/O. ``market.services`` (issue 9) loads
the bids of one (delivery day, class, zone), calls :func:`clear` and persists
what it returns. docs/architecture.md "Day-ahead auction (issue 9)" has the
design around it.

Input
  * ``hours``: the delivery day's hour labels in delivery order
    (``market.calendar.day_hours(day)``: 23, 24 or 25 of them, ``"02A"`` and
    ``"02B"`` on the October day). The core only needs them distinct and in
    order: a block's hours are the run between its first and last label.
  * ``steps``: the hourly curves, one :class:`Step` per price/quantity step
    (API contract: each step is its own quantity at its own limit; a buy step
    takes its GPUs if the clearing price is at or below its price, a sell
    step gives them if the price is at or above).
  * ``blocks``: :class:`Block` orders: one quantity in every hour of a run of
    consecutive hours, a limit on the *average* price over the run, a minimum
    acceptance ratio (MAR, default 1: all or none) and an optional exclusive
    group (at most one block of a group is accepted; the caller scopes the
    group key to its member, class, zone and day).
  * ``rules``: the class's price bounds and tick.

Rules
  * Welfare (buyers' value minus sellers' cost) is maximised with one
    uniform price per hour.
  * **Volume rule**: of the allocations with the largest welfare, the one
    with the largest volume (units whose buy and sell limits are equal add
    no welfare and are traded).
  * **Price rule**: the prices that support the allocation in an hour form an
    interval ``[lo, hi]`` (every accepted buy step priced at or above the
    price, every rejected one at or below; the mirror for sells); the
    clearing price is its midpoint, rounded half up to the tick. Where a
    side has no next unit, the interval runs to the price bound. An hour
    without any order has no price (``None``) and volume 0; an hour with
    orders that do not cross has volume 0 and the midpoint price of the gap.
  * **Curtailment at the margin** is pro rata by quantity over the steps at
    the marginal price, in whole GPUs: each step gets the floor of its exact
    share and the GPUs left over go one each to the steps with the largest
    remainders (the largest-remainder / Hamilton rule); equal remainders go
    to the earlier entry (``priority``, smaller first), then to the step
    given first in ``steps``. The result depends only on the input, never
    on the solver.
  * Prices are ``Decimal`` on the rules' tick. Internally a price is an
    integer number of ticks; a price that is not on the tick, outside the
    bounds or not finite is refused (``ValueError``), as are malformed
    quantities, hours and blocks. (The conversion of a step's price goes
    through a binary float for speed; every price of up to 15 significant
    digits converts exactly, and any price more than a billionth of a tick
    off the grid is refused. The services refuse prices off the tick before
    they store a bid.)

Blocks (a mixed-integer programme solved with HiGHS, ``highspy``)
  1. **Master**: maximise welfare over the curve steps (continuous, one
     variable per hour, side and price level) and the blocks (an integer
     accepted quantity ``a`` with a binary ``y``: ``ceil(MAR*q)*y <= a <=
     q*y``; ``sum(y) <= 1`` per exclusive group), subject to buy = sell in
     every hour. A block's accepted quantity is the same in each of its hours.
  2. **Hours**: with the blocks' quantities fixed, each hour is cleared like
     a curve-only hour in which the accepted blocks are price-taking
     quantities (they are never curtailed); this gives the curve acceptance
     and each hour's interval ``[lo, hi]`` of supporting prices.
  3. **Prices**: the hours' midpoints, unless an accepted block would be out
     of the money there (a buy block's average price above its limit, a
     sell block's below) or a partly accepted block is not at the money (a
     block that could give or take more at those prices is a marginal order
     and sets the price: its hours' average equals its limit where the
     intervals allow). Then a small integer programme over the prices (in
     ticks, within each hour's interval) finds the prices closest to the
     midpoints (sum of absolute deviations) that keep every accepted block
     in the money, putting partly accepted blocks at the money first.
  4. **No paradoxically accepted block**: if no such prices exist, the
     accepted block with the largest loss at the midpoints (ties: the later
     entry, then the later in ``blocks``) is rejected for good (its ``y``
     fixed to 0) and the master solved again. This is the iterative
     "reject the paradoxical block, re-solve" scheme; it ends after at most
     one round per block, and it may reject more welfare than a full
     branch-and-bound over paradoxical blocks would (EUPHEMIA branches
     instead); documented, not hidden. (Rejecting every block that is
     paradoxical at any price of the intervals at once was tried: on the
     thin benchmark book it needed more rounds, not fewer.) Choosing prices
     with the fewest paradoxically rejected blocks gets at most 5 s and is
     skipped beyond that.
  5. **Paradoxically rejected blocks** are reported: a block accepted below
     its full quantity (not at all, or partly) although it is strictly in the
     money at the final prices, except a block left out because another block
     of its exclusive group was accepted (the member asked for at most one).

Time limit (``time_limit`` seconds for all HiGHS solves together)
  * If a master solve stops at the limit with a feasible solution, that best
    solution found is used (:attr:`Method.INCUMBENT`) if its prices need no
    further paradoxical rejection.
  * Otherwise (no feasible solution, or the time is up while a paradoxical
    block still has to be rejected) the auction is cleared **without blocks**
    (:attr:`Method.WITHOUT_BLOCKS`): every block is rejected and the curves
    alone set the prices. That result is always valid (no block is accepted,
    so none paradoxically); in-the-money blocks are then reported as
    paradoxically rejected. ``time_limit_hit`` says so in both cases.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from operator import itemgetter
from typing import Any, NamedTuple, TypeAlias, TypeVar

import highspy
import numpy as np

from market.matching import Side

BidId: TypeAlias = Hashable
BlockId: TypeAlias = Hashable
K = TypeVar("K", int, str)  # a party in ``allocate``: sortable

_FEWEST_PRB_SECONDS = 5.0  # at most for choosing prices with fewest paradoxically rejected blocks
_TICK_TOLERANCE = 1e-9  # of a tick: what the float conversion of a price may be off the grid


class Step(NamedTuple):
    """One step of an hourly curve (a NamedTuple: a million of them are cheap to make and read)."""

    bid: BidId  # the curve this step belongs to (one per member, class, zone and hour)
    hour: str  # the hour's label, e.g. "14", "02A"
    side: Side
    price: Decimal
    quantity: int  # GPUs, > 0
    priority: int  # time of entry: smaller is earlier (remainders at the margin)


@dataclass(frozen=True, slots=True)
class Block:
    id: BlockId
    side: Side
    first_hour: str
    last_hour: str
    price: Decimal  # limit on the average price over the block's hours
    quantity: int  # GPUs in every hour of the block
    min_acceptance_ratio: Decimal = Decimal(1)  # MAR in (0, 1]
    exclusive_group: Hashable | None = None  # scoped by the caller to (member, day, class, zone)
    priority: int = 0  # time of entry: smaller is earlier


@dataclass(frozen=True, slots=True)
class PriceRules:
    min_price: Decimal = Decimal("0.00")
    max_price: Decimal = Decimal("200.00")
    tick: Decimal = Decimal("0.01")


class Method(StrEnum):
    CURVES = "curves"  # no blocks: no solver
    OPTIMAL = "optimal"  # blocks: the master was solved to optimality in every round
    INCUMBENT = "incumbent"  # time limit: the best feasible solution found was used
    WITHOUT_BLOCKS = "without_blocks"  # time limit: fallback, every block rejected


@dataclass(frozen=True, slots=True)
class HourResult:
    hour: str
    price: Decimal | None  # None: no order at all in this hour
    volume: int  # GPUs traded (bought = sold)
    offered_buy: int  # GPUs bid to buy in the hour (curves and blocks)
    offered_sell: int  # GPUs offered for sale in the hour
    price_low: Decimal | None  # the interval of prices that support the curves' allocation
    price_high: Decimal | None


@dataclass(frozen=True, slots=True)
class BlockResult:
    id: BlockId
    accepted_quantity: int  # GPUs in each of the block's hours
    ratio: Fraction  # accepted_quantity / quantity
    average_price: Decimal | None  # the average clearing price over the block's hours
    paradoxically_rejected: bool  # accepted below its quantity although strictly in the money


@dataclass(frozen=True, slots=True)
class AuctionResult:
    hours: tuple[HourResult, ...]
    step_quantities: tuple[int, ...]  # accepted GPUs of each input step, in the order of ``steps``
    blocks: dict[BlockId, BlockResult]
    paradoxically_rejected: tuple[BlockId, ...]  # in the order of ``blocks``
    time_limit_hit: bool
    method: Method
    rounds: int  # master solves (0 without blocks)

    def hour(self, label: str) -> HourResult:
        for result in self.hours:
            if result.hour == label:
                return result
        raise KeyError(label)

    def prices(self) -> dict[str, Decimal | None]:
        return {h.hour: h.price for h in self.hours}


def accepted_by_bid(steps: Sequence[Step], result: AuctionResult) -> dict[BidId, dict[str, int]]:
    """Accepted GPUs per curve bid and hour (the API's ``accepted_quantity``), 0 where nothing was."""
    out: dict[BidId, dict[str, int]] = {}
    for step, accepted in zip(steps, result.step_quantities, strict=True):
        per_hour = out.setdefault(step.bid, {})
        per_hour[step.hour] = per_hour.get(step.hour, 0) + accepted
    return out


def welfare(steps: Sequence[Step], blocks: Sequence[Block], result: AuctionResult,
            hours: Sequence[str]) -> Decimal:
    """Buyers' value minus sellers' cost of the result at the bids' own limits (EUR per hour summed)."""
    total = Decimal(0)
    for step, accepted in zip(steps, result.step_quantities, strict=True):
        total += (step.price if step.side is Side.BUY else -step.price) * accepted
    position = {label: i for i, label in enumerate(hours)}
    for block in blocks:
        n = position[block.last_hour] - position[block.first_hour] + 1
        accepted = result.blocks[block.id].accepted_quantity
        total += (block.price if block.side is Side.BUY else -block.price) * accepted * n
    return total


# ---------------------------------------------------------------------------------------------
# Input checks and conversion to ticks


class _Grid:
    """Prices as integer ticks; grid index g = tick - min_tick + 1, with index 0 standing for a
    price-taking sell (below every price) and index G - 1 for a price-taking buy (above every price)."""

    def __init__(self, rules: PriceRules) -> None:
        tick = rules.tick
        if not (tick.is_finite() and tick > 0):
            raise ValueError("tick must be a positive finite Decimal")
        self.tick = tick
        self.min_tick = self.exact_ticks(rules.min_price, "min_price")
        self.max_tick = self.exact_ticks(rules.max_price, "max_price")
        if self.min_tick < 0 or self.max_tick < self.min_tick:
            raise ValueError("price bounds must satisfy 0 <= min_price <= max_price")
        self.size = self.max_tick - self.min_tick + 3

    def exact_ticks(self, price: Decimal, what: str) -> int:
        if not isinstance(price, Decimal) or not price.is_finite():
            raise ValueError(f"{what} must be a finite Decimal")
        ticks = price / self.tick
        if ticks != ticks.to_integral_value():
            raise ValueError(f"{what} {price} is not on the tick {self.tick}")
        return int(ticks)

    def block_ticks(self, price: Decimal, what: str) -> int:
        ticks = self.exact_ticks(price, what)
        if not self.min_tick <= ticks <= self.max_tick:
            raise ValueError(f"{what} {price} is outside the price bounds")
        return ticks

    def step_ticks(self, prices: Sequence[Decimal]) -> np.ndarray:
        try:
            as_float = np.fromiter(map(float, prices), dtype=np.float64, count=len(prices))
        except (TypeError, ValueError) as exc:
            raise ValueError("every step price must be a finite Decimal") from exc
        if set(map(type, prices)) - {Decimal} or not np.all(np.isfinite(as_float)):
            raise ValueError("every step price must be a finite Decimal")
        scaled = as_float / float(self.tick)
        ticks = np.rint(scaled)
        if np.any(np.abs(scaled - ticks) > _TICK_TOLERANCE):
            bad = prices[int(np.argmax(np.abs(scaled - ticks) > _TICK_TOLERANCE))]
            raise ValueError(f"step price {bad} is not on the tick {self.tick}")
        out = ticks.astype(np.int64)
        if out.size and (out.min() < self.min_tick or out.max() > self.max_tick):
            raise ValueError("a step price is outside the price bounds")
        return out

    def price(self, ticks: int) -> Decimal:
        return (self.tick * ticks).quantize(self.tick)


@dataclass(slots=True)
class _Steps:
    """The steps as columns."""

    hour: np.ndarray  # int64 index into hours
    is_buy: np.ndarray  # bool
    ticks: np.ndarray  # int64
    quantity: np.ndarray  # int64
    priority: np.ndarray  # int64


def _columns(hours: Sequence[str], steps: Sequence[Step], grid: _Grid) -> _Steps:
    n = len(steps)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Steps(empty, np.zeros(0, dtype=bool), empty, empty, empty)
    # one column at a time: zip(*steps) over a million tuples is ten times slower
    hour_labels = list(map(itemgetter(1), steps))
    sides = list(map(itemgetter(2), steps))
    prices = list(map(itemgetter(3), steps))
    quantities = list(map(itemgetter(4), steps))
    priorities = list(map(itemgetter(5), steps))
    position = {label: i for i, label in enumerate(hours)}
    try:
        hour = np.fromiter(map(position.__getitem__, hour_labels), dtype=np.int64, count=n)
    except KeyError as exc:
        raise ValueError(f"step hour {exc.args[0]!r} is not an hour of the day") from exc
    buys = sides.count(Side.BUY)  # compares as str (no Enum hashing: a Python call per element)
    if buys + sides.count(Side.SELL) != n:
        raise ValueError("step side must be Side.BUY or Side.SELL")
    is_buy = np.fromiter(map(Side.BUY.__eq__, sides), dtype=bool, count=n)
    try:
        quantity = np.fromiter(quantities, dtype=np.int64, count=n)
        priority = np.fromiter(priorities, dtype=np.int64, count=n)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError("step quantity and priority must be integers") from exc
    if set(map(type, quantities)) - {int} or set(map(type, priorities)) - {int}:
        raise ValueError("step quantity and priority must be int")
    if quantity.min() <= 0:
        raise ValueError("every step quantity must be a positive number of GPUs")
    return _Steps(hour, is_buy, grid.step_ticks(prices), quantity, priority)


@dataclass(slots=True)
class _Block:
    block: Block
    index: int
    side_buy: bool
    first: int
    last: int
    limit: int  # ticks
    quantity: int
    min_quantity: int  # ceil(MAR * quantity)

    @property
    def hours(self) -> int:
        return self.last - self.first + 1


def _blocks(hours: Sequence[str], blocks: Sequence[Block], grid: _Grid) -> list[_Block]:
    position = {label: i for i, label in enumerate(hours)}
    seen: set[BlockId] = set()
    out = []
    for index, block in enumerate(blocks):
        if block.id in seen:
            raise ValueError(f"block id {block.id!r} appears twice")
        seen.add(block.id)
        if block.side not in (Side.BUY, Side.SELL):
            raise ValueError("block side must be Side.BUY or Side.SELL")
        if block.first_hour not in position or block.last_hour not in position:
            raise ValueError(f"block {block.id!r}: its hours are not hours of the day")
        first, last = position[block.first_hour], position[block.last_hour]
        if first > last:
            raise ValueError(f"block {block.id!r}: first_hour is after last_hour")
        if type(block.quantity) is not int or block.quantity <= 0:
            raise ValueError(f"block {block.id!r}: quantity must be a positive number of GPUs")
        mar = block.min_acceptance_ratio
        if not isinstance(mar, Decimal) or not mar.is_finite() or not Decimal(0) < mar <= Decimal(1):
            raise ValueError(f"block {block.id!r}: min_acceptance_ratio must be a Decimal in (0, 1]")
        minimum = int((mar * block.quantity).to_integral_value(rounding=ROUND_CEILING))
        out.append(_Block(block, index, block.side is Side.BUY, first, last,
                          grid.block_ticks(block.price, f"block {block.id!r} price"), block.quantity,
                          max(1, minimum)))
    return out


# ---------------------------------------------------------------------------------------------
# Curves per hour, with fixed price-taking block quantities


@dataclass(slots=True)
class _Hours:
    """What clearing the curves of every hour gives (grid indices; see :class:`_Grid`)."""

    volume: np.ndarray  # int64 per hour
    has_orders: np.ndarray  # bool per hour
    low: np.ndarray  # int64 ticks per hour, the supporting interval (clipped to the bounds)
    high: np.ndarray
    accepted: np.ndarray  # int64 per step
    offered_buy: np.ndarray
    offered_sell: np.ndarray


def _level_sums(steps: _Steps, n_hours: int, grid: _Grid, buy: bool) -> np.ndarray:
    mask = steps.is_buy if buy else ~steps.is_buy
    key = steps.hour[mask] * grid.size + (steps.ticks[mask] - grid.min_tick + 1)
    sums = np.bincount(key, weights=steps.quantity[mask], minlength=n_hours * grid.size)
    return sums.astype(np.int64).reshape(n_hours, grid.size)


def _clear_hours(steps: _Steps, n_hours: int, grid: _Grid, buy_taken: np.ndarray,
                 sell_taken: np.ndarray, levels: tuple[np.ndarray, np.ndarray] | None = None) -> _Hours:
    """Clear every hour's curves exactly, with ``buy_taken``/``sell_taken`` GPUs per hour of
    price-taking demand and supply (accepted blocks)."""
    size = grid.size
    buy, sell = levels if levels is not None else (_level_sums(steps, n_hours, grid, True),
                                                    _level_sums(steps, n_hours, grid, False))
    buy = buy.copy()
    sell = sell.copy()
    buy[:, size - 1] += buy_taken
    sell[:, 0] += sell_taken
    demand = np.cumsum(buy[:, ::-1], axis=1)[:, ::-1]  # GPUs bid at or above each price
    supply = np.cumsum(sell, axis=1)  # GPUs offered at or below each price
    volume = np.minimum(demand, supply).max(axis=1)
    v = volume[:, None]
    # b(V): price of the V-th most expensive buy unit; s(V): of the V-th cheapest sell unit.
    b_v = np.where(volume > 0, (demand >= v).sum(axis=1) - 1, size)  # b(0) = +infinity
    b_next = (demand >= v + 1).sum(axis=1) - 1  # -1: no further buy unit
    s_v = size - (supply >= v).sum(axis=1)  # s(0) = index 0 (-infinity)
    s_next = size - (supply >= v + 1).sum(axis=1)  # size: no further sell unit
    low = np.clip(np.maximum(s_v, b_next), 1, size - 2) + grid.min_tick - 1
    high = np.clip(np.minimum(b_v, s_next), 1, size - 2) + grid.min_tick - 1
    offered_buy = demand[:, 0]
    offered_sell = supply[:, size - 1]
    has_orders = (offered_buy + offered_sell) > 0

    accepted = np.zeros(steps.quantity.shape[0], dtype=np.int64)
    if accepted.size:
        index = steps.ticks - grid.min_tick + 1
        b_at, s_at = b_v[steps.hour], s_v[steps.hour]
        in_volume = volume[steps.hour] > 0
        full = in_volume & np.where(steps.is_buy, index > b_at, index < s_at)
        accepted[full] = steps.quantity[full]
        marginal = np.nonzero(in_volume & np.where(steps.is_buy, index == b_at, index == s_at))[0]
        marginal_hour, marginal_buy = steps.hour[marginal], steps.is_buy[marginal]
        for h in np.unique(marginal_hour):
            for is_buy in (True, False):
                members = marginal[(marginal_hour == h) & (marginal_buy == is_buy)]
                if not members.size:
                    continue
                g = int(b_v[h] if is_buy else s_v[h])
                beyond = int(demand[h, g + 1]) if is_buy else int(supply[h, g - 1])
                _pro_rata(accepted, members, int(volume[h]) - beyond, steps)
    # A price-taking quantity is never curtailed (the master balanced every hour).
    if np.any((buy_taken > 0) & (b_v == size - 1) & (demand[:, size - 1] > volume)) or \
            np.any((sell_taken > 0) & (s_v == 0) & (supply[:, 0] > volume)):
        raise AssertionError("accepted blocks cannot be balanced by the curves")
    return _Hours(volume, has_orders, low, high, accepted, offered_buy, offered_sell)


def _pro_rata(accepted: np.ndarray, members: np.ndarray, amount: int, steps: _Steps) -> None:
    """Share ``amount`` GPUs over the steps ``members`` of one price level, largest remainder."""
    quantity = steps.quantity[members]
    total = int(quantity.sum())
    if amount >= total:
        accepted[members] = quantity
        return
    exact = quantity * amount
    base = exact // total
    remainder = exact % total
    left = amount - int(base.sum())
    if left:
        # largest remainder first, then earlier entry, then earlier in the input
        order = np.lexsort((members, steps.priority[members], -remainder))
        base[order[:left]] += 1
    accepted[members] = base


# ---------------------------------------------------------------------------------------------
# Blocks: the master MIP, the prices, and paradoxical blocks


class _Master(NamedTuple):
    quantities: list[int] | None  # accepted GPUs per block; None: no feasible solution
    hit_limit: bool


def _solve_master(levels: tuple[np.ndarray, np.ndarray], n_hours: int, grid: _Grid, blocks: list[_Block],
                  rejected: set[int], time_limit: float) -> _Master:
    buy, sell = levels
    costs: list[np.ndarray] = []
    uppers: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for sums, sign in ((buy, 1.0), (sell, -1.0)):
        h, g = np.nonzero(sums)
        costs.append(sign * (g + grid.min_tick - 1).astype(np.float64))
        uppers.append(sums[h, g].astype(np.float64))
        rows.append(h.astype(np.int32))
        values.append(np.full(h.shape[0], sign))
    n_curve = int(sum(c.shape[0] for c in costs))
    starts = list(range(n_curve + 1))  # one nonzero per curve column
    index = list(np.concatenate(rows).tolist()) if n_curve else []
    value = list(np.concatenate(values).tolist()) if n_curve else []
    cost = list(np.concatenate(costs).tolist()) if n_curve else []
    lower = [0.0] * n_curve
    upper = list(np.concatenate(uppers).tolist()) if n_curve else []
    integrality = [highspy.HighsVarType.kContinuous] * n_curve

    n_rows = n_hours
    row_lower = [0.0] * n_hours
    row_upper = [0.0] * n_hours
    link_rows = []
    for _ in blocks:  # rows: a - q*y <= 0 and a - min*y >= 0
        link_rows.append(n_rows)
        row_lower += [-highspy.kHighsInf, 0.0]
        row_upper += [0.0, highspy.kHighsInf]
        n_rows += 2
    groups: dict[Hashable, int] = {}
    for block in blocks:
        group = block.block.exclusive_group
        if group is not None and group not in groups:
            groups[group] = n_rows
            row_lower.append(-highspy.kHighsInf)
            row_upper.append(1.0)
            n_rows += 1
    for block, link in zip(blocks, link_rows, strict=True):
        sign = 1.0 if block.side_buy else -1.0
        # the accepted quantity a
        rows_a = [*range(block.first, block.last + 1), link, link + 1]
        index += rows_a
        value += [sign] * block.hours + [1.0, 1.0]
        starts.append(starts[-1] + len(rows_a))
        cost.append(sign * block.limit * block.hours)
        lower.append(0.0)
        upper.append(float(block.quantity))
        integrality.append(highspy.HighsVarType.kInteger)
        # the decision y
        rows_y = [link, link + 1]
        values_y = [-float(block.quantity), -float(block.min_quantity)]
        group = block.block.exclusive_group
        if group is not None:
            rows_y.append(groups[group])
            values_y.append(1.0)
        index += rows_y
        value += values_y
        starts.append(starts[-1] + len(rows_y))
        cost += [0.0]
        lower.append(0.0)
        upper.append(0.0 if block.index in rejected else 1.0)
        integrality.append(highspy.HighsVarType.kInteger)

    lp = highspy.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = n_rows
    lp.col_cost_ = cost
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.integrality_ = integrality
    solver = _highs(time_limit)
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    feasible = solver.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
    hit = status == highspy.HighsModelStatus.kTimeLimit
    if status == highspy.HighsModelStatus.kOptimal or (hit and feasible):
        col = solver.getSolution().col_value
        quantities = [int(round(col[n_curve + 2 * i])) for i in range(len(blocks))]
        return _Master(quantities, hit)
    if hit:
        return _Master(None, True)
    raise AssertionError(f"the auction's master problem ended with {solver.modelStatusToString(status)}")


def _highs(time_limit: float) -> highspy.Highs:
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("time_limit", max(time_limit, 0.001))
    solver.setOptionValue("mip_rel_gap", 0.0)
    solver.setOptionValue("mip_abs_gap", 1e-6)
    # No "threads" option: HiGHS fixes its thread pool once per process, and a solver asking for
    # another count after that refuses to run. Its MIP search is deterministic either way.
    solver.setOptionValue("random_seed", 0)
    return solver


def _midpoints(low: np.ndarray, high: np.ndarray) -> list[int]:
    # half up in ticks: the midpoint of two non-negative tick counts
    return [(int(lo) + int(hi) + 1) // 2 for lo, hi in zip(low, high, strict=True)]


def _money(block: _Block, prices: Sequence[int]) -> int:
    """How far the block is in the money at ``prices`` (ticks summed over its hours); < 0: out."""
    total = sum(prices[block.first:block.last + 1])
    limit = block.limit * block.hours
    return limit - total if block.side_buy else total - limit


def _worst(block: _Block, hours: _Hours) -> int:
    """How far the block is in the money at the least favourable prices the hours' intervals allow."""
    if block.side_buy:
        return block.limit * block.hours - int(hours.high[block.first:block.last + 1].sum())
    return int(hours.low[block.first:block.last + 1].sum()) - block.limit * block.hours


def _best(block: _Block, hours: _Hours) -> int:
    """How far the block is in the money at the most favourable prices the hours' intervals allow."""
    if block.side_buy:
        return block.limit * block.hours - int(hours.low[block.first:block.last + 1].sum())
    return int(hours.high[block.first:block.last + 1].sum()) - block.limit * block.hours


def _left_out(blocks: list[_Block], quantities: list[int]) -> list[_Block]:
    """Blocks accepted below their quantity, except those left out because another block of their
    exclusive group was accepted (the member asked for at most one)."""
    chosen = {b.block.exclusive_group for b, q in zip(blocks, quantities, strict=True)
              if q > 0 and b.block.exclusive_group is not None}
    return [b for b, q in zip(blocks, quantities, strict=True) if q < b.quantity
            and not (q == 0 and b.block.exclusive_group in chosen)]


class _OutOfTime(Exception):
    """A price problem stopped at its time limit."""


class _PriceModel:
    """The prices (integer ticks) within the hours' intervals, with every accepted block in the
    money and the given rejected blocks out of it; more constraints and objectives are added by
    the stages of :func:`_price_hours`."""

    def __init__(self, hours: _Hours, accepted: list[_Block], kept_out: list[_Block], time_limit: float) -> None:
        self.solver = solver = _highs(time_limit)
        self.p = [solver.addIntegral(lb=float(lo), ub=float(hi)) for lo, hi in zip(hours.low, hours.high,
                                                                                   strict=True)]
        for block in accepted:
            solver.addConstr(self.money(block) >= 0.0)
        for block in kept_out:
            solver.addConstr(self.money(block) <= 0.0)

    def money(self, block: _Block) -> Any:  # a highspy linear expression
        total = sum(self.p[block.first:block.last + 1])
        limit = float(block.limit * block.hours)
        return limit - total if block.side_buy else total - limit

    def solve(self, objective: object, sense: str = "minimize") -> float | None:
        """The optimum, or None when infeasible; raises _OutOfTime at the time limit."""
        getattr(self.solver, sense)(objective)
        status = self.solver.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None
        if status == highspy.HighsModelStatus.kOptimal:
            return float(self.solver.getInfo().objective_function_value)
        raise _OutOfTime(self.solver.modelStatusToString(status))

    def prices(self) -> list[int]:
        col = self.solver.getSolution().col_value
        return [int(round(col[h])) for h in range(len(self.p))]

    def bound_errors(self, partial: list[_Block], bound: int | None) -> Any:
        """Add e_b >= |money_b| for the partly accepted blocks and, with a bound, sum(e) <= bound."""
        inf = highspy.kHighsInf
        errors = []
        for block in partial:
            e = self.solver.addVariable(lb=0.0, ub=inf)
            self.solver.addConstr(e >= self.money(block))
            self.solver.addConstr(e >= -1.0 * self.money(block))
            errors.append(e)
        total = sum(errors)
        if bound is not None:
            self.solver.addConstr(total <= bound + 0.5)
        return total


def _price_hours(hours: _Hours, blocks: list[_Block], quantities: list[int], time_limit: float) -> list[int] | None:
    """Prices (ticks) that support the allocation, or None when every price in the hours' intervals
    leaves some accepted block out of the money (a paradoxically accepted block).

    The supporting prices are the hours' intervals cut by the accepted blocks (each in the money)
    and, as far as possible, with every partly accepted block at the money, and then with as few
    blocks left out while in the money as possible (a rejected block is treated like a rejected
    curve step: the price should not make it want to trade). Each hour's price is the
    midpoint (half up to the tick) of the prices that hour can take in that set; where the blocks
    couple hours so that these midpoints together leave the set, the prices in the set nearest to
    them are taken (smallest largest distance, then smallest sum of distances).

    Stages that run out of time are skipped (fewest paradoxically rejected blocks) or answer the
    prices found so far (which support the allocation), so this never fails for lack of time
    once prices exist at all."""
    accepted = [b for b, q in zip(blocks, quantities, strict=True) if q > 0]
    partial = [b for b in accepted if quantities[b.index] < b.quantity]
    left_out = _left_out(blocks, quantities)
    # Left-out blocks in the money at every price of the intervals are paradoxically rejected
    # whatever the prices, those out of it at every price never: only the others are choices.
    undecided = [b for b in left_out if _worst(b, hours) <= 0 < _best(b, hours)]
    if not partial and not undecided and all(_worst(b, hours) >= 0 for b in accepted):
        return _midpoints(hours.low, hours.high)  # the blocks cut nothing off
    deadline = time.monotonic() + time_limit

    def left() -> float:
        return max(deadline - time.monotonic(), 0.001)

    # Stage 1: is any price feasible; partly accepted blocks as near the money as possible.
    first = _PriceModel(hours, accepted, [], left())
    try:
        if partial:
            best = first.solve(first.bound_errors(partial, None))
        else:
            best = first.solve(first.p[0])
    except _OutOfTime:
        return None
    if best is None:
        return None
    error_bound = round(best) if partial else None
    known = first.prices()  # supports the allocation: the answer if a later stage runs out of time

    # Stage 2: as few undecided blocks left in the money as possible (z_b = 1 lets b be in it).
    kept_out: list[_Block] = []
    if undecided:
        model = _PriceModel(hours, accepted, [], min(left(), _FEWEST_PRB_SECONDS))
        if partial:
            model.bound_errors(partial, error_bound)
        flags = []
        for block in undecided:
            z = model.solver.addBinary()
            margin = float(_best(block, hours) + 1)
            model.solver.addConstr(model.money(block) <= margin * z)
            flags.append(z)
        try:
            if model.solve(sum(flags)) is not None:
                chosen = model.solver.getSolution().col_value
                kept_out = [b for b, z in zip(undecided, flags, strict=True) if chosen[z.index] < 0.5]
                known = model.prices()
        except _OutOfTime:
            pass  # skipped: the paradoxically rejected blocks are reported as they fall

    # Stage 3: each hour's range in that set, its midpoint, and the nearest prices if needed.
    model = _PriceModel(hours, accepted, kept_out, left())
    if partial:
        model.bound_errors(partial, error_bound)
    try:
        low, high = [], []
        for h in range(len(model.p)):
            least = model.solve(model.p[h], "minimize")
            most = model.solve(model.p[h], "maximize")
            if least is None or most is None:
                return known
            low.append(round(least))
            high.append(round(most))
        middle = _midpoints(np.array(low), np.array(high))

        def supports(prices: list[int]) -> bool:
            return all(_money(b, prices) >= 0 for b in accepted) and \
                all(_money(b, prices) <= 0 for b in kept_out) and \
                (error_bound is None or sum(abs(_money(b, prices)) for b in partial) <= error_bound)

        if supports(middle):
            return middle
        inf = highspy.kHighsInf
        d = [model.solver.addVariable(lb=0.0, ub=inf) for _ in model.p]
        t = model.solver.addVariable(lb=0.0, ub=inf)
        for h, price in enumerate(model.p):
            model.solver.addConstr(d[h] >= price - middle[h])
            model.solver.addConstr(d[h] >= middle[h] - price)
            model.solver.addConstr(t >= d[h])
        largest = model.solve(t)
        if largest is None:
            return known
        model.solver.addConstr(t <= round(largest) + 0.5)
        if model.solve(sum(d)) is None:
            return known
        prices = model.prices()
    except _OutOfTime:
        return known
    if not supports(prices):  # exact check of the solver's answer
        raise AssertionError("the price problem answered prices that do not support the blocks")
    return prices


def _paradoxical(blocks: list[_Block], quantities: list[int], hours: _Hours) -> _Block:
    """The accepted block to reject: largest loss at the midpoints, then the later entry, then later input."""
    middle = _midpoints(hours.low, hours.high)
    accepted = [b for b, q in zip(blocks, quantities, strict=True) if q > 0]
    return max(accepted, key=lambda b: (-_money(b, middle), b.block.priority, b.index))


def _taken(blocks: list[_Block], quantities: list[int], n_hours: int) -> tuple[np.ndarray, np.ndarray]:
    buy = np.zeros(n_hours, dtype=np.int64)
    sell = np.zeros(n_hours, dtype=np.int64)
    for block, quantity in zip(blocks, quantities, strict=True):
        (buy if block.side_buy else sell)[block.first:block.last + 1] += quantity
    return buy, sell


# ---------------------------------------------------------------------------------------------


def clear(*, hours: Sequence[str], steps: Sequence[Step], blocks: Sequence[Block] = (),
          rules: PriceRules | None = None, time_limit: float = 30.0) -> AuctionResult:
    """Clear one auction (one delivery day, class and zone). See the module docstring for the rules."""
    hours = tuple(hours)
    if len(set(hours)) != len(hours) or not hours:
        raise ValueError("hours must be distinct labels, at least one")
    grid = _Grid(rules or PriceRules())
    n_hours = len(hours)
    columns = _columns(hours, steps, grid)
    parsed = _blocks(hours, blocks, grid)
    levels = (_level_sums(columns, n_hours, grid, True), _level_sums(columns, n_hours, grid, False))
    offered_buy_blocks, offered_sell_blocks = _taken(parsed, [b.quantity for b in parsed], n_hours)

    quantities = [0] * len(parsed)
    final: list[int] | None = None
    method = Method.CURVES
    rounds = 0
    hit = False
    if parsed:
        deadline = time.monotonic() + time_limit
        rejected: set[int] = set()
        method = Method.OPTIMAL
        while True:
            if deadline - time.monotonic() <= 0:  # no time left for a master solve
                hit, method = True, Method.WITHOUT_BLOCKS
                break
            rounds += 1
            master = _solve_master(levels, n_hours, grid, parsed, rejected, deadline - time.monotonic())
            hit = hit or master.hit_limit
            if master.quantities is None:
                method = Method.WITHOUT_BLOCKS
                break
            candidate = master.quantities
            buy_taken, sell_taken = _taken(parsed, candidate, n_hours)
            cleared = _clear_hours(columns, n_hours, grid, buy_taken, sell_taken, levels)
            remaining = deadline - time.monotonic()
            # The price problem is tiny (one integer per hour); it gets at least a second.
            final = _price_hours(cleared, parsed, candidate, max(remaining, 1.0))
            if final is not None:
                quantities = candidate
                if master.hit_limit:
                    method = Method.INCUMBENT
                break
            if master.hit_limit or remaining <= 0:
                hit = True
                method = Method.WITHOUT_BLOCKS
                break
            rejected.add(_paradoxical(parsed, candidate, cleared).index)

    buy_taken, sell_taken = _taken(parsed, quantities, n_hours)
    if final is None or not any(quantities):
        cleared = _clear_hours(columns, n_hours, grid, buy_taken, sell_taken, levels)
        final = _price_hours(cleared, parsed, quantities, max(time_limit, 1.0)) if parsed else None
        if final is None:  # no block accepted, so no block can make the prices infeasible
            final = _midpoints(cleared.low, cleared.high)

    has_orders = cleared.has_orders | (offered_buy_blocks + offered_sell_blocks > 0)
    hour_results = []
    for h, label in enumerate(hours):
        priced = bool(has_orders[h])
        hour_results.append(HourResult(
            hour=label,
            price=grid.price(final[h]) if priced else None,
            volume=int(cleared.volume[h]),
            offered_buy=int(cleared.offered_buy[h] - buy_taken[h] + offered_buy_blocks[h]),
            offered_sell=int(cleared.offered_sell[h] - sell_taken[h] + offered_sell_blocks[h]),
            price_low=grid.price(int(cleared.low[h])) if priced else None,
            price_high=grid.price(int(cleared.high[h])) if priced else None,
        ))
    block_results: dict[BlockId, BlockResult] = {}
    paradoxically_rejected = []
    left_out = {b.index for b in _left_out(parsed, quantities)}
    for block, quantity in zip(parsed, quantities, strict=True):
        prj = block.index in left_out and _money(block, final) > 0
        if prj:
            paradoxically_rejected.append(block.block.id)
        average = (grid.tick * sum(final[block.first:block.last + 1]) / block.hours).quantize(
            Decimal("0.000001"), rounding=ROUND_HALF_UP)
        block_results[block.block.id] = BlockResult(
            id=block.block.id, accepted_quantity=quantity, ratio=Fraction(quantity, block.quantity),
            average_price=average, paradoxically_rejected=prj)
    return AuctionResult(
        hours=tuple(hour_results),
        step_quantities=tuple(cleared.accepted.tolist()),
        blocks=block_results,
        paradoxically_rejected=tuple(paradoxically_rejected),
        time_limit_hit=hit,
        method=method,
        rounds=rounds,
    )


# ---------------------------------------------------------------------------------------------
# Allocation of an hour's sellers to its buyers (market rules §4: pro rata and deterministic)


def allocate(buyers: Mapping[K, int], sellers: Mapping[K, int]) -> dict[tuple[K, K], int]:
    """Split one hour's traded GPUs between buyers and sellers pro rata.

    ``buyers`` and ``sellers`` map a party (any sortable key, e.g. an
    organisation id) to the GPUs it bought or sold in the hour; both sum to
    the volume ``V``. The cell ``(buyer i, seller j)`` gets
    ``B_i * S_j / V`` GPUs rounded down or up, so that every row sums to
    ``B_i`` and every column to ``S_j`` (a matrix rounding; it always
    exists). Which cells are rounded up is a 0/1 transportation problem that
    maximises the cut-off fractional parts, ties to the lower (buyer,
    seller) pair; its constraint matrix is totally unimodular, so HiGHS
    answers whole numbers. The same input gives the same split. Cells of 0
    GPUs are left out.
    """
    buyer_keys = sorted(k for k, q in buyers.items() if q)
    seller_keys = sorted(k for k, q in sellers.items() if q)
    if any(q < 0 for q in (*buyers.values(), *sellers.values())):
        raise ValueError("quantities are never negative")
    volume = sum(buyers[k] for k in buyer_keys)
    if volume != sum(sellers[k] for k in seller_keys):
        raise ValueError("buyers and sellers must trade the same volume")
    if volume == 0:
        return {}
    out: dict[tuple[K, K], int] = {}
    row_left = {}
    col_left = {k: sellers[k] for k in seller_keys}
    cells: list[tuple[int, int, int]] = []  # (remainder, i, j) of cells with a fractional share
    for i, b in enumerate(buyer_keys):
        row_left[b] = buyers[b]
        for j, s in enumerate(seller_keys):
            whole, rest = divmod(buyers[b] * sellers[s], volume)
            if whole:
                out[b, s] = whole
            row_left[b] -= whole
            col_left[s] -= whole
            if rest:
                cells.append((rest, i, j))
    if cells:
        n = len(cells)
        # Integer weights: the remainder first, then the earlier (buyer, seller) pair.
        ranked = sorted(range(n), key=lambda c: (cells[c][1], cells[c][2]))
        tie = {c: n - 1 - rank for rank, c in enumerate(ranked)}
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(buyer_keys) + len(seller_keys)
        lp.col_cost_ = [float(cells[c][0] * n + tie[c]) for c in range(n)]
        lp.col_lower_ = [0.0] * n
        lp.col_upper_ = [1.0] * n
        bounds = [float(row_left[b]) for b in buyer_keys] + [float(col_left[s]) for s in seller_keys]
        lp.row_lower_ = bounds
        lp.row_upper_ = bounds
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = [2 * c for c in range(n + 1)]
        lp.a_matrix_.index_ = [row for _rest, i, j in cells for row in (i, len(buyer_keys) + j)]
        lp.a_matrix_.value_ = [1.0] * (2 * n)
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        solver = _highs(60.0)
        solver.passModel(lp)
        solver.run()
        if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise AssertionError(f"allocation: {solver.modelStatusToString(solver.getModelStatus())}")
        for c, taken in enumerate(solver.getSolution().col_value):
            if round(taken):
                _rest, i, j = cells[c]
                key = (buyer_keys[i], seller_keys[j])
                out[key] = out.get(key, 0) + 1
    return {key: out[key] for key in sorted(out)}


__all__ = [
    "AuctionResult", "Block", "BlockResult", "HourResult", "Method", "PriceRules", "Side", "Step",
    "accepted_by_bid", "allocate", "clear", "welfare",
]
