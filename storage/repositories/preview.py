"""Counting what a filter would have matched, in SQL.

:func:`filter_conditions` is :class:`~domain.filters.CompiledFilter` written as
SQL, so a preview over 100,000 stored signals is a couple of indexed
aggregates instead of 100,000 rows loaded into Python. The two are kept equal by
``tests/storage/test_preview.py``, which runs random filters through both.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join
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


class OuterFirstJoin(Join):
    """An inner JOIN whose left side is the outer loop: ``CROSS JOIN ... ON`` on
    SQLite, where that keyword is documented to pin the nesting order; a plain
    ``JOIN`` everywhere else (PostgreSQL keeps statistics and plans it itself)."""

    inherit_cache = True


@compiles(OuterFirstJoin, "sqlite")
def _sqlite_cross_join(join: OuterFirstJoin, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy's own rendering ("left JOIN right ON ..."), with the keyword
    # swapped: the first " JOIN " follows the left side, which is a bare table.
    plain: str = compiler.visit_join(join, **kw)  # type: ignore[no-untyped-call]
    return plain.replace(" JOIN ", " CROSS JOIN ", 1)


def outcomes_statement(conditions: list[ColumnElement[bool]]) -> Select[str, float | None]:
    """The outcomes on matched signals, read from ``trade_outcomes`` outwards.

    Without statistics (no ANALYZE, as a hub's database usually is) SQLite would
    rather start from the signals side through ``ix_signals_timestamp``: a window
    range it guesses at a quarter of the table, then a table lookup per signal in
    the window to test the sector and rvol, ~75,000 of them at 100,000 signals
    (0.1-0.5 s). Outcomes are reported by hand, far fewer than signals: scanning
    them and fetching each one's signal by primary key (seq is the rowid) costs
    the same whatever the filter and the statistics (~10 ms for 5,000 outcomes;
    it grows with the outcomes table, not the signals). The pinned order is what
    SQLite picks by itself once ANALYZE has run.
    """
    outcomes = inspect(TradeOutcome).local_table
    signals = inspect(SignalRow).local_table
    joined = OuterFirstJoin(outcomes, signals, col(SignalRow.seq) == col(TradeOutcome.signal_seq))
    return (
        select(col(TradeOutcome.outcome), col(TradeOutcome.return_pct))
        .select_from(joined)
        .where(and_(*conditions))
    )


async def matched_outcomes(
    conditions: list[ColumnElement[bool]], *, session: AsyncSession
) -> list[tuple[str, float | None]]:
    """(outcome, return_pct) of every reported outcome on a matched signal."""
    stmt = outcomes_statement(conditions)
    return [(o, r) for o, r in (await session.execute(stmt)).all()]
