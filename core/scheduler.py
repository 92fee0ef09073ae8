"""The Catalyst job: run the configured source on an interval and publish what it returns.

APScheduler 3.x's AsyncIOScheduler runs one instance at a time, coalesces missed
runs and has a generous misfire grace. A source that raises is logged with the
reason and the next run goes on; bad items are logged one by one while the good
ones still publish.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.leadership import Leadership
from core.publisher import Publisher
from core.settings import SchedulerSettings
from core.sources.loader import Source
from domain.errors import HubError
from storage.locks import LeaderLock

log = logging.getLogger(__name__)

JOB_ID = "catalyst-job"


@dataclass
class RunReport:
    published: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    error: str | None = None


async def collect(source: Source) -> list[Any]:
    """Call a source (sync in a worker thread, async awaited) and list its items."""
    if inspect.iscoroutinefunction(source) or inspect.iscoroutinefunction(
        getattr(source, "__call__", None)  # noqa: B004
    ):
        result: Any = await source()  # type: ignore[misc]
    else:
        result = await asyncio.to_thread(source)
        if inspect.isawaitable(result):
            result = await result
    if result is None:
        return []
    if isinstance(result, Mapping) or not isinstance(result, Iterable):
        raise TypeError(
            f"source returned {type(result).__name__}, expected an iterable of mappings"
        )
    return list(result)


class CatalystJob:
    def __init__(self, source: Source, publisher: Publisher) -> None:
        self._source = source
        self._publisher = publisher

    async def run_once(self) -> RunReport:
        report = RunReport()
        try:
            items = await collect(self._source)
        except Exception as exc:
            report.error = f"{exc.__class__.__name__}: {exc}"
            log.error("catalyst job: source failed: %s", report.error)
            return report
        for index, item in enumerate(items):
            try:
                result = await self._publisher.publish(item)
            except HubError as exc:
                report.rejected.append(f"item {index}: {exc}")
                log.warning("catalyst job: rejected item %d: %s", index, exc)
                continue
            if result.created:
                report.published += 1
            else:
                report.duplicates += 1
        commit = getattr(self._source, "commit", None)
        if commit is not None:
            try:
                await commit()
            except Exception:
                log.exception("catalyst job: source commit failed")
        log.info(
            "catalyst job: %d published, %d duplicates, %d rejected",
            report.published,
            report.duplicates,
            len(report.rejected),
        )
        return report


class CatalystScheduler:
    """Owns the AsyncIOScheduler; created and started inside the running loop."""

    def __init__(self, job: CatalystJob, settings: SchedulerSettings) -> None:
        self._job = job
        self._settings = settings
        self._scheduler: AsyncIOScheduler | None = None
        self._running: asyncio.Task[Any] | None = None

    async def _run(self) -> None:
        self._running = asyncio.current_task()
        try:
            await self._job.run_once()
        except asyncio.CancelledError:
            # The hub is stopping (the loop cancels what is left): not a job failure,
            # and APScheduler would log it as one, with a traceback. A run cut short
            # publishes nothing twice: the next run repeats what was not stored.
            log.info("catalyst job run cancelled: the hub is stopping")
        except Exception:  # the next run must go on whatever happened
            log.exception("catalyst job failed")
        finally:
            self._running = None

    def start(self, *, run_now: bool = True) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        extra: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if run_now else {}
        scheduler.add_job(
            self._run,
            "interval",
            seconds=self._settings.interval_seconds,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(self._settings.misfire_grace_seconds),
            **extra,
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "catalyst job scheduled every %gs (source %s)",
            self._settings.interval_seconds,
            self._settings.source,
        )

    def stop(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None

    async def stop_and_wait(self, grace: float = 10.0) -> None:
        """Stop scheduling, then let a run in progress finish (up to ``grace`` seconds;
        after that it is cancelled). The hub disposes of the database after this, so
        no run may outlive it (one did, and hung the process's exit)."""
        self.stop()
        task = self._running
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=grace)

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def run_as_leader(
        self,
        lock: LeaderLock,
        *,
        retry_seconds: float | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        """Run the job while this process holds ``lock``; otherwise stand by, so a
        second scheduler process takes over when the first one dies or loses its
        database connection. Runs until cancelled, then stops the job and releases
        the lock."""

        async def start() -> None:
            self.start()

        async def stop() -> None:
            await self.stop_and_wait()

        retry = retry_seconds if retry_seconds is not None else self._settings.interval_seconds
        await Leadership(
            lock,
            on_acquire=start,
            on_release=stop,
            check_seconds=check_seconds,
            retry_seconds=retry,
        ).run()
