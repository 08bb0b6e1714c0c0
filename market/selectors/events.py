"""Reads of the order events (REMIT-style order records): a member sees its
own organisation's, never another's; operators read them in admin."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from market import calendar
from market.models import OrderEvent
from market.serializers import OrderEventSerializer

if TYPE_CHECKING:
    from accounts.models import Organisation

_EVENT = OrderEventSerializer()

CSV_COLUMNS = ["id", "at", "order", "client_order_id", "instrument", "kind", "actor", "side", "price", "quantity",
               "filled_quantity", "status", "reason", "trade_id", "fill_price", "fill_quantity"]


def order_events_for(
    *, organisation: Organisation, instrument_symbol: str | None = None, order_id: int | None = None,
    since: datetime.datetime | None = None, until: datetime.datetime | None = None,
) -> QuerySet[OrderEvent]:
    """The organisation's order events, newest first."""
    rows = (OrderEvent.objects.filter(organisation=organisation)
            .select_related("instrument", "actor", "order").order_by("-id"))
    if instrument_symbol:
        rows = rows.filter(instrument__symbol=instrument_symbol)
    if order_id is not None:
        rows = rows.filter(order_id=order_id)
    if since is not None:
        rows = rows.filter(at__gte=since)
    if until is not None:
        rows = rows.filter(at__lt=until)
    return rows


def order_event_payload(event: OrderEvent) -> dict[str, Any]:
    return dict(_EVENT.to_representation(event))


def order_events_csv_rows(events: Iterable[OrderEvent]) -> Iterator[list[Any]]:
    """The header, then one row per event: the API's fields, times in Europe/Berlin with offset, decimals with a
    point (a file for machines and spreadsheets alike)."""
    yield CSV_COLUMNS
    for event in events:
        payload = order_event_payload(event)
        payload["at"] = event.at.astimezone(calendar.BERLIN).isoformat()
        yield ["" if payload[column] is None else payload[column] for column in CSV_COLUMNS]
