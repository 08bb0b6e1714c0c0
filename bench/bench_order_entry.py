"""Benchmark (b): order entry over REST on PostgreSQL, 8 concurrent clients.

Prints orders per second and p50/p99 latency of POST /api/v1/orders/ beside a
minimal DRF endpoint doing one locked update and one insert in one
transaction (bench/reference.py), served by the same server in the same run.
Goal: at least 60 % of the reference's rate, p99 under 50 ms.

    .venv/bin/python bench/bench_order_entry.py [--seconds 15] [--clients 8] [--workers 4]
"""

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def order_flow(rng: random.Random, symbol: str) -> dict[str, object]:
    # Prices around 10.00 so that about half of the orders cross and trade.
    side = rng.choice(["buy", "sell"])
    offset = rng.randint(-30, 30)
    price = 1000 + (offset if side == "buy" else -offset)
    return {"instrument": symbol, "side": side, "type": "limit", "price": f"{price / 100:.2f}",
            "quantity": rng.randint(1, 5), "time_in_force": "GTC"}


def load(url: str, path: str, symbol: str, members: list[common.Member], seconds: float) -> Run:
    import requests

    run = Run()
    lock = threading.Lock()
    start_gate = threading.Barrier(len(members) + 1)
    stop_at = 0.0

    def client(index: int, member: common.Member) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {member.token}"
        rng = random.Random(index)  # noqa: S311 - benchmark order flow
        latencies, errors = [], {}
        start_gate.wait()
        while time.perf_counter() < stop_at:
            body = order_flow(rng, symbol)
            began = time.perf_counter()
            response = session.post(f"{url}{path}", json=body, timeout=30)
            elapsed = time.perf_counter() - began
            if response.status_code in (200, 201):
                latencies.append(elapsed)
            else:
                code = f"{response.status_code} {response.json().get('code', '') if response.content else ''}"
                errors[code] = errors.get(code, 0) + 1
        with lock:
            run.latencies.extend(latencies)
            for code, count in errors.items():
                run.errors[code] = run.errors.get(code, 0) + count

    threads = [threading.Thread(target=client, args=(n, m)) for n, m in enumerate(members)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at = began + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    return run


def report(name: str, run: Run) -> str:
    ms = [value * 1000 for value in run.latencies]
    errors = f"  errors: {run.errors}" if run.errors else ""
    return (f"{name:<28} {run.rate:8.1f} req/s   p50 {common.percentile(ms, 50):6.1f} ms"
            f"   p99 {common.percentile(ms, 99):6.1f} ms   n={len(ms)}{errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    env = common.setup_django()
    from bench.reference import create_table

    create_table()
    symbol, members = common.seed(args.clients)
    print(f"machine: {common.machine()}; server: uvicorn --workers {args.workers}; PostgreSQL; {args.clients} clients")
    print(f"instrument: {symbol}")
    with common.server(env, workers=args.workers) as url:
        load(url, "/bench/reference/", symbol, members, 2)  # warm-up
        load(url, "/api/v1/orders/", symbol, members, 2)
        runs: dict[str, list[Run]] = {"reference": [], "orders": []}
        for _ in range(2):  # interleaved, so that drift hits both alike
            runs["reference"].append(load(url, "/bench/reference/", symbol, members, args.seconds))
            runs["orders"].append(load(url, "/api/v1/orders/", symbol, members, args.seconds))
    merged = {}
    for name, parts in runs.items():
        merged[name] = Run(latencies=[v for r in parts for v in r.latencies],
                           errors={k: sum(r.errors.get(k, 0) for r in parts) for p in parts for k in p.errors},
                           seconds=sum(r.seconds for r in parts))
    print(report("reference (lock + insert)", merged["reference"]))
    print(report("POST /api/v1/orders/", merged["orders"]))
    ratio = merged["orders"].rate / merged["reference"].rate if merged["reference"].rate else 0.0
    p99 = common.percentile([v * 1000 for v in merged["orders"].latencies], 99)
    print(f"orders / reference: {ratio:.1%} (goal >= 60 %: {'met' if ratio >= 0.6 else 'missed'}); "
          f"p99 {p99:.1f} ms (goal < 50 ms: {'met' if p99 < 50 else 'missed'})")


if __name__ == "__main__":
    main()
