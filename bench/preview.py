"""Filter preview over N stored signals on SQLite (issue 13: under 200 ms at 100,000).

Measures ``PreviewService.preview`` (SQL aggregates, see storage/repositories/preview.py)
against the baseline a first version would write: load the window's rows and run
the router's matcher over them in Python. Both answer the same question; the
bench checks they agree before timing.

The "before" column is the same preview with the outcomes read through a plain
JOIN, the join order left to SQLite's planner (as it was until the order was
pinned, see ``outcomes_statement``): without statistics the planner drove it
from ix_signals_timestamp, ~0.2-0.5 s for "sectors + rvol". ``--analyze`` runs
ANALYZE after the load, to compare with statistics present.

    python bench/preview.py --signals 100000 --runs 15 [--analyze]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import ColumnElement, and_, insert, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.services.preview import PreviewService
from domain.filters import SignalFilter
from storage.database import Database
from storage.migrate import upgrade
from storage.models import SignalRow, TradeOutcome, User
from storage.repositories import preview as preview_repo
from storage.repositories.signals import to_signal

TICKERS = [f"T{i:03d}" for i in range(400)]
CATALYSTS = ["FDA", "M&A", "EARNINGS", "OFFERING", "SEC_FILING", "NEWS", "PARTNERSHIP"]
FILTERS = {
    "every signal": "",
    "FDA, conf >= 0.8": "catalyst_types=FDA min_confidence=0.8",
    "3 tickers, price <= 20": "tickers=T001,T002,T003 max_price=20",
    "sectors + rvol": "sectors=Healthcare,Technology min_rvol=2",
}


async def fill(db: Database, count: int, now: datetime) -> None:
    rng = random.Random(7)
    table = SignalRow.__table__  # type: ignore[attr-defined]
    batch = []
    for i in range(count):
        batch.append(
            {
                "signal_id": f"b-{i}",
                "ticker": rng.choice(TICKERS),
                "signal_type": rng.choice(["BUY", "SELL", "WATCH"]),
                "confidence": round(rng.random(), 3),
                "catalyst_type": rng.choice(CATALYSTS),
                "source": "bench",
                "price": round(rng.uniform(0.5, 80), 2),
                "rvol": round(rng.uniform(0, 6), 2),
                "sector": rng.choice(["Healthcare", "Technology", "Energy", None]),
                "headline": f"headline {i}",
                "timestamp": now - timedelta(seconds=rng.uniform(0, 40 * 86400)),
                "meta": {},
                "created_at": now,
            }
        )
        if len(batch) == 5000:
            async with db.transaction() as session:
                await session.execute(insert(table), batch)
            batch = []
    async with db.transaction() as session:
        if batch:
            await session.execute(insert(table), batch)
        users = [User(name=f"u{i}") for i in range(50)]
        session.add_all(users)
        await session.flush()
        outcomes = []
        for i in rng.sample(range(1, count + 1), min(count, 5000)):
            outcomes.append(
                {
                    "user_id": rng.choice(users).id,
                    "signal_seq": i,
                    "outcome": rng.choice(["win", "loss", "breakeven", "skipped"]),
                    "return_pct": round(rng.uniform(-20, 30), 2),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await session.execute(insert(TradeOutcome.__table__), outcomes)  # type: ignore[attr-defined]


async def python_scan(db: Database, flt: SignalFilter, since: datetime) -> tuple[int, Counter[str]]:
    """The baseline: the window's rows into Python, the router's matcher over them."""
    matcher = flt.compile()
    async with db.session() as session:
        rows = (
            await session.execute(select(SignalRow).where(col(SignalRow.timestamp) >= since))
        ).scalars()
        matched = [s for s in map(to_signal, rows) if matcher(s)]
    return len(matched), Counter(s.catalyst_type for s in matched)


async def plain_join_outcomes(
    conditions: list[ColumnElement[bool]], *, session: AsyncSession
) -> list[tuple[str, float | None]]:
    """``preview_repo.matched_outcomes`` before the fix: the join order left to the planner."""
    stmt = (
        select(col(TradeOutcome.outcome), col(TradeOutcome.return_pct))
        .join(SignalRow, col(SignalRow.seq) == col(TradeOutcome.signal_seq))
        .where(and_(*conditions))
    )
    return [(o, r) for o, r in (await session.execute(stmt)).all()]


@contextmanager
def plain_join() -> Iterator[None]:
    """PreviewService reading the outcomes the way it did before the fix."""
    pinned = preview_repo.matched_outcomes
    preview_repo.matched_outcomes = plain_join_outcomes
    try:
        yield
    finally:
        preview_repo.matched_outcomes = pinned


async def timed(service: PreviewService, flt: SignalFilter, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await service.preview(flt, 30)
        samples.append(time.perf_counter() - t0)
    return samples


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000
    return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE after the load")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite+aiosqlite:///{folder}/preview.db")
        db.connect()
        await upgrade(db)
        started = time.perf_counter()
        await fill(db, args.signals, now)
        print(f"{args.signals} signals stored in {time.perf_counter() - started:.1f} s (SQLite)")
        # As a running hub finds it: the bulk load checkpointed out of the WAL.
        await db.dispose()
        db.connect()
        async with db.session() as session:
            await session.execute(sql("PRAGMA wal_checkpoint(TRUNCATE)"))
            if args.analyze:
                await session.execute(sql("ANALYZE"))
                await session.commit()
        print(f"SQLite statistics: {'ANALYZE run' if args.analyze else 'none (no ANALYZE)'}")
        service = PreviewService(db, clock=lambda: now)
        since = now - timedelta(days=30)
        print(
            f"{'filter':<24} {'matched':>8}  {'preview (SQL)':<28} "
            f"{'before (plain JOIN)':<28} {'baseline (Python scan)':<28}"
        )
        for name, text in FILTERS.items():
            flt = SignalFilter.from_text(text)
            answer = await service.preview(flt, 30)
            expected, catalysts = await python_scan(db, flt, since)
            assert answer.matched == expected, (name, answer.matched, expected)
            assert dict(answer.top_catalysts) == dict(catalysts.most_common(5)) or (
                sorted(dict(answer.top_catalysts).values()) == sorted(catalysts.values())[-5:][::-1]
            )
            with plain_join():
                assert await service.preview(flt, 30) == answer, name
            fast = await timed(service, flt, args.runs)
            with plain_join():
                before = await timed(service, flt, args.runs)
            slow = []
            for _ in range(args.baseline_runs):
                t0 = time.perf_counter()
                await python_scan(db, flt, since)
                slow.append(time.perf_counter() - t0)
            ratio = statistics.median(slow) / statistics.median(fast)
            print(
                f"{name:<24} {answer.matched:>8}  {ms(fast):<28} {ms(before):<28} "
                f"{ms(slow):<28} {ratio:5.1f}x"
            )
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
