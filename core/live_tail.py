"""Feed the live bus from the database, for a web process that does not publish itself.

When the API runs in its own process (Procfile ``web``), signals published by the
scheduler or another web node are only in the database. The tail polls for new
``seq`` values and puts them on the local bus; the bus drops any it already
carried. PostgreSQL LISTEN/NOTIFY would cut the polling delay; polling works on
every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.bus import LiveBus
from storage.database import Database
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)


class SignalTail:
    def __init__(self, db: Database, bus: LiveBus, *, interval: float = 0.5) -> None:
        self._db = db
        self._bus = bus
        self._interval = interval
        self._cursor = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._db.session() as session:
            self._cursor = await signals_repo.latest_seq(session=session)
        self._task = asyncio.create_task(self._loop(), name="signal-tail")

    async def poll_once(self) -> int:
        async with self._db.session() as session:
            batch = await signals_repo.list_signals(
                session=session, limit=500, after_seq=self._cursor, ascending=True
            )
        for signal in batch:
            self._bus.publish(signal)
            if signal.seq is not None:
                self._cursor = max(self._cursor, signal.seq)
        return len(batch)

    async def _loop(self) -> None:
        while True:
            try:
                if await self.poll_once():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("signal tail poll failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
