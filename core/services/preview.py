"""Filter preview: "what would this filter have sent me?" over the stored signals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from domain.filters import SignalFilter
from domain.outcomes import DEFAULT_MIN_SAMPLE, summarize
from domain.preview import DEFAULT_DAYS, FilterPreview, parse_days, top
from storage.database import Database
from storage.repositories import preview as preview_repo


def _now() -> datetime:
    return datetime.now(UTC)


class PreviewService:
    def __init__(
        self,
        db: Database,
        *,
        min_sample: int = DEFAULT_MIN_SAMPLE,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._db = db
        self._min_sample = min_sample
        self._clock = clock

    async def preview(
        self, flt: SignalFilter | None, days: int | str | None = DEFAULT_DAYS
    ) -> FilterPreview:
        """Count what ``flt`` (None: every signal) matched over the last ``days``
        days, the top catalysts and tickers, and the outcomes reported on them."""
        days = parse_days(days)
        flt = flt or SignalFilter()
        since = self._clock() - timedelta(days=days)
        async with self._db.session() as session:
            conditions = await preview_repo.filter_conditions(flt, since, session=session)
            in_window = await preview_repo.window_total(since, session=session)
            matched, catalysts, tickers = await preview_repo.matched_counts(
                conditions, session=session
            )
            outcomes = await preview_repo.matched_outcomes(conditions, session=session)
        return FilterPreview(
            days=days,
            since=since,
            signals_in_window=in_window,
            matched=matched,
            top_catalysts=top(catalysts),
            top_tickers=top(tickers),
            outcomes=summarize(outcomes),
            min_sample=self._min_sample,
        )
