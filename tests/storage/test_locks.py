"""Exactly one process runs the Catalyst job: a PostgreSQL advisory lock (always
granted on SQLite, which is single-machine)."""

from __future__ import annotations

import asyncio
from typing import Any

from core.context import HubContext
from core.scheduler import CatalystJob, CatalystScheduler
from core.settings import SchedulerSettings
from storage.database import Database
from storage.locks import LeaderLock
from tests.fakes import wait_for


async def test_only_one_holder_at_a_time(any_ctx: HubContext) -> None:
    other_db = Database(any_ctx.db.url)
    other_db.connect()
    first, second = LeaderLock(any_ctx.db), LeaderLock(other_db)
    try:
        assert await first.try_acquire()
        if any_ctx.db.is_sqlite:
            assert await second.try_acquire()  # one machine: nothing to arbitrate
            return
        assert not await second.try_acquire()
        await first.release()
        assert await second.try_acquire()
    finally:
        await first.release()
        await second.release()
        await other_db.dispose()


async def test_standby_scheduler_takes_over(any_ctx: HubContext) -> None:
    runs: list[str] = []

    def source_for(name: str) -> Any:
        def source() -> list[dict[str, Any]]:
            runs.append(name)
            return []

        return source

    other_db = Database(any_ctx.db.url)
    other_db.connect()
    settings = SchedulerSettings(interval_seconds=0.1)
    a = CatalystScheduler(CatalystJob(source_for("a"), any_ctx.publisher), settings)
    b = CatalystScheduler(CatalystJob(source_for("b"), any_ctx.publisher), settings)
    task_a = asyncio.create_task(a.run_as_leader(LeaderLock(any_ctx.db)))
    await wait_for(lambda: "a" in runs)
    task_b = asyncio.create_task(b.run_as_leader(LeaderLock(other_db), retry_seconds=0.05))
    try:
        if not any_ctx.db.is_sqlite:
            await asyncio.sleep(0.3)
            assert "b" not in runs  # standing by while a leads
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
        await wait_for(lambda: "b" in runs)
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await other_db.dispose()
