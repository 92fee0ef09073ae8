"""Filter preview: the SQL count equals the router's matcher, and the summary adds up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select, text
from sqlmodel import col

from core.context import HubContext
from core.services.preview import PreviewService
from domain.filters import SignalFilter
from domain.signals import Signal, SignalType
from storage.models import SignalRow, TradeOutcome, User
from storage.repositories import preview as preview_repo
from storage.repositories.signals import to_signal

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TICKERS = ["AAPL", "TSLA", "ABCD", "XYZ", "MSFT"]
CATALYSTS = ["FDA", "M&A", "EARNINGS", "OFFERING", "NEWS"]
SECTORS = [None, "Healthcare", "healthcare", "Technology", "ÉNERGIE", "énergie", "Straße"]
# Boundaries: the filters below use these exact values, so >= versus > shows.
EDGES = [None, 0.0, 0.5, 0.7, 1.0, 5.0, 20.0, 20.000001]


def _rows(rng: random.Random, count: int) -> list[SignalRow]:
    rows = []
    for i in range(count):
        rows.append(
            SignalRow(
                signal_id=f"p-{i}",
                ticker=rng.choice(TICKERS),
                signal_type=rng.choice(["BUY", "SELL", "WATCH"]),
                confidence=rng.choice([0.0, 0.5, 0.69, 0.7, 0.71, 1.0]),
                catalyst_type=rng.choice(CATALYSTS),
                source="test",
                price=rng.choice(EDGES),
                rvol=rng.choice(EDGES),
                sector=rng.choice(SECTORS),
                headline=f"headline {i}",
                timestamp=NOW - timedelta(days=rng.choice([0.5, 3, 29.9, 30.1, 45])),
                meta={},
            )
        )
    return rows


def _random_filter(rng: random.Random) -> SignalFilter:
    data: dict[str, object] = {}
    if rng.random() < 0.4:
        data["min_confidence"] = rng.choice([0.5, 0.7, 1.0])
    if rng.random() < 0.3:
        data["tickers"] = rng.sample(TICKERS, rng.randint(1, 3))
    if rng.random() < 0.3:
        data["exclude_tickers"] = rng.sample(TICKERS, rng.randint(1, 2))
    if rng.random() < 0.3:
        data["catalyst_types"] = rng.sample(CATALYSTS, rng.randint(1, 3))
    if rng.random() < 0.3:
        data["signal_types"] = rng.sample(["BUY", "SELL", "WATCH"], rng.randint(1, 2))
    if rng.random() < 0.3:
        data["sectors"] = rng.sample(["HEALTHCARE", "énergie", "STRASSE", "technology"], 2)
    for name in ("min_rvol", "min_price", "max_price"):
        if rng.random() < 0.3:
            data[name] = rng.choice([0.0, 0.5, 5.0, 20.0])
    try:
        return SignalFilter.from_mapping(data)
    except Exception:  # min_price above max_price: drop the range
        data.pop("max_price", None)
        return SignalFilter.from_mapping(data)


async def test_sql_conditions_equal_the_matcher(any_ctx: HubContext) -> None:
    rng = random.Random(11)
    async with any_ctx.db.transaction() as session:
        session.add_all(_rows(rng, 400))
        users = [User(name=f"trader-{i}") for i in range(3)]
        session.add_all(users)
        await session.flush()
        seqs = list((await session.execute(select(col(SignalRow.seq)))).scalars())
        for user in users:  # outcomes on some signals, by one to three users
            for seq in rng.sample(seqs, 120):
                outcome = rng.choice(["win", "loss", "breakeven", "skipped"])
                ret = rng.choice([None, -3.5, 0.0, 12.25])
                session.add(
                    TradeOutcome(user_id=user.id, signal_seq=seq, outcome=outcome, return_pct=ret)
                )
    since = NOW - timedelta(days=30)
    async with any_ctx.db.session() as session:
        stored = [to_signal(r) for r in (await session.execute(select(SignalRow))).scalars()]
        in_window = [s for s in stored if s.timestamp >= since]
        reported: dict[str, list[tuple[str, float | None]]] = {}
        outcome_rows = select(
            col(SignalRow.signal_id), col(TradeOutcome.outcome), col(TradeOutcome.return_pct)
        ).join(TradeOutcome, col(TradeOutcome.signal_seq) == col(SignalRow.seq))
        for signal_id, outcome, ret in (await session.execute(outcome_rows)).all():
            reported.setdefault(signal_id, []).append((outcome, ret))
        for _ in range(150):
            flt = _random_filter(rng)
            conditions = await preview_repo.filter_conditions(flt, since, session=session)
            found = set(
                (
                    await session.execute(select(col(SignalRow.signal_id)).where(and_(*conditions)))
                ).scalars()
            )
            expected = {s.signal_id for s in in_window if flt.matches(s)}
            assert found == expected, flt.to_text()
            # The outcomes query (its join order pinned on SQLite) reads the same signals.
            outcomes = await preview_repo.matched_outcomes(conditions, session=session)
            wanted = [o for signal_id in expected for o in reported.get(signal_id, [])]
            assert sorted(outcomes, key=repr) == sorted(wanted, key=repr), flt.to_text()


async def test_outcomes_join_is_driven_from_trade_outcomes_on_sqlite(ctx: HubContext) -> None:
    """Without statistics (no ANALYZE) SQLite drove the outcomes join from
    ix_signals_timestamp: a table lookup per signal in the window to test sector
    and rvol, 0.2-0.5 s at 100,000 signals for ``sectors=... min_rvol=2`` (see
    bench/preview.py). The outcomes table must be the outer loop, each signal
    fetched by its primary key, whatever the filter."""
    async with ctx.db.transaction() as session:
        session.add_all(_rows(random.Random(5), 40))
    since = NOW - timedelta(days=30)
    async with ctx.db.session() as session:
        has_stats = await session.execute(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        )
        assert has_stats.scalar_one() == 0  # the planner works from its defaults
        for filter_text in (
            "sectors=Healthcare,Technology min_rvol=2",
            "",
            "catalyst_types=FDA min_confidence=0.8",
            "tickers=AAPL,TSLA max_price=20",
        ):
            flt = SignalFilter.from_text(filter_text)
            conditions = await preview_repo.filter_conditions(flt, since, session=session)
            stmt = preview_repo.outcomes_statement(conditions).compile(
                dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
            )
            plan = [
                row[-1] for row in (await session.execute(text(f"EXPLAIN QUERY PLAN {stmt}"))).all()
            ]
            assert plan[0].startswith("SCAN trade_outcomes"), (filter_text, plan)
            assert plan[1].startswith("SEARCH signals USING INTEGER PRIMARY KEY"), (
                filter_text,
                plan,
            )


async def test_preview_counts_tops_and_outcomes(ctx: HubContext) -> None:
    def signal(i: int, ticker: str, catalyst: str, age_days: float) -> Signal:
        return Signal(
            signal_id=f"s-{i}",
            ticker=ticker,
            signal_type=SignalType.BUY,
            confidence=0.8,
            catalyst_type=catalyst,
            source="test",
            price=10.0,
            timestamp=NOW - timedelta(days=age_days),
        )

    signals = [signal(i, "ABCD", "FDA", 1) for i in range(6)]
    signals += [signal(10 + i, "XYZ", "FDA", 2) for i in range(3)]
    signals += [signal(20 + i, "XYZ", "EARNINGS", 3) for i in range(4)]
    signals += [signal(30, "ABCD", "FDA", 40)]  # outside the window
    for s in signals:
        await ctx.publisher.publish(s)
    async with ctx.db.transaction() as session:
        user = User(name="trader")
        session.add(user)
        await session.flush()
        seqs = dict(
            (await session.execute(select(col(SignalRow.signal_id), col(SignalRow.seq)))).all()
        )
        reports = [("s-0", "win", 10.0), ("s-1", "loss", -4.0), ("s-2", "win", 2.0)]
        reports += [("s-20", "loss", -1.0), ("s-30", "win", 50.0)]  # not FDA / too old
        for signal_id, outcome, ret in reports:
            session.add(
                TradeOutcome(
                    user_id=user.id, signal_seq=seqs[signal_id], outcome=outcome, return_pct=ret
                )
            )

    service = PreviewService(ctx.db, min_sample=3, clock=lambda: NOW)
    preview = await service.preview(SignalFilter.from_text("catalyst_types=FDA"), "30d")
    assert (preview.days, preview.signals_in_window, preview.matched) == (30, 13, 9)
    assert preview.top_catalysts == (("FDA", 9),)
    assert preview.top_tickers == (("ABCD", 6), ("XYZ", 3))
    o = preview.outcomes
    assert (o.wins, o.losses, o.trades_executed) == (2, 1, 3)
    assert o.avg_return == 2.6667  # rounded to 4 places, as /stats does
    assert not preview.small_sample
    assert preview.summary_line() == (
        "Last 30 days: 9 of 13 signals would have matched (0.3/day); "
        "2 W / 1 L of 3 reported, win rate 66.7%, avg +2.67%."
    )

    everything = await PreviewService(ctx.db, clock=lambda: NOW).preview(None, 7)
    assert everything.matched == 13
    assert everything.top_catalysts == (("FDA", 9), ("EARNINGS", 4))
    assert everything.small_sample  # 4 executed outcomes < the default 10
    assert everything.summary_line().endswith("(small sample).")
    assert "Top tickers: XYZ 7, ABCD 6" in everything.lines()
