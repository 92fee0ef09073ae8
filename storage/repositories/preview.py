"""Counting what a filter would have matched, in SQL.

:func:`filter_conditions` is :class:`~domain.filters.CompiledFilter` written as
SQL, so a preview over 100,000 stored signals is a couple of indexed
aggregates instead of 100,000 rows loaded into Python. The two are kept equal by
``tests/storage/test_preview.py``, which runs random filters through both.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.filters import SignalFilter
from storage.models import SignalRow, TradeOutcome


async def filter_conditions(
    flt: SignalFilter, since: datetime, *, session: AsyncSession
) -> list[ColumnElement[bool]]:
    """SQL conditions equal to ``flt.matches`` for signals stored since ``since``."""
    conditions: list[ColumnElement[bool]] = [col(SignalRow.timestamp) >= since]
    if flt.min_confidence is not None:
        conditions.append(col(SignalRow.confidence) >= flt.min_confidence)
    if flt.tickers:
        conditions.append(col(SignalRow.ticker).in_(flt.tickers))
    if flt.exclude_tickers:
        conditions.append(col(SignalRow.ticker).not_in(flt.exclude_tickers))
    if flt.catalyst_types:
        conditions.append(col(SignalRow.catalyst_type).in_(flt.catalyst_types))
    if flt.signal_types:
        conditions.append(col(SignalRow.signal_type).in_(flt.signal_types))
    if flt.sectors:
        conditions.append(await _sector_condition(flt, session=session))
    if flt.min_rvol is not None:
        conditions.append(col(SignalRow.rvol).is_not(None))
        conditions.append(col(SignalRow.rvol) >= flt.min_rvol)
    if flt.min_price is not None or flt.max_price is not None:
        conditions.append(col(SignalRow.price).is_not(None))
    if flt.min_price is not None:
        conditions.append(col(SignalRow.price) >= flt.min_price)
    if flt.max_price is not None:
        conditions.append(col(SignalRow.price) <= flt.max_price)
    return conditions


async def _sector_condition(flt: SignalFilter, *, session: AsyncSession) -> ColumnElement[bool]:
    # The matcher compares casefolded names, which SQL's lower() does not do for
    # every script. There are few distinct sectors: pick the stored spellings that
    # match in Python and ask SQL for exactly those. (Over the whole table, not the
    # window: the preview index answers that without a table lookup per row.)
    wanted = {s.casefold() for s in flt.sectors}
    stored = (await session.execute(select(col(SignalRow.sector)).distinct())).scalars()
    spellings = [s for s in stored if s is not None and s.casefold() in wanted]
    condition: ColumnElement[bool] = col(SignalRow.sector).in_(spellings)
    if "" in wanted:  # a signal without a sector counts as the sector ""
        condition = condition | col(SignalRow.sector).is_(None)
    return condition


async def window_total(since: datetime, *, session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(SignalRow).where(col(SignalRow.timestamp) >= since)
    return int((await session.execute(stmt)).scalar_one())


async def matched_counts(
    conditions: list[ColumnElement[bool]], *, session: AsyncSession
) -> tuple[int, dict[str, int], dict[str, int]]:
    """(matched, count per catalyst type, count per ticker) in one grouped scan."""
    stmt = (
        select(col(SignalRow.catalyst_type), col(SignalRow.ticker), func.count())
        .where(and_(*conditions))
        .group_by(col(SignalRow.catalyst_type), col(SignalRow.ticker))
    )
    total = 0
    catalysts: dict[str, int] = defaultdict(int)
    tickers: dict[str, int] = defaultdict(int)
    for catalyst, ticker, count in (await session.execute(stmt)).all():
        total += count
        catalysts[catalyst] += count
        tickers[ticker] += count
    return total, dict(catalysts), dict(tickers)


async def matched_outcomes(
    conditions: list[ColumnElement[bool]], *, session: AsyncSession
) -> list[tuple[str, float | None]]:
    """(outcome, return_pct) of every reported outcome on a matched signal."""
    stmt = (
        select(col(TradeOutcome.outcome), col(TradeOutcome.return_pct))
        .join(SignalRow, col(SignalRow.seq) == col(TradeOutcome.signal_seq))
        .where(and_(*conditions))
    )
    return [(o, r) for o, r in (await session.execute(stmt)).all()]
