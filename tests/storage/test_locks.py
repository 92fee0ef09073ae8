"""Leader locks: exactly one holder at a time (PostgreSQL advisory locks; lock files
on SQLite), standbys take over, a lost lock connection drops the lead, and
database errors never end a leader loop."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from core.context import HubContext
from core.leadership import Leadership
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
        assert not await second.try_acquire()
        another = LeaderLock(other_db, "another-role")
        assert await another.try_acquire()  # names are apart
        await another.release()
        await first.release()
        assert await second.try_acquire()
        assert await second.check()
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
    task_a = asyncio.create_task(
        a.run_as_leader(LeaderLock(any_ctx.db), retry_seconds=0.05, check_seconds=0.05)
    )
    await wait_for(lambda: "a" in runs)
    task_b = asyncio.create_task(
        b.run_as_leader(LeaderLock(other_db), retry_seconds=0.05, check_seconds=0.05)
    )
    try:
        await asyncio.sleep(0.3)
        assert "b" not in runs  # standing by while a leads
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
        await wait_for(lambda: "b" in runs, timeout=10)
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await other_db.dispose()


async def _terminate_backends(ctx: HubContext) -> None:
    async with ctx.db.engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        await conn.commit()


async def test_lost_lock_connection_drops_the_lead_and_a_standby_takes_over(
    any_ctx: HubContext,
) -> None:
    if any_ctx.db.is_sqlite:
        return  # a lock file cannot be lost while its process lives
    events: list[str] = []
    other_db = Database(any_ctx.db.url)
    other_db.connect()

    def leader(name: str, db: Database) -> Leadership:
        async def up() -> None:
            events.append(f"{name} up")

        async def down() -> None:
            events.append(f"{name} down")

        return Leadership(
            LeaderLock(db, "test-role"),
            on_acquire=up,
            on_release=down,
            check_seconds=0.1,
            retry_seconds=0.1,
            takeover_delay=0.3,
        )

    a, b = leader("a", any_ctx.db), leader("b", other_db)
    task_a = asyncio.create_task(a.run())
    await wait_for(lambda: "a up" in events, timeout=10)
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.5)
        assert events == ["a up"]
        # Kill a's lock connection (and every other connection but the killer's).
        await _terminate_backends(any_ctx)
        await wait_for(lambda: "b up" in events or "a up" in events[1:], timeout=15)
        # Whoever leads next, the old lead stopped its work before anyone started
        # again: "a down" always comes before the next "up".
        assert events[1] == "a down", events
        assert sum(e.endswith(" up") for e in events) - sum(
            e.endswith(" down") for e in events
        ) == 1
    finally:
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)
        await other_db.dispose()


class FlakyLock(LeaderLock):
    """Fails the first attempts as a database that is down would."""

    def __init__(self, db: Database, failures: int) -> None:
        super().__init__(db, "flaky")
        self.failures = failures
        self.attempts = 0

    async def try_acquire(self) -> bool:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("database down")
        return await super().try_acquire()


async def test_database_errors_never_end_a_leader_loop(ctx: HubContext) -> None:
    started = asyncio.Event()

    async def up() -> None:
        started.set()

    async def down() -> None:
        pass

    lock = FlakyLock(ctx.db, failures=3)
    leadership = Leadership(
        lock, on_acquire=up, on_release=down, retry_seconds=0.01, check_seconds=0.05
    )
    task = asyncio.create_task(leadership.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        assert lock.attempts == 4
        assert leadership.leading
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not lock.held  # released on the way out
