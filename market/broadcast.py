"""Live market data out to WebSocket clients, through the channel layer.

The order service calls these from ``transaction.on_commit``, so nothing is
published for a transaction that rolled back. Groups:

* ``book.<symbol>``: ``{"type": "update", "sequence", "bids", "asks"}`` with the
  changed price levels (quantity 0 removes a level), one message per sequence;
* ``trades.<symbol>``: ``{"type": "trade", "id", "price", "quantity",
  "executed_at", "aggressor"}`` per trade;
* ``member.<organisation id>``: private ``order`` and ``fill`` events.

Consumers (``market.consumers``) receive them as ``market.event`` messages and
forward ``event`` unchanged.
"""

from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from market.serializers import BookLevelsField

Level = tuple[Decimal, int]

# One shared field (a field is stateless once made): the WebSocket updates
# format levels with the same code as the REST book snapshot and the schema.
_LEVELS = BookLevelsField()


def book_group(symbol: str) -> str:
    return f"book.{symbol}"


def trades_group(symbol: str) -> str:
    return f"trades.{symbol}"


def member_group(organisation_id: int) -> str:
    return f"member.{organisation_id}"


def levels_json(levels: list[Level]) -> list[list[Any]]:
    """``[["12.30", 40], ...]``, as ``market.serializers.BookLevelsField`` writes them."""
    return _LEVELS.to_representation(levels)


def _send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send in order, in one trip into the event loop: each async_to_sync call
    from a request thread costs a loop and a channel-layer connection, so one
    commit's events (book, trades, private) go together."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send() -> None:
        for group, event in messages:
            await layer.group_send(group, {"type": "market.event", "event": event})

    async_to_sync(send)()


def book_message(symbol: str, sequence: int, bids: list[Level], asks: list[Level]) -> tuple[str, dict[str, Any]]:
    return book_group(symbol), {"type": "update", "sequence": sequence,
                                "bids": levels_json(bids), "asks": levels_json(asks)}


def trade_message(symbol: str, trade: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``trade`` in the public trades shape of the API contract."""
    return trades_group(symbol), {"type": "trade", **trade}


def private_message(organisation_id: int, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``event`` is ``{"type": "order", "order": {...}}`` or ``{"type": "fill", ...}``."""
    return member_group(organisation_id), event


def publish(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish a commit's messages (made with the *_message helpers), in order."""
    _send_all(messages)


def publish_book(symbol: str, sequence: int, bids: list[Level], asks: list[Level]) -> None:
    _send_all([book_message(symbol, sequence, bids, asks)])


def publish_trade(symbol: str, trade: dict[str, Any]) -> None:
    _send_all([trade_message(symbol, trade)])


def publish_private(organisation_id: int, event: dict[str, Any]) -> None:
    _send_all([private_message(organisation_id, event)])
