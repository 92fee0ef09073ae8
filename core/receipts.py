"""Counting the signals users receive over the API stream.

A signal counts as *received* over the stream when this process sends it to one
of the user's WebSocket connections (live or in a replay) or returns it in a REST
answer, once per user and signal: a user's second connection, or a REST read of
what the stream already sent, adds nothing. Chat deliveries are counted from the
outbox (:func:`storage.repositories.outcomes.signals_received`).

Counting happens in memory, on the hot paths, without a write: a per-user mark of
the newest seq counted, which keeps it to one per signal as signals arrive in seq
order. A background task adds the counts to ``stream_receipts`` every
``flush_seconds`` in one statement, and once more on stop; ``/stats`` may lag by
that much. A signal older than the user's mark (a replay of old history, a REST
page far back) is not counted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from storage.database import Database
from storage.repositories import receipts as receipts_repo

log = logging.getLogger(__name__)

#: Users whose marks are kept; past this the marks start over (a few recounts at most).
MAX_USERS = 100_000


class StreamReceipts:
    def __init__(self, db: Database, flush_seconds: float = 5.0) -> None:
        self._db = db
        self._flush_seconds = flush_seconds
        self._marks: dict[int, int] = {}
        self._pending: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, user_id: int, seq: int | None) -> None:
        """``user_id`` was sent the signal ``seq`` (any stream path)."""
        if seq is None or seq <= self._marks.get(user_id, 0):
            return
        if len(self._marks) >= MAX_USERS and user_id not in self._marks:
            self._marks.clear()
        self._marks[user_id] = seq
        self._pending[user_id] = self._pending.get(user_id, 0) + 1

    def note_many(self, user_id: int, seqs: Iterable[int | None]) -> None:
        """A REST answer or a replay page: each newer than the mark counts once."""
        for seq in sorted(s for s in seqs if s is not None):
            self.note(user_id, seq)

    def pending(self, user_id: int) -> int:
        return self._pending.get(user_id, 0)

    async def flush(self) -> None:
        """Add the pending counts to the database (kept for the next try on failure)."""
        if not self._pending:
            return
        counts, self._pending = self._pending, {}
        try:
            async with self._db.transaction() as session:
                await receipts_repo.add(counts, session=session)
        except Exception as exc:
            for user_id, n in counts.items():
                self._pending[user_id] = self._pending.get(user_id, 0) + n
            log.warning("could not store stream receipts: %s", type(exc).__name__)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream-receipts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()
