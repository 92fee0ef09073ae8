"""Outcome arithmetic: parsing what a trader reports, and the statistics built from it.

Pure: the services feed it rows, the bots and the API show its results.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.errors import InvalidInput


class Outcome(StrEnum):
    WIN = "win"
    LOSS = "loss"
    BREAKEVEN = "breakeven"
    SKIPPED = "skipped"


OUTCOMES = tuple(o.value for o in Outcome)
EXECUTED = frozenset({Outcome.WIN.value, Outcome.LOSS.value, Outcome.BREAKEVEN.value})
RETURN_RANGE = (-100.0, 10_000.0)
CONFIDENCE_BUCKETS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0001))


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


def confidence_bucket(confidence: float) -> str:
    for low, high in CONFIDENCE_BUCKETS:
        if low <= confidence < high:
            return f"{low:.1f}-{min(high, 1.0):.1f}"
    return "unknown"


def cumulative_returns(
    rows: Iterable[tuple[datetime, str, float | None]],
) -> list[tuple[datetime, float]]:
    """The running sum of reported returns, one point per executed trade with a
    return, in the order given (oldest first). Skips and trades without a return
    add no point."""
    total = 0.0
    points: list[tuple[datetime, float]] = []
    for when, outcome, ret in rows:
        if outcome in EXECUTED and ret is not None:
            total += ret
            points.append((when, round(total, 4)))
    return points


#: Fewer executed trades than this in a group and no hint is shown (``stats.min_sample``).
DEFAULT_MIN_SAMPLE = 10


def bucket_label(bucket: str) -> str:
    """``"0.8-0.9"`` as a trader reads it: ``"80–90%"``."""
    try:
        low, high = (float(part) for part in bucket.split("-"))
    except ValueError:
        return bucket
    return f"{low * 100:.0f}–{high * 100:.0f}%"


def hint_line(
    catalyst: str, bucket: str, stats: OutcomeStats, *, min_sample: int = DEFAULT_MIN_SAMPLE
) -> str | None:
    """The ledger's line for an alert of this catalyst type and confidence bucket,
    e.g. ``FDA, 80–90%: 14 W / 6 L reported, avg +4.20%``; None below ``min_sample``
    executed trades, so a handful of reports never reads as a track record."""
    if stats.trades_executed < max(1, min_sample):
        return None
    line = f"{catalyst}, {bucket_label(bucket)}: {stats.wins} W / {stats.losses} L reported"
    if stats.breakeven:
        line += f" ({stats.breakeven} breakeven)"
    if stats.avg_return is not None:
        line += f", avg {stats.avg_return_text}"
    return line
