"""The in-memory window of recent signals answers exactly what the database answers,
or not at all: after publishes, after a restart, and after backfills that reach
this process through the tail (from another publisher, with old timestamps)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.context import HubContext
from core.recent import RecentSignals
from domain.filters import SignalFilter
from domain.signals import Signal
from tests.conftest import PG_URL, _backends, _context, reset_postgres, settings_for

BASE = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
TICKERS = ("AAA", "BBB", "CCC", "DDD")


async def started(ctx: HubContext) -> HubContext:
    await ctx.tail.start()
    await ctx.recent.start()
    return ctx


async def stopped(ctx: HubContext) -> None:
    await ctx.recent.stop()
    await ctx.tail.stop()
    await ctx.auth.settle()
    await ctx.dispatcher.stop()
    await ctx.db.dispose()


@pytest.fixture(params=_backends())
async def settings_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Settings for contexts sharing one database (a window of 40 signals)."""
    if request.param == "postgresql":
        await reset_postgres(PG_URL)

    def make(**overrides: Any) -> Any:
        url = PG_URL if request.param == "postgresql" else None
        live = {"recent_signals": 40, **overrides.pop("live", {})}
        return settings_for(tmp_path, db_url=url, live=live, **overrides)

    yield make


async def publish_many(ctx: HubContext, count: int, start: int = 0, *, shift: int = 0) -> None:
    for i in range(start, start + count):
        await ctx.publisher.publish(
            {
                "signal_id": f"s{i}",
                "ticker": TICKERS[i % len(TICKERS)],
                "confidence": (i * 37 % 100) / 100,
                "catalyst_type": ("FDA", "M&A", "EARNINGS")[i % 3],
                "price": float(i % 30),
                # Timestamps not in seq order: every 5th is an hour older.
                "timestamp": BASE + timedelta(minutes=i + shift) - timedelta(hours=i % 5 == 0),
                "metadata": {"i": i, "big": 1e16, "text": "é\u2028"},
            }
        )


def queries(head: int) -> list[dict[str, Any]]:
    filters = [
        None,
        SignalFilter(min_confidence=0.5),
        SignalFilter(tickers=("AAA", "CCC")),
        SignalFilter(min_confidence=0.99),  # rejects nearly everything: scans far
    ]
    out: list[dict[str, Any]] = []
    for limit, flt, since, ticker in itertools.product(
        (1, 7, 50, 100),
        filters,
        (None, BASE + timedelta(minutes=30), BASE + timedelta(days=1)),
        (None, "BBB", "ZZZ"),
    ):
        out.append({"limit": limit, "flt": flt, "since": since, "ticker": ticker})
    for after_seq in (0, 1, head // 2, head - 45, head - 40, head - 30, head - 1, head, head + 5):
        for limit, flt in itertools.product((1, 10, 100), filters):
            out.append(
                {"limit": limit, "flt": flt, "after_seq": max(after_seq, 0), "ascending": True}
            )
    return out


def body(signals: list[Signal]) -> list[bytes]:
    return [s.public_json for s in signals]


async def assert_window_matches_database(ctx: HubContext, *, must_answer: int) -> int:
    """Every query the window answers equals the database's answer; returns how many it
    answered (at least ``must_answer``)."""
    head = await ctx.services.signals.latest_seq()
    answered = 0
    for query in queries(head):
        window = ctx.recent.query(**query)
        database = await ctx.services.signals.query(**query)
        if window is not None:
            answered += 1
            assert body(window) == body(database), query
    assert answered >= must_answer
    # The common query (the newest few, no filter) is always the window's.
    newest = ctx.recent.query(limit=20)
    assert newest is not None
    assert body(newest) == body(await ctx.services.signals.query(limit=20))
    return answered


async def test_window_equals_database_after_publishes(settings_factory: Any) -> None:
    ctx = await started(await _context(settings_factory()))
    try:
        assert ctx.recent.ready and len(ctx.recent) == 0 and ctx.recent.floor == 0
        await publish_many(ctx, 25)  # fewer than the window holds: it covers everything
        assert ctx.recent.floor == 0
        await assert_window_matches_database(ctx, must_answer=len(queries(25)))
        await publish_many(ctx, 95, start=25)  # now it has evicted the oldest
        assert ctx.recent.floor > 0 and len(ctx.recent) < 60
        await assert_window_matches_database(ctx, must_answer=50)
        for signal_id in ("s119", "s100", "s3"):
            held = ctx.recent.get(signal_id)
            stored = await ctx.services.signals.get(signal_id)
            assert held is None or held.public_json == stored.public_json
        assert ctx.recent.get("s119") is not None and ctx.recent.get("s3") is None
    finally:
        await stopped(ctx)


async def test_window_equals_database_after_a_restart(settings_factory: Any) -> None:
    first = await started(await _context(settings_factory()))
    try:
        await publish_many(first, 70)
    finally:
        await stopped(first)
    again = await started(await _context(settings_factory()))
    try:
        assert again.recent.floor == 70 - 40  # seeded with the newest 40
        await assert_window_matches_database(again, must_answer=50)
        await publish_many(again, 10, start=70)
        await assert_window_matches_database(again, must_answer=50)
    finally:
        await stopped(again)


async def test_window_equals_database_after_backfills_from_another_publisher(
    settings_factory: Any,
) -> None:
    here = await started(await _context(settings_factory()))
    other = await _context(settings_factory())  # another process: publishes, serves nothing
    try:
        await publish_many(here, 12)
        # Backfilled history: old timestamps, published elsewhere, arriving by the tail.
        await publish_many(other, 30, start=100, shift=-10_000)
        await here.tail.poll_once()
        await assert_window_matches_database(here, must_answer=50)
        await publish_many(here, 5, start=200)  # the tail announces the gap first
        await publish_many(other, 5, start=300, shift=-20_000)
        await here.tail.poll_once()
        await assert_window_matches_database(here, must_answer=50)
        assert here.recent.head == await here.services.signals.latest_seq()
    finally:
        await other.dispatcher.stop()
        await other.db.dispose()
        await stopped(here)


async def test_window_shows_corrections_and_retractions_from_any_publisher(
    settings_factory: Any,
) -> None:
    """REST reads served from memory never show a withdrawn signal as active."""
    here = await started(await _context(settings_factory()))
    other = await _context(settings_factory())  # another process
    try:
        await publish_many(here, 20)
        await here.publisher.publish({"signal_id": "s5", "status": "retracted"})
        await here.publisher.publish({"signal_id": "s7", "headline": "fixed here"})
        await other.publisher.publish({"signal_id": "s9", "status": "retracted"})
        await other.publisher.publish({"signal_id": "s11", "headline": "fixed elsewhere"})
        await here.tail.poll_once()
        await assert_window_matches_database(here, must_answer=50)
        s5, s7, s9, s11 = (here.recent.get(f"s{i}") for i in (5, 7, 9, 11))
        assert s5 is not None and s5.retracted and s5.revision == 1
        assert s7 is not None and s7.headline == "fixed here"
        assert s9 is not None and s9.retracted
        assert s11 is not None and s11.headline == "fixed elsewhere"
    finally:
        await other.dispatcher.stop()
        await other.db.dispose()
        await stopped(here)


async def test_a_window_that_cannot_answer_says_so(settings_factory: Any) -> None:
    ctx = await _context(settings_factory())
    try:
        await publish_many(ctx, 5)
        window = RecentSignals(ctx.db, ctx.bus, 40)
        assert window.query(limit=5) is None  # not started: ask the database
        await window.start()
        assert window.query(limit=5) is not None
        # An arrival out of seq order: what lies below it is no longer known complete.
        late = (await ctx.services.signals.get("s2")).with_seq(900)
        ctx.bus.publish(late)
        ctx.bus.publish((await ctx.services.signals.get("s1")).with_seq(800))
        assert window.floor == 900 and len(window) == 0
        assert window.query(limit=5) is None
        assert window.query(limit=5, after_seq=0, ascending=True) is None
        assert window.query(limit=5, after_seq=900, ascending=True) == []
        await window.stop()
        assert window.query(limit=5) is None
        off = RecentSignals(ctx.db, ctx.bus, 0)  # live.recent_signals = 0: off
        await off.start()
        assert off.query(limit=5) is None
    finally:
        await ctx.dispatcher.stop()
        await ctx.db.dispose()


def test_the_window_capacity_comes_from_the_settings(tmp_path: Path) -> None:
    from hub.build import build_context

    ctx = build_context(settings_for(tmp_path, live={"recent_signals": 123}))
    assert ctx.recent._capacity == 123


async def test_window_keeps_the_database_scan_cap(settings_factory: Any) -> None:
    """The database query looks at MAX_SCAN rows at most; the window stops there too."""
    from storage.repositories import signals as signals_repo

    ctx = await _context(settings_factory(live={"recent_signals": 3000}))
    try:
        async with ctx.db.transaction() as session:
            for i in range(2300):
                signal = Signal.parse(
                    {
                        "signal_id": f"c{i}",
                        "ticker": "AAA",
                        "confidence": 0.99 if i < 150 else 0.1,  # matches only far back
                        "timestamp": BASE + timedelta(seconds=i),
                    }
                )
                await signals_repo.insert_signal(signal, session=session)
        await started(ctx)
        flt = SignalFilter(min_confidence=0.9)
        for limit in (5, 100):
            window = ctx.recent.query(limit=limit, flt=flt)
            database = await ctx.services.signals.query(limit=limit, flt=flt)
            assert window is not None and body(window) == body(database)
            assert len(database) < limit  # cut by the cap, not by the limit
    finally:
        await stopped(ctx)


def test_a_copy_with_a_new_seq_serializes_anew() -> None:
    signal = Signal.parse({"ticker": "AAA", "confidence": 0.5})
    assert b'"seq":null' in signal.public_json
    assert b'"seq":7' in signal.with_seq(7).public_json
