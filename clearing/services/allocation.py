"""Allocation of spot trades to delivery tickets (market-rules §4;
docs/architecture.md, "Allocation").

``delivery_tickets_for_trade`` runs inside the order service's transaction,
after the instrument and the seller's organisation are locked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Sum

from clearing.fees import CENT, is_cents
from clearing.models import DeliveryTicket

if TYPE_CHECKING:
    from market.models import Site, Trade

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


def _zone_sites(trade: Trade) -> list[tuple[Site, int]]:
    """The seller's sites that may deliver this instrument, with their free
    GPUs for its period, in allocation order (free descending, then id)."""
    from market.models import Site

    instrument = trade.instrument
    sites = Site.objects.filter(organisation_id=trade.seller_id,
                                capacities__gpu_class_id=instrument.gpu_class_id)
    if instrument.zone.code != "DE":
        sites = sites.filter(state=instrument.zone.code)
    rows: list[tuple[Site, int]] = []
    for site in sites.annotate(capacity=Sum("capacities__gpus")).order_by("pk"):
        used = (DeliveryTicket.objects.filter(
            seller_site=site, gpu_class_id=instrument.gpu_class_id,
            delivery_start__lt=instrument.delivery_end, delivery_end__gt=instrument.delivery_start,
        ).aggregate(total=Sum("gpus"))["total"] or 0)
        rows.append((site, max(0, site.capacity - used)))
    rows.sort(key=lambda row: (-row[1], row[0].pk))
    return rows


def _resale_sources(trade: Trade) -> list[tuple[DeliveryTicket, int]]:
    """The seller's own inbound tickets in this instrument with GPUs not yet resold, oldest first."""
    inbound = (DeliveryTicket.objects.filter(trade__instrument_id=trade.instrument_id, buyer_id=trade.seller_id)
               .annotate(resold=Sum("resold_tickets__gpus")).order_by("pk"))
    return [(ticket, ticket.gpus - (ticket.resold or 0)) for ticket in inbound
            if ticket.gpus - (ticket.resold or 0) > 0]


def delivery_tickets_for_trade(*, trade: Trade) -> list[DeliveryTicket]:
    """Allocate one spot trade to delivery tickets (resale first, then the
    seller's sites) and split its value and fees over them.

    For the order service, inside its transaction right after ``trade_book``
    (the instrument row is locked, so allocations in one instrument are
    serial). Never refuses: the trade has happened.
    """
    instrument = trade.instrument
    remaining = trade.quantity
    slices: list[dict[str, Any]] = []
    for source, free in _resale_sources(trade):
        if remaining == 0:
            break
        take = min(free, remaining)
        slices.append({"source_ticket": source, "gpus": take})
        remaining -= take
    if remaining:
        sites = _zone_sites(trade)
        for site, free in sites:
            if remaining == 0:
                break
            take = min(free, remaining)
            if take:
                slices.append({"seller_site": site, "gpus": take})
                remaining -= take
        if remaining:
            # The pre-trade check holds in total, not per site (a DE sale may
            # have used a state's capacity first): over-allocate, and say so.
            log.warning("trade %s: %s GPUs over the free site capacity of organisation %s",
                        trade.pk, remaining, trade.seller_id)
            slices.append({"seller_site": sites[0][0] if sites else None, "gpus": remaining})
    weights = [piece["gpus"] for piece in slices]
    value = trade.price * trade.quantity * instrument.hours
    shares = zip(split_cents(value.quantize(CENT), weights), split_cents(trade.buyer_fee, weights),
                 split_cents(trade.seller_fee, weights), strict=True)
    tickets = [
        DeliveryTicket(
            trade=trade, seller_id=trade.seller_id, buyer_id=trade.buyer_id,
            gpu_class_id=instrument.gpu_class_id, zone_id=instrument.zone_id,
            delivery_start=instrument.delivery_start, delivery_end=instrument.delivery_end,
            value=v, buyer_fee=fb, seller_fee=fs, **piece,
        )
        for piece, (v, fb, fs) in zip(slices, shares, strict=True)
    ]
    # Largest remainder may give a ticket a seller fee cent above its value
    # only if the trade's Fs > V, which trade_book refuses; the check
    # constraint would catch it anyway.
    return DeliveryTicket.objects.bulk_create(tickets)
