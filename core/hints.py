"""Outcome hints on alerts: one line from the ledger for the alert's catalyst type
and confidence bucket (``domain.outcomes.hint_line``).

The ledger changes slowly and a fan-out renders many alerts at once, so the table
of (catalyst, bucket) -> statistics is read at most once per ``ttl`` seconds and
shared by every alert meanwhile (one reader at a time refreshes it).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

from domain.outcomes import (
    DEFAULT_MIN_SAMPLE,
    OutcomeStats,
    confidence_bucket,
    hint_line,
    summarize,
)
from domain.signals import Signal
from storage.database import Database
from storage.repositories import outcomes as outcomes_repo

Table = dict[tuple[str, str], OutcomeStats]


class OutcomeHints:
    def __init__(
        self,
        db: Database,
        *,
        min_sample: int = DEFAULT_MIN_SAMPLE,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._min_sample = min_sample
        self._ttl = ttl
        self._clock = clock
        self._table: Table | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def line_for(self, signal: Signal) -> str | None:
        bucket = confidence_bucket(signal.confidence)
        stats = (await self._current()).get((signal.catalyst_type, bucket))
        if stats is None:
            return None
        return hint_line(signal.catalyst_type, bucket, stats, min_sample=self._min_sample)

    async def lines(self) -> list[tuple[str, str, OutcomeStats, str]]:
        """Every (catalyst, bucket, statistics, line) with enough outcomes for a hint."""
        out = []
        for (catalyst, bucket), stats in sorted((await self._current()).items()):
            line = hint_line(catalyst, bucket, stats, min_sample=self._min_sample)
            if line is not None:
                out.append((catalyst, bucket, stats, line))
        return out

    async def _current(self) -> Table:
        if self._table is not None and self._clock() - self._read_at < self._ttl:
            return self._table
        async with self._lock:
            if self._table is None or self._clock() - self._read_at >= self._ttl:
                self._table = await self._read()
                self._read_at = self._clock()
            return self._table

    async def _read(self) -> Table:
        async with self._db.session() as session:
            rows = await outcomes_repo.outcome_rows(session=session)
        groups: dict[tuple[str, str], list[tuple[str, float | None]]] = defaultdict(list)
        for outcome, ret, catalyst, confidence in rows:
            groups[(catalyst, confidence_bucket(confidence))].append((outcome, ret))
        return {key: summarize(values) for key, values in groups.items()}
