"""Benchmark: the day-ahead clearing core (market/auction.py) against the goals of issue 9.

Goals (issue 9, "Benchmarks"):
- clearing 1,000,000 curve steps over the 24 hours of one class and zone: under 1 s;
- 500 blocks, 50 of them in exclusive groups, over 24 hours with HiGHS: under 10 s;
- 2,000 blocks: report the time.

The block runs use a book of 20,000 curve steps (dense: the curves set the
prices and blocks rarely bind) and, reported beside them, 500 blocks on a
thin book of 2,000 steps, where blocks set prices and the "reject the
paradoxical block, re-solve" loop needs many master solves.

The inputs are made before the clock starts, as the service would hand them
over (``Step`` tuples with ``Decimal`` prices, ``Block``s), from a seeded random
book: curves of up to 64 steps per member and hour around a price that moves
over the day, buyers above and sellers below it so that about half the GPUs
cross. ``clear()`` is timed whole (input checks, conversion to ticks, clearing,
result objects). The reference, measured in the same run on the same machine:
Python's ``sorted()`` of the same steps by price, the least any clearing that
sorts its curves in Python must spend. Best of ``--repeat`` runs, alternating.

    .venv/bin/python bench/bench_auction.py
    .venv/bin/python bench/bench_auction.py --steps 200000 --repeat 1 --skip-blocks
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from market.auction import Block, Side, Step, clear  # noqa: E402

HOURS = tuple(f"{h:02d}" for h in range(24))
CENTS = [Decimal(c).scaleb(-2) for c in range(20001)]  # 0.00 .. 200.00


def _mid(hour: int) -> int:
    """The hour's centre price in cents: a day shape between about 30 and 60 EUR/GPUh."""
    return 3000 + 3000 * (1 + (hour >= 8) + (hour >= 18) - (hour >= 22)) // 3


def make_steps(n: int, seed: int) -> list[Step]:
    rng = random.Random(seed)
    steps: list[Step] = []
    bid = 0
    while len(steps) < n:
        bid += 1
        hour = rng.randrange(24)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        mid = _mid(hour)
        count = min(rng.randint(1, 64), n - len(steps))
        for _ in range(count):
            offset = int(rng.gauss(0, 800))
            cents = mid + offset + (300 if side is Side.BUY else -300)
            # Decimal(str) like a database row: no shared Decimal objects
            price = Decimal(str(CENTS[min(max(cents, 0), 20000)]))
            steps.append(Step(bid, HOURS[hour], side, price, rng.randint(1, 40), len(steps)))
    return steps


def make_blocks(n: int, grouped: int, seed: int) -> list[Block]:
    rng = random.Random(seed)
    blocks = []
    for i in range(n):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        first = rng.randrange(24)
        last = min(23, first + rng.randint(0, 11))
        mid = sum(_mid(h) for h in range(first, last + 1)) // (last - first + 1)
        cents = mid + int(rng.gauss(0, 600)) + (200 if side is Side.BUY else -200)
        group = ("member", i // 5) if i < grouped else None  # groups of 5: "08-20 or 20-08" and friends
        blocks.append(Block(
            id=i, side=side, first_hour=HOURS[first], last_hour=HOURS[last],
            price=Decimal(str(CENTS[min(max(cents, 0), 20000)])), quantity=rng.randint(1, 60),
            min_acceptance_ratio=Decimal(1) if rng.random() < 0.7 else Decimal("0.5"),
            exclusive_group=group, priority=i))
    return blocks


def timed(fn):  # type: ignore[no-untyped-def]
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-blocks", action="store_true")
    parser.add_argument("--time-limit", type=float, default=120.0, help="HiGHS time limit for the block runs")
    parser.add_argument("--skip-thin", action="store_true", help="leave out the thin book (about a minute)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {common.machine()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")

    steps = make_steps(args.steps, seed=9)
    curve_times, sort_times = [], []
    result = None
    for _ in range(args.repeat):
        t, result = timed(lambda: clear(hours=HOURS, steps=steps))
        curve_times.append(t)
        t, _ = timed(lambda: sorted(steps, key=lambda s: s.price))
        sort_times.append(t)
    if result is None:
        raise SystemExit("--repeat must be at least 1")
    volume = sum(h.volume for h in result.hours)
    print(f"\ncurves: {len(steps):,} steps over 24 hours, {volume:,} GPU-hours traded, "
          f"prices {min(h.price for h in result.hours if h.price)}..{max(h.price for h in result.hours if h.price)}")
    best, ref = min(curve_times), min(sort_times)
    print(f"  clear()                       best {best:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in curve_times)})")
    print(f"  reference: sorted() by price  best {ref:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in sort_times)})")
    rows = [("1,000,000 curve steps, 24 hours < 1 s" if args.steps == 1_000_000 else
             f"{args.steps:,} curve steps (goal is for 1,000,000)", f"{best:.3f} s ({best / ref:.2f} x the sort)",
             "met" if best < 1 else "missed")]

    if not args.skip_blocks:
        curve = make_steps(20_000, seed=10)
        thin = make_steps(2_000, seed=10)
        runs = [(500, 50, 10.0, curve), (2000, 200, None, curve)] + ([] if args.skip_thin else [(500, 50, None, thin)])
        for count, grouped, goal, book in runs:
            blocks = make_blocks(count, grouped, seed=count)
            t, res = timed(lambda blocks=blocks, book=book: clear(hours=HOURS, steps=book, blocks=blocks,
                                                                  time_limit=args.time_limit))
            accepted = sum(1 for b in res.blocks.values() if b.accepted_quantity)
            print(f"\nblocks: {count} ({grouped} in exclusive groups of 5) + {len(book):,} curve steps")
            print(f"  clear()  {t:.3f} s, method {res.method}, {res.rounds} master solve(s), {accepted} accepted, "
                  f"{len(res.paradoxically_rejected)} paradoxically rejected, time limit hit: {res.time_limit_hit}")
            rows.append((f"{count} blocks, {grouped} grouped, {len(book) // 1000}k steps" + (
                f" < {goal:.0f} s" if goal else ": report"),
                         f"{t:.3f} s ({res.rounds} solves)", ("met" if t < goal else "missed") if goal else "reported"))

    print("\ngoal                                              figure                         ")
    for goal_text, figure, verdict in rows:
        print(f"  {goal_text:<48} {figure:<32} {verdict}")


if __name__ == "__main__":
    main()
