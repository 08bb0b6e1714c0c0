"""The sell-side capacity rule (market.capacity), against a brute force.

The brute force knows nothing of the closed form: it tries every way to
split the DE commitment over the states (each state then delivers its own
commitment plus its share of DE) and calls the commitments feasible when one
split fits every state's capacity. Inputs are kept small so that the
enumeration stays exhaustive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.capacity import DE, Commitments, check_sell, commitment, free_quantity, is_feasible

STATES = ("DE-BY", "DE-BW", "DE-NW", "DE-BE")
ZONES = (DE, *STATES)


def splits(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way to write ``total`` as an ordered sum of ``parts`` integers >= 0."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in splits(total - first, parts - 1):
            yield (first, *rest)


def brute_feasible(capacity: Mapping[str, int], commitments: Commitments) -> bool:
    states = sorted(set(capacity) | set(commitments.states))
    if not states:
        return commitments.de == 0
    for share in splits(commitments.de, len(states)):
        if all(
            commitments.states.get(state, 0) + part <= capacity.get(state, 0)
            for state, part in zip(states, share, strict=True)
        ):
            return True
    return False


def brute_free(capacity: Mapping[str, int], commitments: Commitments, zone: str) -> int:
    """The largest q that keeps the commitments feasible, by trying every q
    up to the total capacity (0 when none, not even q = 0, is feasible)."""
    best = 0
    for quantity in range(sum(capacity.values()) + 2):
        if brute_feasible(capacity, commitments.plus(zone, quantity)):
            best = quantity
    return best


capacities = st.dictionaries(st.sampled_from(STATES), st.integers(0, 5), max_size=3)
commitment_sets = st.builds(
    Commitments,
    de=st.integers(0, 6),
    states=st.dictionaries(st.sampled_from(STATES), st.integers(0, 5), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(capacity=capacities, commitments=commitment_sets)
def test_feasibility_agrees_with_a_brute_force_assignment(capacity, commitments):
    assert is_feasible(capacity, commitments) == brute_feasible(capacity, commitments)


@settings(max_examples=400, deadline=None)
@given(capacity=capacities, commitments=commitment_sets, zone=st.sampled_from(ZONES))
def test_free_quantity_is_the_largest_feasible_addition(capacity, commitments, zone):
    free = free_quantity(capacity, commitments, zone)
    assert free >= 0
    assert free == brute_free(capacity, commitments, zone)
    if is_feasible(capacity, commitments):
        assert is_feasible(capacity, commitments.plus(zone, free))
        assert not is_feasible(capacity, commitments.plus(zone, free + 1))
    else:
        # Adding never repairs infeasible commitments.
        assert free == 0
        assert not any(brute_feasible(capacity, commitments.plus(zone, q)) for q in range(4))


@settings(max_examples=400, deadline=None)
@given(
    capacity=capacities,
    others=commitment_sets,
    zone=st.sampled_from(ZONES),
    open_sell=st.integers(0, 4),
    net_position=st.integers(-3, 6),
    quantity=st.integers(0, 12),
)
def test_a_sell_is_accepted_exactly_up_to_the_sellable_quantity(
    capacity, others, zone, open_sell, net_position, quantity
):
    result = check_sell(
        capacity, others, zone=zone, open_sell=open_sell, net_position=net_position, quantity=quantity
    )
    before = commitment(open_sell=open_sell, net_position=net_position)
    after = commitment(open_sell=open_sell + quantity, net_position=net_position)
    with_it = brute_feasible(capacity, others.plus(zone, after))
    # The rule of the design: feasible with the new order, or the order adds
    # nothing to what must be delivered (a resale).
    assert result.accepted == (with_it or after == before)
    assert result.accepted == (quantity <= result.sellable)


@given(open_sell=st.integers(0, 4), net_position=st.integers(1, 8))
def test_reselling_a_long_position_needs_no_capacity(open_sell, net_position):
    resale = max(0, net_position - open_sell)
    result = check_sell({}, Commitments(), zone="DE-BY", open_sell=open_sell, net_position=net_position,
                        quantity=resale)
    assert result.accepted
    assert result.sellable == resale


# --- hand-computed cases ------------------------------------------------------------------


def test_de_may_use_any_state_but_a_state_only_its_own():
    capacity = {"DE-BY": 10, "DE-NW": 4}
    assert free_quantity(capacity, Commitments(), DE) == 14
    assert free_quantity(capacity, Commitments(), "DE-BY") == 10
    assert free_quantity(capacity, Commitments(), "DE-BE") == 0
    # 12 sold in DE: 2 of them must come from Bavaria at least, which leaves
    # 2 for Bavaria's and Northrhine-Westphalia's own instruments together.
    sold_de = Commitments(de=12)
    assert free_quantity(capacity, sold_de, "DE-BY") == 2
    assert free_quantity(capacity, sold_de, "DE-NW") == 2
    assert is_feasible(capacity, sold_de.plus("DE-NW", 2))
    assert not is_feasible(capacity, sold_de.plus("DE-NW", 3))


def test_a_state_commitment_above_its_capacity_is_infeasible_whatever_the_total():
    assert not is_feasible({"DE-BY": 10, "DE-NW": 10}, Commitments(states={"DE-NW": 11}))
    assert free_quantity({"DE-BY": 10, "DE-NW": 10}, Commitments(states={"DE-NW": 11}), DE) == 0


def test_a_short_position_stays_committed():
    assert commitment(open_sell=0, net_position=-5) == 5
    assert commitment(open_sell=3, net_position=-5) == 8
    assert commitment(open_sell=3, net_position=5) == 0
    assert commitment(open_sell=7, net_position=5) == 2


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError):
        Commitments(de=-1)
    with pytest.raises(ValueError):
        check_sell({}, Commitments(), zone=DE, open_sell=0, net_position=0, quantity=-1)


def test_splits_enumerates_every_composition():
    # The brute force is only as good as its enumeration: C(n+k-1, k-1) splits.
    assert len(list(splits(4, 3))) == 15
    assert all(sum(split) == 4 for split in splits(4, 3))
    assert len(set(splits(4, 3))) == 15
