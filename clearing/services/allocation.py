"""Allocation of spot trades to delivery tickets (market-rules §4;
docs/architecture.md, "Allocation").

``delivery_tickets_for_trade`` runs inside the order service's transaction,
after the instrument and the seller's organisation are locked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils.translation import gettext as _

from clearing.fees import CENT, is_cents
from clearing.models import DeliveryTicket
from exchange.errors import ExchangeError
from exchange.rawsql import db_time, fetch, insert_many

DE = "DE"

if TYPE_CHECKING:
    from market.models import Trade
    from market.services.capacity import HourCommitments

log = logging.getLogger(__name__)


# --- allocation -------------------------------------------------------------------------------


def split_cents(amount: Decimal, weights: Sequence[int]) -> list[Decimal]:
    """``amount`` (whole cents) split in proportion to ``weights`` by largest
    remainder: each part is the floor of its exact share in cents, and the
    cents left over go one each to the largest remainders (ties: first
    first). The parts sum to ``amount`` exactly."""
    if not is_cents(amount) or amount < 0:
        raise ValueError(f"can only split a non-negative amount in cents, not {amount!r}")
    total = sum(weights)
    if total <= 0 or any(weight <= 0 for weight in weights):
        raise ValueError("weights must be positive")
    cents = int((amount / CENT).to_integral_value())
    floors = [cents * weight // total for weight in weights]
    remainders = [cents * weight % total for weight in weights]
    left = cents - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return [(Decimal(part) * CENT).quantize(CENT) for part in floors]


def split_cents_capped(amount: Decimal, weights: Sequence[int], caps: Sequence[Decimal]) -> list[Decimal]:
    """``split_cents``, then no part above its cap: a part's excess cents move
    one by one to the first parts with room. Largest remainder is not
    monotone in the amount (the Alabama paradox), so a seller fee split with
    the same weights as a larger value can put a cent on a ticket whose
    value got one cent less; moving it keeps the seller's payout per
    ticket non-negative. Needs ``amount <= sum(caps)``."""
    if amount > sum(caps, Decimal("0.00")):
        raise ValueError(f"{amount} does not fit under the caps {list(caps)}")
    parts = split_cents(amount, weights)
    excess = sum((max(Decimal("0.00"), part - cap) for part, cap in zip(parts, caps, strict=True)),
                 Decimal("0.00"))
    parts = [min(part, cap) for part, cap in zip(parts, caps, strict=True)]
    for index, cap in enumerate(caps):
        room = min(cap - parts[index], excess)
        parts[index] += room
        excess -= room
    return parts


@dataclass
class _SiteRoom:
    site_id: int
    state: str
    capacity: int
    used: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)


class CannotDeliver(ExchangeError):
    """The seller's sites cannot take this trade (a capacity was changed
    outside the services). The order service cancels the seller's resting
    order and tries the incoming order again."""

    def __init__(self, seller_id: int) -> None:
        super().__init__("insufficient_capacity", _(
            "The seller's sites cannot deliver this trade: its capacity was changed outside the exchange's "
            "checks. Please tell the operators."))
        self.seller_id = seller_id


class AllocationMemo:
    """What the allocation reads per trade, read once per seller and hour
    (or instrument) for one transaction that allocates many trades (a batch
    of orders): the seller's sites with their use, and its resale sources.
    Every write of the allocation in that transaction (``_use``, the tickets'
    insert) updates it, so it answers what the database would; it hands out
    copies, which callers may change."""

    def __init__(self) -> None:
        self.sites: dict[tuple[int, int, Any], list[_SiteRoom]] = {}
        self.resale: dict[tuple[int, int], list[list[int]]] = {}  # [ticket id, GPUs free], oldest first

    def used(self, site_id: int, instrument: Any, gpus: int, *, seller_id: int) -> None:
        for room in self.sites.get((seller_id, instrument.gpu_class_id, instrument.delivery_start), []):
            if room.site_id == site_id:
                room.used += gpus

    def tickets(self, trade: Trade, tickets: Sequence[DeliveryTicket]) -> None:
        sources = self.resale.get((trade.instrument_id, trade.seller_id))
        for ticket in tickets:
            if ticket.source_ticket_id is not None and sources is not None:
                for source in sources:
                    if source[0] == ticket.source_ticket_id:
                        source[1] -= ticket.gpus
            inbound = self.resale.get((trade.instrument_id, ticket.buyer_id))
            if inbound is not None and ticket.gpus > 0:
                inbound.append([ticket.pk, ticket.gpus])  # the newest ticket: the highest id


def _seller_sites(trade: Trade, memo: AllocationMemo | None = None) -> list[_SiteRoom]:
    if memo is not None:
        key = (trade.seller_id, trade.instrument.gpu_class_id, trade.instrument.delivery_start)
        if key not in memo.sites:
            memo.sites[key] = _read_seller_sites(trade)
        return [_SiteRoom(room.site_id, room.state, room.capacity, room.used) for room in memo.sites[key]]
    return _read_seller_sites(trade)


def _read_seller_sites(trade: Trade) -> list[_SiteRoom]:
    """The seller's sites with capacity of the trade's class, with their use in
    its hour (``SiteUsage``, the one source of truth). One plain statement
    (it runs for every trade)."""
    from market.models import Site, SiteCapacity, SiteUsage

    instrument = trade.instrument
    capacity, site, usage = (connection.ops.quote_name(model._meta.db_table)
                             for model in (SiteCapacity, Site, SiteUsage))
    rows = fetch(
        f"SELECT c.site_id, s.state, c.gpus, COALESCE((SELECT u.gpus FROM {usage} u "  # noqa: S608 (model tables)
        f"WHERE u.site_id = c.site_id AND u.gpu_class_id = c.gpu_class_id AND u.hour_start = %s), 0) "
        f"FROM {capacity} c JOIN {site} s ON s.id = c.site_id "
        f"WHERE s.organisation_id = %s AND c.gpu_class_id = %s ORDER BY c.site_id",
        [db_time(instrument.delivery_start), trade.seller_id, instrument.gpu_class_id])
    return [_SiteRoom(site_id, state, int(gpus), int(used)) for site_id, state, gpus, used in rows]


def _pending_state_commitments(trade: Trade, commitments: HourCommitments | None) -> dict[str, int]:
    """Per state: what the seller still has to deliver in that state's
    instrument of this hour beyond what is already allocated (its open sells
    not covered by capacity it bought there). A DE trade must leave that
    much free in the state."""
    from market.services.capacity import hour_commitments

    instrument = trade.instrument
    rows = (commitments.get if commitments is not None else hour_commitments)(
        organisation_id=trade.seller_id, gpu_class_id=instrument.gpu_class_id,
        delivery_start=instrument.delivery_start)
    return {row.zone: max(0, row.open_sell - max(0, row.net_position)) for row in rows if row.zone != DE}


def _site_slices(trade: Trade, quantity: int, commitments: HourCommitments | None = None,
                 memo: AllocationMemo | None = None) -> list[tuple[int, int]]:
    """(site id, GPUs) for ``quantity`` GPUs of a trade from the seller's
    sites: a state's trade from that state's sites; a DE trade from each
    state's capacity left after that state's own commitments (market rules
    §4). Most free first, then site id: deterministic."""
    zone = trade.instrument.zone.code
    sites = _seller_sites(trade, memo)
    if zone != DE:
        budget = {zone: quantity}
    else:
        pending = _pending_state_commitments(trade, commitments)
        budget = defaultdict(int)
        for room in sites:
            budget[room.state] += room.free
        budget = {state: max(0, free - pending.get(state, 0)) for state, free in budget.items()}
    slices: list[tuple[int, int]] = []
    for room in sorted(sites, key=lambda r: (-min(r.free, budget.get(r.state, 0)), r.site_id)):
        if quantity == 0:
            break
        take = min(room.free, budget.get(room.state, 0), quantity)
        if take > 0:
            slices.append((room.site_id, take))
            budget[room.state] -= take
            quantity -= take
    if quantity and zone != DE:
        moved = _move_de_tickets(trade, state=zone, needed=quantity, sites=sites, memo=memo)
        if moved:
            return _site_slices(trade, sum(take for _site, take in slices) + quantity, commitments, memo)
    if quantity:
        # The pre-trade check keeps the commitments feasible, so this means a
        # capacity changed behind the services' back. Refuse rather than
        # promise GPUs a site does not have.
        raise CannotDeliver(trade.seller_id)
    return slices


def _move_de_tickets(trade: Trade, *, state: str, needed: int, sites: list[_SiteRoom],
                     memo: AllocationMemo | None = None) -> bool:
    """Make room in ``state`` for a state trade by moving whole DE tickets of
    the seller in this hour, not yet given access details, from sites in the
    state to its sites elsewhere with free capacity (a DE ticket may be
    delivered from any state). Answers whether anything moved."""
    from market.models import SiteUsage

    instrument = trade.instrument
    movable = (DeliveryTicket.objects.filter(
        seller_id=trade.seller_id, gpu_class_id=instrument.gpu_class_id, zone__code=DE,
        delivery_start=instrument.delivery_start, seller_site__state=state,
        status=DeliveryTicket.Status.AWAITING_ACCESS).order_by("-gpus", "pk"))
    elsewhere = sorted((room for room in sites if room.state != state), key=lambda r: (-r.free, r.site_id))
    moved = 0
    for ticket in movable:
        if moved >= needed:
            break
        target = next((room for room in elsewhere if room.free >= ticket.gpus), None)
        if target is None:
            continue
        assert ticket.seller_site_id is not None  # noqa: S101 (filtered on its state)
        _use(ticket.seller_site_id, instrument, -ticket.gpus, seller_id=trade.seller_id, memo=memo)
        _use(target.site_id, instrument, ticket.gpus, seller_id=trade.seller_id, memo=memo)
        DeliveryTicket.objects.filter(pk=ticket.pk).update(seller_site_id=target.site_id)
        target.used += ticket.gpus
        moved += ticket.gpus
        log.info("delivery ticket %s moved from site %s to site %s to make room in %s",
                 ticket.pk, ticket.seller_site_id, target.site_id, state)
    if moved:
        SiteUsage.objects.filter(gpus=0, site__organisation_id=trade.seller_id).delete()
    return moved > 0


def _use(site_id: int, instrument: Any, gpus: int, *, seller_id: int, memo: AllocationMemo | None = None) -> None:
    """Add ``gpus`` (negative: give back) to a site's use in the instrument's
    hour with one guarded statement: never beyond the site's capacity of
    the class, never below zero. Raises ``CannotDeliver`` if the guard refuses."""
    from market.models import SiteCapacity, SiteUsage

    usage, capacity = SiteUsage._meta.db_table, SiteCapacity._meta.db_table
    cap = f"(SELECT c.gpus FROM {capacity} c WHERE c.site_id = %s AND c.gpu_class_id = %s)"  # noqa: S608 (model table)
    site, cls = site_id, instrument.gpu_class_id
    hour = connection.ops.adapt_datetimefield_value(instrument.delivery_start)  # as the ORM stores it
    with connection.cursor() as cursor:
        if gpus < 0:
            cursor.execute(
                f"UPDATE {usage} SET gpus = gpus + %s WHERE site_id = %s AND gpu_class_id = %s "  # noqa: S608
                f"AND hour_start = %s AND gpus + %s >= 0 RETURNING gpus",
                [gpus, site, cls, hour, gpus],
            )
        else:
            # Insert the hour's row or add to it, either way only while the
            # result stays within the site's capacity (the WHERE of the insert
            # and of the conflict update). No row back: refused.
            cursor.execute(
                f"INSERT INTO {usage} (site_id, gpu_class_id, hour_start, gpus) "  # noqa: S608 (model tables)
                f"SELECT %s, %s, %s, %s WHERE %s <= {cap} "
                f"ON CONFLICT (site_id, gpu_class_id, hour_start) DO UPDATE SET gpus = {usage}.gpus + EXCLUDED.gpus "
                f"WHERE {usage}.gpus + %s <= {cap} RETURNING {usage}.gpus",
                [site, cls, hour, gpus, gpus, site, cls, gpus, site, cls],
            )
        if cursor.fetchone() is None:
            raise CannotDeliver(seller_id)
    if memo is not None:
        memo.used(site_id, instrument, gpus, seller_id=seller_id)


def _resale_sources(trade: Trade, memo: AllocationMemo | None = None) -> list[tuple[int, int]]:
    if memo is not None:
        key = (trade.instrument_id, trade.seller_id)
        if key not in memo.resale:
            memo.resale[key] = [[ticket_id, free] for ticket_id, free in _read_resale_sources(trade)]
        return [(ticket_id, free) for ticket_id, free in memo.resale[key] if free > 0]
    return _read_resale_sources(trade)


def _read_resale_sources(trade: Trade) -> list[tuple[int, int]]:
    """The seller's own inbound tickets in this instrument with GPUs not yet
    resold, oldest first: (ticket id, GPUs free). One plain statement (it
    runs for every trade)."""
    from market.models import Trade as TradeModel

    ticket, trades = (connection.ops.quote_name(model._meta.db_table) for model in (DeliveryTicket, TradeModel))
    rows = fetch(
        f"SELECT t.id, t.gpus - COALESCE((SELECT SUM(r.gpus) FROM {ticket} r WHERE r.source_ticket_id = t.id), 0) "  # noqa: S608
        f"FROM {ticket} t JOIN {trades} tr ON tr.id = t.trade_id "
        f"WHERE tr.instrument_id = %s AND t.buyer_id = %s ORDER BY t.id",
        [trade.instrument_id, trade.seller_id])
    return [(ticket_id, int(free)) for ticket_id, free in rows if free > 0]


def delivery_tickets_for_trade(*, trade: Trade, buyer_held: Decimal, seller_held: Decimal,
                               commitments: HourCommitments | None = None,
                               memo: AllocationMemo | None = None) -> list[DeliveryTicket]:
    """Allocate one spot trade to delivery tickets (resale first, then the
    seller's sites) and split its value and the fees held for it
    (``buyer_held``/``seller_held``, the cents each side moved into its fee
    reserve, ``clearing.services.fees``) over them.

    For the order service, inside its transaction right after the trade row is written
    (the instrument row is locked, so allocations in one instrument are
    serial; the seller's organisation is locked, so its sites' use is too).
    Every GPU on a site goes through ``SiteUsage`` with a guarded update, so
    no site is ever allocated more than it has. ``commitments`` and
    ``memo``: the order transaction's ``HourCommitments`` and
    ``AllocationMemo``, if it keeps them.
    """
    instrument = trade.instrument
    remaining = trade.quantity
    slices: list[dict[str, Any]] = []
    for source, free in _resale_sources(trade, memo):
        if remaining == 0:
            break
        take = min(free, remaining)
        slices.append({"source_ticket_id": source, "gpus": take})
        remaining -= take
    if remaining:
        if instrument.hours != 1:
            raise ValueError("site allocation is per delivery hour: spot instruments are hourly")
        for site_id, take in _site_slices(trade, remaining, commitments, memo):
            _use(site_id, instrument, take, seller_id=trade.seller_id, memo=memo)
            slices.append({"seller_site_id": site_id, "gpus": take})
    weights = [piece["gpus"] for piece in slices]
    values = split_cents((trade.price * trade.quantity * instrument.hours).quantize(CENT), weights)
    shares = zip(values, split_cents(buyer_held, weights), split_cents_capped(seller_held, weights, values),
                 strict=True)
    tickets = [
        DeliveryTicket(
            trade=trade, seller_id=trade.seller_id, buyer_id=trade.buyer_id,
            gpu_class_id=instrument.gpu_class_id, zone_id=instrument.zone_id,
            delivery_start=instrument.delivery_start, delivery_end=instrument.delivery_end,
            value=v, buyer_fee=fb, seller_fee=fs, **piece,
        )
        for piece, (v, fb, fs) in zip(slices, shares, strict=True)
    ]
    # seller_held <= value (the sell floor, trade_posting checks it), so the
    # capped split fits; the check constraint would catch it anyway.
    insert_many(tickets)
    if memo is not None:
        memo.tickets(trade, tickets)
    return tickets
