"""The sell-side capacity rule (market rules §3, docs/architecture.md
"Sell-side capacity"). Pure Python, no Django import, so that it can be
property-tested against a brute force on its own.

For one organisation, GPU class and delivery hour:

- ``capacity`` maps a federal state (``DE-BY`` …) to ``T_s``, the GPUs of the
  class at the organisation's sites in that state; ``T`` is their sum;
- ``Commitments(de=X_DE, states={s: X_s})`` are what the organisation has
  sold or offers in the ``DE`` instrument and in each state's instrument of
  that hour.

A ``DE-s`` commitment can only be delivered from capacity in state ``s``; a
``DE`` commitment from any state's spare capacity. The
commitments are feasible iff ``X_s <= T_s`` for every state and
``X_DE + Σ_s X_s <= T``. (That is Hall's condition for assigning the DE
GPUs to states: the only state sets whose capacity the DE commitment can
exhaust are "all of them", and each state on its own must hold its own
commitment.)

The commitment in one instrument is ``max(0, open sell quantity - net
position)``: capacity bought earlier may be resold without sites, and
capacity already sold (a short position) stays committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DE = "DE"


@dataclass(frozen=True)
class Commitments:
    """``X_DE`` and ``X_s`` of one organisation, class and hour (GPUs >= 0)."""

    de: int = 0
    states: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.de < 0 or any(quantity < 0 for quantity in self.states.values()):
            raise ValueError("commitments are never negative")

    @property
    def total(self) -> int:
        return self.de + sum(self.states.values())

    def plus(self, zone: str, quantity: int) -> Commitments:
        """These commitments with ``quantity`` more GPUs in ``zone``."""
        if zone == DE:
            return Commitments(de=self.de + quantity, states=self.states)
        states = dict(self.states)
        states[zone] = states.get(zone, 0) + quantity
        return Commitments(de=self.de, states=states)


def commitment(*, open_sell: int, net_position: int) -> int:
    """What one instrument's sells and position commit of the organisation's
    capacity: open sell quantity beyond a long position, plus a short one."""
    return max(0, open_sell - net_position)


def is_feasible(capacity: Mapping[str, int], commitments: Commitments) -> bool:
    """Whether the sites in ``capacity`` can deliver every commitment."""
    if any(quantity > capacity.get(state, 0) for state, quantity in commitments.states.items()):
        return False
    return commitments.total <= sum(capacity.values())


def free_quantity(capacity: Mapping[str, int], commitments: Commitments, zone: str) -> int:
    """The most GPUs a new sell in ``zone`` may add so that the commitments
    stay feasible; 0 when they are not feasible even without it."""
    if not is_feasible(capacity, commitments):
        return 0
    spare_total = sum(capacity.values()) - commitments.total
    if zone == DE:
        return spare_total
    spare_state = capacity.get(zone, 0) - commitments.states.get(zone, 0)
    return min(spare_state, spare_total)


@dataclass(frozen=True)
class SellCheck:
    """The answer for one new sell in one instrument."""

    accepted: bool
    # The most the organisation could sell in this instrument right now:
    # the resale of its long position plus the zone's free capacity.
    sellable: int


def check_sell(
    capacity: Mapping[str, int],
    others: Commitments,
    *,
    zone: str,
    open_sell: int,
    net_position: int,
    quantity: int,
) -> SellCheck:
    """Whether a new sell of ``quantity`` in ``zone``'s instrument is accepted.

    ``others`` are the commitments in the hour's other instruments (this one
    left out); ``open_sell`` and ``net_position`` describe this instrument
    before the new order. A sell that does not raise this instrument's
    commitment (a resale of bought capacity) is accepted even when the
    commitments were already infeasible, because it changes nothing that
    must be delivered; any other is accepted iff the commitments with it are
    feasible.
    """
    if quantity < 0:
        raise ValueError("quantity is never negative")
    before = commitment(open_sell=open_sell, net_position=net_position)
    after = commitment(open_sell=open_sell + quantity, net_position=net_position)
    resale = max(0, net_position - open_sell)
    sellable = resale + free_quantity(capacity, others.plus(zone, before), zone)
    accepted = after == before or is_feasible(capacity, others.plus(zone, after))
    # accepted == (quantity <= sellable): the commitment grows by what the
    # quantity exceeds the resale part, and feasibility is monotone in it.
    return SellCheck(accepted=accepted, sellable=sellable)
