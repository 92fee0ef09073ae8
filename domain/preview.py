"""Filter preview: what a filter would have sent over the last days, and how it went.

Pure: storage counts, this module shapes the answer and its text, once for
Telegram, Discord and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.errors import InvalidInput
from domain.outcomes import DEFAULT_MIN_SAMPLE, OutcomeStats

DEFAULT_DAYS = 30
MAX_DAYS = 365
TOP_N = 5


def parse_days(value: str | int | None) -> int:
    """The look-back in days: 1 to 365; blank means 30. ``7``, ``7d`` and ``7 days`` all work."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_DAYS
    if isinstance(value, bool):
        raise InvalidInput("days must be a whole number of days", field="days")
    if isinstance(value, int):
        days = value
    else:
        text = value.strip().lower().removesuffix("days").removesuffix("day").rstrip("d ")
        if not text.isdigit() or not text.isascii():
            raise InvalidInput(
                f"days must be a whole number of days such as 30 (got {value[:20]!r})",
                field="days",
            )
        days = int(text)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}", field="days")
    return days


@dataclass(frozen=True, slots=True)
class FilterPreview:
    """What a filter would have matched among the signals stored since ``since``."""

    days: int
    since: datetime
    signals_in_window: int
    matched: int
    top_catalysts: tuple[tuple[str, int], ...]
    top_tickers: tuple[tuple[str, int], ...]
    outcomes: OutcomeStats
    min_sample: int = DEFAULT_MIN_SAMPLE

    @property
    def per_day(self) -> float:
        return self.matched / self.days

    @property
    def reported(self) -> int:
        """Outcomes reported on the matched signals (skips included)."""
        o = self.outcomes
        return o.trades_executed + o.skipped

    @property
    def small_sample(self) -> bool:
        return self.outcomes.trades_executed < self.min_sample

    def outcome_text(self) -> str:
        o = self.outcomes
        if not o.trades_executed:
            return "no outcomes reported yet"
        text = (
            f"{o.wins} W / {o.losses} L of {o.trades_executed} reported, "
            f"win rate {o.win_rate_text}, avg {o.avg_return_text}"
        )
        return text + (" (small sample)" if self.small_sample else "")

    def summary_line(self) -> str:
        """One line: what a trader sees after changing a filter."""
        return (
            f"Last {self.days} days: {self.matched} of {self.signals_in_window} signals would "
            f"have matched ({self.per_day:.1f}/day); {self.outcome_text()}."
        )

    def lines(self) -> list[str]:
        """The full preview as plain-text lines (the bots add their own markup)."""
        out = [self.summary_line()]
        if self.top_catalysts:
            out.append("Top catalysts: " + _ranked(self.top_catalysts))
        if self.top_tickers:
            out.append("Top tickers: " + _ranked(self.top_tickers))
        return out


def _ranked(items: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name} {count}" for name, count in items)


def top(counts: dict[str, int], n: int = TOP_N) -> tuple[tuple[str, int], ...]:
    """The ``n`` largest counts, ties broken by name so the answer is stable."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ranked[:n])


def split_days(text: str) -> tuple[str, int]:
    """Take a look-back out of a chat command's text: ``days=7`` or ``7d`` anywhere
    among the filter's ``field=value`` words. Returns (the rest, days)."""
    days: int | None = None
    rest = []
    for word in text.split():
        lowered = word.lower()
        if lowered.startswith("days="):
            value: str = word[5:]
        elif lowered.endswith("d") and lowered[:-1].isdigit():
            value = word
        else:
            rest.append(word)
            continue
        if days is not None:
            raise InvalidInput("give the number of days once", field="days")
        days = parse_days(value)
    return " ".join(rest), DEFAULT_DAYS if days is None else days
