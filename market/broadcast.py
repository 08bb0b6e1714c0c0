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

import asyncio
import logging
import os
import threading
from decimal import Decimal
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from market.serializers import BookLevelsField

log = logging.getLogger(__name__)

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
    """Send in order. Inside an ASGI server (a sync view run by
    ``sync_to_async``) the messages go through the server's own event loop,
    as one trip. Anywhere else (gunicorn's WSGI workers, Celery, commands)
    they are handed to this process's publisher thread and the caller goes
    on: no event loop and no channel-layer connection is made per commit,
    and the request does not wait for Redis."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    if _in_asgi_thread():
        async def send() -> None:
            for group, event in messages:
                await layer.group_send(group, {"type": "market.event", "event": event})

        async_to_sync(send)()
        return
    _publisher().put(layer, messages)


def _in_asgi_thread() -> bool:
    """Whether this is a sync thread that an ASGI server's running loop
    called into. Not when an event loop runs in this very thread (a sync
    caller inside an async program, such as a test driving a browser):
    ``async_to_sync`` refuses to run there. Not when the recorded loop has
    stopped: the thread-local outlives the ``sync_to_async`` call that set it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return False
    main_loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return (main_loop is not None and main_loop.is_running()
            and getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid())


class _Publisher:
    """One daemon thread per process with its own event loop and one queue:
    messages leave in the order they were put (the order of commits in this
    process), over connections the channel layer keeps open. A failure is
    logged and never reaches the committed transaction that published;
    clients repair gaps by sequence (market.consumers)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[Any, list[tuple[str, dict[str, Any]]]]] | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="broadcast-publisher", daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        self.loop.create_task(self._drain())
        ready.set()
        self.loop.run_forever()

    async def _drain(self) -> None:
        assert self.queue is not None  # noqa: S101 (set before the task starts)
        while True:
            layer, messages = await self.queue.get()
            try:
                for group, event in messages:
                    await layer.group_send(group, {"type": "market.event", "event": event})
            except Exception:  # noqa: BLE001 (a lost push must not stop the publisher)
                log.exception("broadcast of %d messages failed", len(messages))
            finally:
                self.queue.task_done()

    def put(self, layer: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
        assert self.queue is not None  # noqa: S101
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (layer, messages))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything put so far has been sent (tests, shutdown)."""
        assert self.queue is not None  # noqa: S101
        asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop).result(timeout)


_publisher_instance: _Publisher | None = None
_publisher_lock = threading.Lock()


def _publisher() -> _Publisher:
    global _publisher_instance
    with _publisher_lock:
        if _publisher_instance is None or not _publisher_instance.thread.is_alive() \
                or _publisher_instance_pid != os.getpid():
            _set_publisher(_Publisher())
        assert _publisher_instance is not None  # noqa: S101
        return _publisher_instance


_publisher_instance_pid = 0


def _set_publisher(publisher: _Publisher) -> None:
    # A forked worker (gunicorn preloads nothing here, but be safe) gets its own thread.
    global _publisher_instance, _publisher_instance_pid
    _publisher_instance, _publisher_instance_pid = publisher, os.getpid()


def flush(timeout: float = 5.0) -> None:
    """Wait until this process's publisher has sent what it was given."""
    if _publisher_instance is not None and _publisher_instance_pid == os.getpid():
        _publisher_instance.flush(timeout)


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
