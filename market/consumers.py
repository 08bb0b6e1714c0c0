"""Live market data over WebSockets (API contract, "Market data").

* ``/ws/book/{symbol}/``: a snapshot first, then the book updates of
  ``market.broadcast.publish_book`` in sequence order;
* ``/ws/trades/{symbol}/``: public trades;
* ``/ws/private/``: the signed-in member's own order, fill and delivery events
  (session or API token, see ``accounts.ws_auth``). A session may ask for
  cancel-on-disconnect with ``{"type": "cancel_on_disconnect", "enabled":
  true}``: when it ends, the organisation's resting orders placed by its
  user are cancelled (docs/trader-controls.md).

Refusals accept the handshake and then close with a code, because a close
before the handshake reaches a browser only as a failed connection (1006):
4401 not signed in, 4403 no organisation, 4404 unknown symbol.

The consumers only read (``book_snapshot``); everything they send is made by
the order service and published after its transaction commits.
"""

import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.selectors import membership_for
from accounts.ws_auth import accepted_subprotocol
from exchange.errors import ExchangeError
from market import broadcast
from market.models import Instrument
from market.selectors.orders import book_snapshot
from market.services import controls

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_THROTTLED = 4429

# Levels per side in a snapshot. A client that shows fewer levels can keep its
# ladder full from updates; when a side it got in full (``depth`` levels) runs
# short, it asks for a new snapshot (static/js/trading.js does).
SNAPSHOT_DEPTH = 50
# Snapshot requests a client may make per window; each one is a database read.
SNAPSHOT_REQUESTS_PER_WINDOW = 10
SNAPSHOT_WINDOW_SECONDS = 10.0


@database_sync_to_async
def _instrument_id(symbol: str) -> int | None:
    return Instrument.objects.filter(symbol=symbol).values_list("pk", flat=True).first()


@database_sync_to_async
def _snapshot(instrument_id: int) -> dict[str, Any]:
    snapshot = book_snapshot(instrument=Instrument.objects.get(pk=instrument_id), depth=SNAPSHOT_DEPTH)
    return {
        "type": "snapshot",
        "sequence": snapshot.sequence,
        "bids": broadcast.levels_json(list(snapshot.bids)),
        "asks": broadcast.levels_json(list(snapshot.asks)),
        # Beyond the contract: how many levels per side a snapshot holds at most.
        "depth": SNAPSHOT_DEPTH,
    }


@database_sync_to_async
def _organisation_id(user: Any) -> int | None:
    membership = membership_for(user)
    return membership.organisation_id if membership is not None else None


class _GroupConsumer(AsyncJsonWebsocketConsumer):
    """Joins one channel-layer group and forwards its ``market.event`` messages."""

    group: str | None = None

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply (exchange/parsers.py)
            return None  # answered as any other message this stream does not take

    async def refuse(self, code: int) -> None:
        await self.accept(accepted_subprotocol(self.scope))
        await self.close(code=code)

    async def join(self, group: str) -> None:
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept(accepted_subprotocol(self.scope))

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"type": "error", "code": "invalid", "detail": "This stream accepts no messages."})

    async def market_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


class _InstrumentConsumer(_GroupConsumer):
    instrument_id: int

    async def find_instrument(self) -> bool:
        instrument_id = await _instrument_id(self.scope["url_route"]["kwargs"]["symbol"])
        if instrument_id is None:
            await self.refuse(CLOSE_NOT_FOUND)
            return False
        self.instrument_id = instrument_id
        return True


class BookConsumer(_InstrumentConsumer):
    """Snapshot, then updates with each sequence the previous + 1.

    The group is joined *before* the snapshot is read, so no update committed
    after the read can be missed; updates the snapshot already contains
    (sequence <= the snapshot's) are dropped. Updates from different web
    processes may arrive out of order or, when the channel layer drops a
    message, not at all: on a gap the consumer sends a fresh snapshot instead
    of the update, and a client may ask for one itself with
    ``{"type": "snapshot"}``.
    """

    sequence = -1

    async def connect(self) -> None:
        if not await self.find_instrument():
            return
        self._snapshot_requests: list[float] = []
        await self.join(broadcast.book_group(self.scope["url_route"]["kwargs"]["symbol"]))
        await self.send_snapshot()

    async def send_snapshot(self) -> None:
        snapshot = await _snapshot(self.instrument_id)
        self.sequence = snapshot["sequence"]
        await self.send_json(snapshot)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "snapshot":
            await self.send_json({"type": "error", "code": "invalid",
                                  "detail": 'The only message this stream accepts is {"type": "snapshot"}.'})
            return
        now = time.monotonic()
        self._snapshot_requests = [t for t in self._snapshot_requests if now - t < SNAPSHOT_WINDOW_SECONDS]
        if len(self._snapshot_requests) >= SNAPSHOT_REQUESTS_PER_WINDOW:
            await self.close(code=CLOSE_THROTTLED)
            return
        self._snapshot_requests.append(now)
        await self.send_snapshot()

    async def market_event(self, message: dict[str, Any]) -> None:
        sequence = message["event"]["sequence"]
        if sequence <= self.sequence:
            return  # already in the snapshot the client has
        if sequence != self.sequence + 1:
            # A gap: the snapshot read now contains this update (it was
            # published after its commit) and whatever is missing before it.
            await self.send_snapshot()
            return
        self.sequence = sequence
        await self.send_json(message["event"])


class TradesConsumer(_InstrumentConsumer):
    async def connect(self) -> None:
        if await self.find_instrument():
            await self.join(broadcast.trades_group(self.scope["url_route"]["kwargs"]["symbol"]))


@database_sync_to_async
def _cancel_on_disconnect_check(user: Any) -> int:
    return controls.cancel_on_disconnect_check(user=user)


@database_sync_to_async
def _cancel_on_disconnect(user_id: int, organisation_id: int) -> int:
    return len(controls.cancel_on_disconnect(user_id=user_id, organisation_id=organisation_id))


class PrivateConsumer(_GroupConsumer):
    """The member's own order and fill events: one group per organisation,
    so colleagues see each other's orders as the screens do.

    Cancel-on-disconnect (opt-in, per session): after
    ``{"type": "cancel_on_disconnect", "enabled": true}`` (answered with the
    same message), the end of this connection, for whatever reason, cancels
    the organisation's resting orders that this session's user placed.
    ``"enabled": false`` turns it off again."""

    # (user id, organisation id) while cancel-on-disconnect is on.
    cancel_on_disconnect: tuple[int, int] | None = None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if (not isinstance(content, dict) or content.get("type") != "cancel_on_disconnect"
                or not isinstance(content.get("enabled"), bool)):
            await self.send_json({"type": "error", "code": "invalid", "detail": 'The only message this stream '
                                  'accepts is {"type": "cancel_on_disconnect", "enabled": true|false}.'})
            return
        if not content["enabled"]:
            self.cancel_on_disconnect = None
            await self.send_json({"type": "cancel_on_disconnect", "enabled": False})
            return
        user = self.scope["user"]
        try:
            organisation_id = await _cancel_on_disconnect_check(user)
        except ExchangeError as refused:
            await self.send_json({"type": "error", **refused.as_dict()})
            return
        self.cancel_on_disconnect = (user.pk, organisation_id)
        await self.send_json({"type": "cancel_on_disconnect", "enabled": True})

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.cancel_on_disconnect is not None:
            user_id, organisation_id = self.cancel_on_disconnect
            self.cancel_on_disconnect = None
            try:
                cancelled = await _cancel_on_disconnect(user_id, organisation_id)
            except Exception:  # the socket is gone: nobody to answer, so log loudly
                log.exception("cancel-on-disconnect failed for user %s", user_id)
                return
            log.info("cancel-on-disconnect: %d orders of user %s cancelled", cancelled, user_id)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        organisation_id = await _organisation_id(user)
        if organisation_id is None:
            await self.refuse(CLOSE_FORBIDDEN)
            return
        await self.join(broadcast.member_group(organisation_id))
