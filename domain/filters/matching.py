"""The compiled matcher: what the router runs per subscription and signal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.signals import Signal

if TYPE_CHECKING:
    from domain.filters.model import SignalFilter


class CompiledFilter:
    """``SignalFilter.matches`` with sets precomputed (no message formatting)."""

    __slots__ = (
        "catalysts",
        "exclude",
        "max_price",
        "min_confidence",
        "min_price",
        "min_rvol",
        "sectors",
        "signal_types",
        "tickers",
    )

    def __init__(self, f: SignalFilter) -> None:
        self.min_confidence = f.min_confidence
        self.tickers = frozenset(f.tickers) or None
        self.exclude = frozenset(f.exclude_tickers) or None
        self.catalysts = frozenset(f.catalyst_types) or None
        self.signal_types = frozenset(f.signal_types) or None
        self.sectors = frozenset(s.casefold() for s in f.sectors) or None
        self.min_rvol = f.min_rvol
        self.min_price = f.min_price
        self.max_price = f.max_price

    def __call__(self, s: Signal) -> bool:
        if self.min_confidence is not None and s.confidence < self.min_confidence:
            return False
        if self.tickers is not None and s.ticker not in self.tickers:
            return False
        if self.exclude is not None and s.ticker in self.exclude:
            return False
        if self.catalysts is not None and s.catalyst_type not in self.catalysts:
            return False
        if self.signal_types is not None and s.signal_type.value not in self.signal_types:
            return False
        if self.sectors is not None and (s.sector or "").casefold() not in self.sectors:
            return False
        if self.min_rvol is not None and (s.rvol is None or s.rvol < self.min_rvol):
            return False
        if self.min_price is not None and (s.price is None or s.price < self.min_price):
            return False
        return not (self.max_price is not None and (s.price is None or s.price > self.max_price))
