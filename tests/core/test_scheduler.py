"""The Catalyst job and its APScheduler wiring."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from core.context import HubContext
from core.scheduler import CatalystJob, CatalystScheduler, collect
from core.settings import SchedulerSettings
from core.sources.demo import DemoSource
from core.sources.loader import import_callable, load_source
from domain.errors import ConfigError
from tests.fakes import signal, wait_for

CALLS: list[str] = []


def sync_source() -> list[dict[str, Any]]:
    """A sync source: must run in a worker thread, not the event loop's thread."""
    CALLS.append(threading.current_thread().name)
    return [signal(f"sync-{len(CALLS)}")]


async def async_source() -> list[dict[str, Any]]:
    CALLS.append("async")
    return [signal(f"async-{len(CALLS)}")]


def broken_source() -> list[dict[str, Any]]:
    raise RuntimeError("feed unavailable")


def mixed_source() -> list[Any]:
    return [signal("good-1"), {"ticker": "AAPL", "confidence": 7}, "junk", signal("good-2")]


async def test_sync_source_runs_in_a_worker_thread(ctx: HubContext) -> None:
    CALLS.clear()
    report = await CatalystJob(sync_source, ctx.publisher).run_once()
    assert report.published == 1
    assert CALLS and CALLS[0] != threading.current_thread().name


async def test_scheduler_runs_sync_and_async_sources(ctx: HubContext) -> None:
    CALLS.clear()
    schedulers = [
        CatalystScheduler(CatalystJob(src, ctx.publisher), SchedulerSettings(interval_seconds=0.2))
        for src in (sync_source, async_source)
    ]
    for s in schedulers:
        s.start()
    try:
        await wait_for(lambda: CALLS.count("async") >= 2 and len(CALLS) - CALLS.count("async") >= 2)
    finally:
        for s in schedulers:
            s.stop()
    stored = await ctx.services.signals.recent(50)
    assert any(s.signal_id.startswith("sync-") for s in stored)
    assert any(s.signal_id.startswith("async-") for s in stored)


async def test_failing_source_is_logged_and_next_run_goes_on(
    ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    job = CatalystJob(broken_source, ctx.publisher)
    caplog.set_level(logging.ERROR)
    report = await job.run_once()
    assert report.error == "RuntimeError: feed unavailable"
    assert "feed unavailable" in caplog.text
    assert (await job.run_once()).error is not None  # still callable


async def test_bad_items_are_logged_and_good_ones_publish(
    ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    report = await CatalystJob(mixed_source, ctx.publisher).run_once()
    assert report.published == 2
    assert len(report.rejected) == 2
    assert "confidence" in report.rejected[0]
    assert "a signal must be a JSON object" in report.rejected[1]
    assert "rejected item 1" in caplog.text


async def test_source_returning_a_non_iterable_is_an_error() -> None:
    with pytest.raises(TypeError, match="expected an iterable"):
        await collect(lambda: 42)  # type: ignore[arg-type, return-value]
    assert await collect(lambda: None) == []  # type: ignore[arg-type, return-value]


def test_source_paths_resolve_and_fail_clearly(ctx: HubContext) -> None:
    assert import_callable("tests.core.test_scheduler:sync_source") is sync_source
    with pytest.raises(ConfigError, match="cannot import module"):
        import_callable("no_such_module_xyz:run")
    with pytest.raises(ConfigError, match="has no attribute"):
        import_callable("tests.core.test_scheduler:missing")
    assert isinstance(load_source(SchedulerSettings(source="demo"), ctx.db), DemoSource)


async def test_demo_source_publishes_fresh_signals(ctx: HubContext) -> None:
    job = CatalystJob(DemoSource(batch=3), ctx.publisher)
    first = await job.run_once()
    second = await job.run_once()
    assert first.published == 3 and second.published == 3
    assert not first.rejected


async def test_one_instance_at_a_time(ctx: HubContext) -> None:
    running = {"now": 0, "max": 0, "runs": 0}

    async def slow_source() -> list[dict[str, Any]]:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.5)
        running["now"] -= 1
        running["runs"] += 1
        return []

    sched = CatalystScheduler(
        CatalystJob(slow_source, ctx.publisher), SchedulerSettings(interval_seconds=0.1)
    )
    sched.start()
    try:
        await wait_for(lambda: running["runs"] >= 2)
    finally:
        sched.stop()
    assert running["max"] == 1


def test_demo_signals_vary_so_they_never_look_like_resends() -> None:
    source = DemoSource(batch=3, seed=7)
    runs = [source() for _ in range(10)]
    every = [s for run in runs for s in run]
    shapes = {(s["ticker"], s["headline"], s["confidence"], s["signal_type"]) for s in every}
    assert len(shapes) == len(every)  # no alert repeats under a new id
    assert len({s["headline"] for s in every}) >= 15
    assert all(len({s["ticker"] for s in run}) == 3 for run in runs)
