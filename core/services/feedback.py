"""Trade outcomes and the statistics built from them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import InvalidInput, NotFound
from core.signals import is_signal_id
from storage.database import Database
from storage.models import Outcome, TradeOutcome, utcnow
from storage.repositories import outcomes as repo
from storage.repositories import receipts as receipts_repo
from storage.repositories import signals as signals_repo

OUTCOMES = tuple(o.value for o in Outcome)
EXECUTED = frozenset({Outcome.WIN.value, Outcome.LOSS.value, Outcome.BREAKEVEN.value})
RETURN_RANGE = (-100.0, 10_000.0)
CONFIDENCE_BUCKETS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0001))


@dataclass(frozen=True, slots=True)
class OutcomeInfo:
    signal_id: str
    outcome: str
    return_pct: float | None
    updated: bool


@dataclass(frozen=True, slots=True)
class OutcomeStats:
    trades_executed: int
    wins: int
    losses: int
    breakeven: int
    skipped: int
    win_rate: float
    avg_return: float | None

    # One display rule for every platform: no executed trade yet is "n/a", not 0 %.
    @property
    def win_rate_text(self) -> str:
        return f"{self.win_rate * 100:.1f}%" if self.trades_executed else "n/a"

    @property
    def avg_return_text(self) -> str:
        return "n/a" if self.avg_return is None else f"{self.avg_return:+.2f}%"


@dataclass(frozen=True, slots=True)
class UserStats:
    signals_received: int
    outcomes: OutcomeStats

    @property
    def trades_executed(self) -> int:
        return self.outcomes.trades_executed

    @property
    def win_rate(self) -> float:
        return self.outcomes.win_rate

    @property
    def avg_return(self) -> float | None:
        return self.outcomes.avg_return


@dataclass(frozen=True, slots=True)
class GroupStats:
    key: str
    stats: OutcomeStats


def parse_outcome(value: str) -> str:
    outcome = (value or "").strip().lower()
    aliases = {"w": "win", "l": "loss", "be": "breakeven", "skip": "skipped", "s": "skipped"}
    outcome = aliases.get(outcome, outcome)
    if outcome not in OUTCOMES:
        raise InvalidInput(
            f"outcome must be one of {', '.join(OUTCOMES)} (got {value!r})", field="outcome"
        )
    return outcome


def parse_return(value: str | float | None) -> float | None:
    """A return percentage such as ``12.5``, ``-3`` or ``+4.2%``; None when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise InvalidInput(
                f"return_pct must be a number such as 12.5 or -3 (got {value!r})",
                field="return_pct",
            ) from None
    else:
        number = float(value)
    low, high = RETURN_RANGE
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(f"return_pct must be between {low:g} and {high:g}", field="return_pct")
    return number


def summarize(rows: Iterable[tuple[str, float | None]]) -> OutcomeStats:
    counts: dict[str, int] = defaultdict(int)
    returns: list[float] = []
    for outcome, ret in rows:
        counts[outcome] += 1
        if outcome in EXECUTED and ret is not None:
            returns.append(ret)
    executed = sum(counts[o] for o in EXECUTED)
    wins = counts[Outcome.WIN.value]
    return OutcomeStats(
        trades_executed=executed,
        wins=wins,
        losses=counts[Outcome.LOSS.value],
        breakeven=counts[Outcome.BREAKEVEN.value],
        skipped=counts[Outcome.SKIPPED.value],
        win_rate=round(wins / executed, 4) if executed else 0.0,
        avg_return=round(sum(returns) / len(returns), 4) if returns else None,
    )


def _bucket(confidence: float) -> str:
    for low, high in CONFIDENCE_BUCKETS:
        if low <= confidence < high:
            return f"{low:.1f}-{min(high, 1.0):.1f}"
    return "unknown"


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
            existing = await repo.get(user_id, row.seq, session=session)
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
            received = await repo.signals_received(user_id, session=session)
            received += await receipts_repo.received(user_id, session=session)
            rows = await repo.outcome_rows(session=session, user_id=user_id)
        return UserStats(received, summarize((o, r) for o, r, _c, _k in rows))

    async def by_catalyst(self) -> list[GroupStats]:
        async with self._db.session() as session:
            rows = await repo.outcome_rows(session=session)
        groups: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for outcome, ret, catalyst, _conf in rows:
            groups[catalyst].append((outcome, ret))
        return [GroupStats(k, summarize(v)) for k, v in sorted(groups.items())]

    async def by_confidence(self) -> list[GroupStats]:
        async with self._db.session() as session:
            rows = await repo.outcome_rows(session=session)
        groups: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for outcome, ret, _cat, conf in rows:
            groups[_bucket(conf)].append((outcome, ret))
        return [GroupStats(k, summarize(v)) for k, v in sorted(groups.items())]
