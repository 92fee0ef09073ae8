"""Why a filter rejects a signal: the first failing condition, in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.filters.text import format_number as num
from domain.filters.text import format_optional as opt
from domain.signals import Signal

if TYPE_CHECKING:
    from domain.filters.model import SignalFilter


def explain(f: SignalFilter, signal: Signal) -> str | None:
    """Name the first condition of ``f`` that rejects ``signal``; ``None`` if it matches."""
    if f.min_confidence is not None and signal.confidence < f.min_confidence:
        return f"confidence {signal.confidence:.2f} is below min_confidence {num(f.min_confidence)}"
    if f.tickers and signal.ticker not in f.tickers:
        return f"ticker {signal.ticker} is not in tickers {','.join(f.tickers)}"
    if signal.ticker in f.exclude_tickers:
        return f"ticker {signal.ticker} is in exclude_tickers"
    if f.catalyst_types and signal.catalyst_type not in f.catalyst_types:
        return (
            f"catalyst {signal.catalyst_type} is not in catalyst_types "
            f"{','.join(f.catalyst_types)}"
        )
    if f.signal_types and signal.signal_type.value not in f.signal_types:
        return f"signal type {signal.signal_type.value} is not in signal_types {','.join(f.signal_types)}"
    if f.sectors:
        sector = (signal.sector or "").casefold()
        if sector not in {s.casefold() for s in f.sectors}:
            return f"sector {signal.sector or 'unknown'} is not in sectors {','.join(f.sectors)}"
    if f.min_rvol is not None and (signal.rvol is None or signal.rvol < f.min_rvol):
        return f"rvol {opt(signal.rvol)} is below min_rvol {num(f.min_rvol)}"
    if f.min_price is not None and (signal.price is None or signal.price < f.min_price):
        return f"price {opt(signal.price)} is below min_price {num(f.min_price)}"
    if f.max_price is not None and (signal.price is None or signal.price > f.max_price):
        return f"price {opt(signal.price)} is above max_price {num(f.max_price)}"
    return None
