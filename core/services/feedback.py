"""Trade outcomes and the statistics built from them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from core.charts import render_stats_chart
from domain.errors import InvalidInput, NotFound
from domain.outcomes import (
    GroupStats,
    Outcome,
    UserStats,
    confidence_bucket,
    cumulative_returns,
    parse_outcome,
    parse_return,
    summarize,
)
from domain.signals import is_signal_id
from storage.database import Database
from storage.models import TradeOutcome, utcnow
from storage.repositories import outcomes as outcomes_repo
from storage.repositories import receipts as receipts_repo
from storage.repositories import signals as signals_repo


@dataclass(frozen=True, slots=True)
class OutcomeInfo:
    signal_id: str
    outcome: str
    return_pct: float | None
    updated: bool


class FeedbackService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        user_id: int,
        signal_id: str,
        outcome: str,
        return_pct: str | float | None = None,
    ) -> OutcomeInfo:
        """Record (or change) the user's outcome for a signal: one per user and signal."""
        outcome = parse_outcome(outcome)
        ret = parse_return(return_pct)
        if ret is not None and outcome == Outcome.SKIPPED.value:
            raise InvalidInput("a skipped signal has no return_pct", field="return_pct")
        signal_id = (signal_id or "").strip()
        if not is_signal_id(signal_id):
            # Checked before the lookup: NUL or a lone surrogate would reach the
            # database driver otherwise (PostgreSQL refuses them with an error).
            raise InvalidInput(
                f"signal_id {signal_id[:128]!r} is not a signal id: 1-128 letters, digits "
                "and ._:- starting with a letter or digit",
                field="signal_id",
            )
        async with self._db.transaction() as session:
            row = await signals_repo.get_signal_row(signal_id, session=session)
            if row is None or row.seq is None:
                raise NotFound(f"no signal with id {signal_id[:128]!r}")
            existing = await outcomes_repo.get(user_id, row.seq, session=session)
            if existing is None:
                session.add(
                    TradeOutcome(
                        user_id=user_id, signal_seq=row.seq, outcome=outcome, return_pct=ret
                    )
                )
                return OutcomeInfo(signal_id, outcome, ret, updated=False)
            existing.outcome = outcome
            existing.return_pct = ret
            existing.updated_at = utcnow()
            session.add(existing)
            return OutcomeInfo(signal_id, outcome, ret, updated=True)

    async def user_stats(self, user_id: int) -> UserStats:
        """``signals_received``: distinct signals delivered to the user's chat
        destinations, plus those received over the API stream (core.receipts)."""
        async with self._db.session() as session:
            received = await outcomes_repo.signals_received(user_id, session=session)
            received += await receipts_repo.received(user_id, session=session)
            rows = await outcomes_repo.outcome_rows(session=session, user_id=user_id)
        return UserStats(received, summarize((o, r) for o, r, _c, _k in rows))

    async def by_catalyst(self) -> list[GroupStats]:
        async with self._db.session() as session:
            rows = await outcomes_repo.outcome_rows(session=session)
        groups: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for outcome, ret, catalyst, _conf in rows:
            groups[catalyst].append((outcome, ret))
        return [GroupStats(k, summarize(v)) for k, v in sorted(groups.items())]

    async def by_confidence(self) -> list[GroupStats]:
        async with self._db.session() as session:
            rows = await outcomes_repo.outcome_rows(session=session)
        groups: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for outcome, ret, _cat, conf in rows:
            groups[confidence_bucket(conf)].append((outcome, ret))
        return [GroupStats(k, summarize(v)) for k, v in sorted(groups.items())]

    async def chart(self, user_id: int, who: str) -> bytes:
        """The ``/stats`` chart (core/charts.py) as PNG bytes, rendered off the event loop."""
        by_catalyst = await self.by_catalyst()
        async with self._db.session() as session:
            mine = await outcomes_repo.user_outcomes_by_time(user_id, session=session)
        return await asyncio.to_thread(
            render_stats_chart, by_catalyst, cumulative_returns(mine), who=who
        )
