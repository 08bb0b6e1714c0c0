"""Benchmark (c): WebSocket fan-out of one order book to 500 subscribers.

500 clients subscribe to /ws/book/{symbol}/; one publisher places orders over
REST that each change the book once. For every update and subscriber the
latency runs from the moment the publisher sent the order (an upper bound of
commit-to-receipt: it also holds the order's own processing) to the moment the
subscriber received the update with that sequence. Goal: p99 under 250 ms.
Beside it, the same fan-out of a bare channel-layer group_send from this
process (no order, no database) as the reference measured in the same run.

    .venv/bin/python bench/bench_ws_fanout.py [--subscribers 500] [--updates 100] [--workers 2]
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


async def subscriber(url: str, ready: asyncio.Event, counter: list[int], total: int,
                     received: dict[int, list[float]], done: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, max_queue=None, open_timeout=60) as ws:
        snapshot = json.loads(await ws.recv())
        if snapshot.get("type") != "snapshot":
            raise SystemExit(f"expected a snapshot first, got {snapshot}")
        counter[0] += 1
        if counter[0] == total:
            ready.set()
        while not done.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=1)
            except TimeoutError:
                continue
            now = time.perf_counter()
            event = json.loads(message)
            if event.get("type") == "update":
                received.setdefault(event["sequence"], []).append(now)


async def run(url: str, symbol: str, token: str, subscribers: int, updates: int, reference: bool,
              base_sequence: int = 0) -> list[float]:
    import requests

    ws_url = url.replace("http://", "ws://") + f"/ws/book/{symbol}/"
    ready, done = asyncio.Event(), asyncio.Event()
    counter = [0]
    received: dict[int, list[float]] = {}
    tasks = [asyncio.create_task(subscriber(ws_url, ready, counter, subscribers, received, done))
             for _ in range(subscribers)]
    await asyncio.wait_for(ready.wait(), timeout=120)
    sent: dict[int, float] = {}
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    for n in range(updates):
        await asyncio.sleep(0.05)
        if reference:
            from channels.layers import get_channel_layer

            from market import broadcast

            # Consecutive after the book's own sequence, or the consumer sees a gap.
            sequence = base_sequence + 1 + n
            sent[sequence] = time.perf_counter()
            # What publish_book sends, straight from this event loop.
            event = {"type": "update", "sequence": sequence, "bids": [], "asks": []}
            await get_channel_layer().group_send(broadcast.book_group(symbol), {"type": "market.event", "event": event})
        else:
            began = time.perf_counter()
            # A resting buy far below the market: exactly one book update each.
            body = {"instrument": symbol, "side": "buy", "type": "limit", "price": f"{1 + n / 100:.2f}",
                    "quantity": 1, "time_in_force": "GTC"}
            response = await asyncio.to_thread(session.post, f"{url}/api/v1/orders/", json=body, timeout=30)
            if response.status_code != 201:
                raise SystemExit(f"order refused: {response.status_code} {response.text}")
            sent[-(n + 1)] = began
    await asyncio.sleep(2)
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = []
    if reference:
        for sequence, began in sent.items():
            latencies += [(t - began) * 1000 for t in received.get(sequence, [])]
    else:
        # Updates carry consecutive sequences in the order the orders were sent.
        sequences = sorted(received)
        for index, sequence in enumerate(sequences[-updates:]):
            began = sent[-(index + 1)]
            latencies += [(t - began) * 1000 for t in received[sequence]]
    return latencies


def describe(name: str, latencies: list[float], expected: int) -> str:
    p50, p99 = common.percentile(latencies, 50), common.percentile(latencies, 99)
    return f"{name:<34} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   received {len(latencies)}/{expected}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    env = common.setup_django()
    symbol, members = common.seed(1)
    print(f"machine: {common.machine()}; server: uvicorn --workers {args.workers}; Redis channel layer")
    with common.server(env, workers=args.workers) as url:
        from market.models import Instrument

        base = Instrument.objects.get(symbol=symbol).book_sequence
        reference = asyncio.run(run(url, symbol, members[0].token, args.subscribers, args.updates, reference=True,
                                    base_sequence=base))
        orders = asyncio.run(run(url, symbol, members[0].token, args.subscribers, args.updates, reference=False))
    expected = args.subscribers * args.updates
    print(describe("reference: bare group_send", reference, expected))
    print(describe("order over REST -> book update", orders, expected))
    p99 = common.percentile(orders, 99)
    print(f"p99 {p99:.1f} ms (goal < 250 ms: {'met' if p99 < 250 else 'missed'})")


if __name__ == "__main__":
    main()
