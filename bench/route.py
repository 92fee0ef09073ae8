"""Route one signal against 100,000 subscriptions on SQLite and enqueue the matches.

    python bench/route.py [--subs 100000] [--signals 5]

Prints the start-up cost of loading the routing index, then the time to publish
(store + route + enqueue, one transaction) with how many deliveries each matched.
Target: under 1 s per publish on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from domain.filters import KNOWN_CATALYSTS
from hub.build import build_context, prepare_database
from storage.models import Subscription, User, utcnow

TICKERS = [f"T{i:03d}" for i in range(400)] + ["ABCD", "AAPL", "TSLA"]
SECTORS = ["Healthcare", "Technology", "Energy", "Financials", "Consumer", "Industrials"]


def random_filter(rng: random.Random) -> dict[str, object]:
    """A realistic mix: a third take everything above a confidence, others narrow down."""
    f: dict[str, object] = {}
    kind = rng.random()
    if kind < 0.3:
        f["min_confidence"] = rng.choice([0.5, 0.6, 0.7, 0.8])
    elif kind < 0.55:
        f["tickers"] = rng.sample(TICKERS, rng.randint(1, 8))
    elif kind < 0.8:
        f["catalyst_types"] = rng.sample(list(KNOWN_CATALYSTS[:6]), rng.randint(1, 3))
        f["min_confidence"] = rng.choice([0.6, 0.7])
    else:
        f["max_price"] = rng.choice([5, 10, 20, 50])
        f["min_rvol"] = rng.choice([1.5, 2.0, 3.0])
        if rng.random() < 0.5:
            f["sectors"] = rng.sample(SECTORS, 2)
    if rng.random() < 0.1:
        f["exclude_tickers"] = rng.sample(TICKERS, 2)
    return f


async def main(n_subs: int, n_signals: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="catalyst-bench-"))
    settings = Settings(database={"url": f"sqlite+aiosqlite:///{folder / 'bench.db'}"})
    ctx = build_context(settings)
    await prepare_database(ctx, force=True)
    rng = random.Random(42)
    now = utcnow()
    async with ctx.db.transaction() as session:
        session.add(User(name="bench"))
    sub_table = Subscription.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "user_id": 1,
            "platform": rng.choice(["telegram", "discord"]),
            "destination": str(100000 + i),
            "filter": random_filter(rng),
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n_subs)
    ]
    started = time.perf_counter()
    async with ctx.db.transaction() as session:
        for start in range(0, len(rows), 10000):
            await session.execute(sub_table.insert(), rows[start : start + 10000])
    print(f"inserted {n_subs:,} subscriptions in {time.perf_counter() - started:.2f}s")

    def sig(i: int) -> dict[str, object]:
        return {
            "signal_id": f"bench-{i}",
            "ticker": "ABCD",
            "signal_type": "BUY",
            "confidence": 0.82,
            "catalyst_type": "FDA",
            "price": 4.2,
            "rvol": 3.4,
            "sector": "Healthcare",
        }

    t0 = time.perf_counter()
    loaded = await ctx.publisher.warm()
    print(
        f"start-up: routing index of {loaded:,} subscriptions loaded in {time.perf_counter() - t0:.2f}s"
    )
    t0 = time.perf_counter()
    first = await ctx.publisher.publish(sig(0))
    first_s = time.perf_counter() - t0
    print(f"first publish: {first_s * 1000:.0f} ms, {first.deliveries:,} deliveries")
    warm: list[float] = []
    for i in range(1, n_signals + 1):
        t0 = time.perf_counter()
        result = await ctx.publisher.publish(sig(i))
        warm.append(time.perf_counter() - t0)
    print(
        f"warm publish: median {statistics.median(warm) * 1000:.0f} ms, "
        f"max {max(warm) * 1000:.0f} ms over {n_signals} signals, "
        f"{result.deliveries:,} deliveries each"
    )
    # Baseline in the same run: match with explain() (no compiled matcher), for comparison.
    from domain.filters import SignalFilter
    from domain.signals import Signal

    filters = [SignalFilter.from_mapping(r["filter"]) for r in rows]  # type: ignore[arg-type]
    s = Signal.parse(sig(999))
    t0 = time.perf_counter()
    naive = sum(1 for f in filters if f.explain(s) is None)
    naive_s = time.perf_counter() - t0
    compiled = [f.compile() for f in filters]
    t0 = time.perf_counter()
    fast = sum(1 for m in compiled if m(s))
    fast_s = time.perf_counter() - t0
    assert naive == fast
    print(
        f"matching only: compiled {fast_s * 1000:.0f} ms vs explain() {naive_s * 1000:.0f} ms "
        f"({naive_s / fast_s:.1f}x)"
    )
    await ctx.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subs", type=int, default=100_000)
    parser.add_argument("--signals", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.subs, args.signals))
