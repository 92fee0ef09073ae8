"""Run a piece of work in exactly one process of many: the leader of a named lock.

Any number of processes may run the same role. Each runs a :class:`Leadership`
loop per piece of work that only one may do at a time (the Catalyst job,
Telegram polling, the Discord gateway, sending for one platform):

* a standby tries the lock every ``retry_seconds``;
* the leader starts the work (``on_acquire``), then checks its lock every
  ``check_seconds``; when the lock is lost (its database connection died, so
  the server freed it) it stops the work (``on_release``) and stands by again;
* where a lock can be lost (PostgreSQL), a new leader waits one check period
  plus the check timeout before starting, so a leader that lost its lock has
  noticed and stopped: there are never two leaders at work;
* database errors never end the loop: they are logged once per streak and
  retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from storage.locks import CHECK_TIMEOUT, LeaderLock

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[None]]
MAX_BACKOFF = 30.0


class Leadership:
    def __init__(
        self,
        lock: LeaderLock,
        *,
        on_acquire: Action,
        on_release: Action,
        check_seconds: float = 2.0,
        retry_seconds: float = 2.0,
        takeover_delay: float | None = None,
    ) -> None:
        self._lock = lock
        self._on_acquire = on_acquire
        self._on_release = on_release
        self._check = check_seconds
        self._retry = retry_seconds
        if takeover_delay is None:
            takeover_delay = check_seconds + CHECK_TIMEOUT if lock.can_be_lost else 0.0
        self._takeover_delay = takeover_delay
        self._working = False
        self.terms = 0  #: how many times this process has become the leader

    @property
    def name(self) -> str:
        return self._lock.name

    @property
    def leading(self) -> bool:
        return self._working

    async def run(self) -> None:
        """Lead or stand by until cancelled; then stop the work and free the lock."""
        failures = 0
        announced = False
        try:
            while True:
                try:
                    got = await self._lock.try_acquire()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    delay = min(MAX_BACKOFF, self._retry * 2 ** min(failures, 5))
                    if failures == 1:
                        log.warning(
                            "%s: cannot reach the database to elect a leader (%s); "
                            "retrying with backoff",
                            self.name,
                            exc.__class__.__name__,
                        )
                    await asyncio.sleep(delay)
                    continue
                if failures:
                    log.info("%s: database reachable again", self.name)
                failures = 0
                if not got:
                    if not announced:
                        log.info("%s: another process leads; standing by", self.name)
                        announced = True
                    await asyncio.sleep(self._retry)
                    continue
                announced = False
                await self._lead()
        finally:
            await self._stop_work()
            with contextlib.suppress(Exception):
                await self._lock.release()

    async def _lead(self) -> None:
        if self._takeover_delay:
            await asyncio.sleep(self._takeover_delay)
            if not await self._lock.check():
                return
        self.terms += 1
        log.info("%s: this process leads", self.name)
        self._working = True  # on_release must undo a partial start too
        try:
            await self._on_acquire()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: could not start; giving up the lead", self.name)
            await self._stop_work()
            await self._lock.release()
            await asyncio.sleep(self._retry)
            return
        while await self._lock.check():  # noqa: ASYNC110 - polling the lock is the point
            await asyncio.sleep(self._check)
        log.warning("%s: lock lost; stopping and standing by", self.name)
        await self._stop_work()
        await self._lock.release()

    async def _stop_work(self) -> None:
        if not self._working:
            return
        self._working = False
        try:
            await self._on_release()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: error while stopping", self.name)
