"""The compiled matcher, ``explain`` and an independent model of the documented
rules agree on every field, at the boundaries too: a signal exactly at
``min_confidence``, ``min_rvol``, ``min_price`` or ``max_price`` passes, a hair
beyond does not, a missing price or rvol fails a price or rvol bound, and list
fields match case-insensitively (sectors by casefold)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.filters import SignalFilter
from domain.signals import Signal

TICKERS = ("AAPL", "TSLA", "ABCD")
CATALYSTS = ("FDA", "M&A", "EARNINGS")
TYPES = ("BUY", "SELL", "WATCH")
SECTORS = ("Healthcare", "technology", "ENERGY")
#: Thresholds the filters use; signal values are drawn at, just below and just above them.
EDGES = (0.0, 0.5, 0.7, 1.0, 5.0, 20.0)


def near(edges: tuple[float, ...], low: float = 0.0, high: float = math.inf) -> Any:
    at = st.sampled_from(edges)
    below = at.map(lambda v: math.nextafter(v, -math.inf))
    above = at.map(lambda v: math.nextafter(v, math.inf))
    return st.one_of(at, below, above).filter(lambda v: low <= v <= high)


def subsets(values: tuple[str, ...]) -> Any:
    return st.lists(st.sampled_from(values), max_size=len(values), unique=True)


@st.composite
def filters(draw: st.DrawFn) -> SignalFilter:
    data: dict[str, Any] = {}
    for name, values in (
        ("tickers", TICKERS),
        ("exclude_tickers", TICKERS),
        ("catalyst_types", CATALYSTS),
        ("signal_types", TYPES),
        ("sectors", SECTORS),
    ):
        chosen = draw(subsets(values))
        if chosen:
            data[name] = [v.lower() if draw(st.booleans()) else v for v in chosen]
    for name in ("min_confidence", "min_rvol", "min_price", "max_price"):
        if draw(st.booleans()):
            data[name] = draw(
                st.sampled_from([e for e in EDGES if name != "min_confidence" or e <= 1])
            )
    if data.get("min_price", 0) > data.get("max_price", math.inf):
        data.pop("min_price")
    return SignalFilter.from_mapping(data)


@st.composite
def signals(draw: st.DrawFn) -> Signal:
    data: dict[str, Any] = {
        "signal_id": "p-1",
        "ticker": draw(st.sampled_from(TICKERS)),
        "confidence": draw(near(EDGES, 0.0, 1.0)),
        "catalyst_type": draw(st.sampled_from(CATALYSTS)),
        "signal_type": draw(st.sampled_from(TYPES)),
    }
    sector = draw(st.none() | st.sampled_from((*SECTORS, "healthCARE", "Utilities")))
    if sector is not None:
        data["sector"] = sector
    for name in ("price", "rvol"):
        value = draw(st.none() | near(EDGES))
        if value is not None:
            data[name] = value
    return Signal.parse(data)


def model(f: SignalFilter, s: Signal) -> bool:
    """The documented rules, written independently of domain.filters."""
    upper = {t.upper() for t in f.tickers}
    checks = [
        f.min_confidence is None or s.confidence >= f.min_confidence,
        not f.tickers or s.ticker in upper,
        s.ticker not in {t.upper() for t in f.exclude_tickers},
        not f.catalyst_types or s.catalyst_type in {c.upper() for c in f.catalyst_types},
        not f.signal_types or s.signal_type.value in {t.upper() for t in f.signal_types},
        not f.sectors or (s.sector or "").casefold() in {x.casefold() for x in f.sectors},
        f.min_rvol is None or (s.rvol is not None and s.rvol >= f.min_rvol),
        f.min_price is None or (s.price is not None and s.price >= f.min_price),
        f.max_price is None or (s.price is not None and s.price <= f.max_price),
    ]
    return all(checks)


@settings(max_examples=400, deadline=None, database=None)
@given(f=filters(), s=signals())
@example(
    f=SignalFilter(max_price=20.0),
    s=Signal.parse({"ticker": "A", "confidence": 0.5, "price": 20.0}),
)
@example(f=SignalFilter(min_confidence=0.7), s=Signal.parse({"ticker": "A", "confidence": 0.7}))
@example(
    f=SignalFilter(min_rvol=5.0), s=Signal.parse({"ticker": "A", "confidence": 0.5, "rvol": 5.0})
)
@example(
    f=SignalFilter(min_price=5.0), s=Signal.parse({"ticker": "A", "confidence": 0.5, "price": 5.0})
)
def test_compiled_explain_and_the_model_agree(f: SignalFilter, s: Signal) -> None:
    expected = model(f, s)
    assert f.compile()(s) is expected
    reason = f.explain(s)
    assert (reason is None) is expected, reason
    assert f.matches(s) is expected


def test_boundaries_pass_and_a_hair_beyond_fails() -> None:
    def s(**kw: Any) -> Signal:
        return Signal.parse({"ticker": "A", "confidence": 0.5, **kw})

    up, down = math.inf, -math.inf
    cases = [
        (SignalFilter(min_confidence=0.5), {}, {"confidence": math.nextafter(0.5, down)}),
        (SignalFilter(max_price=20.0), {"price": 20.0}, {"price": math.nextafter(20.0, up)}),
        (SignalFilter(min_price=5.0), {"price": 5.0}, {"price": math.nextafter(5.0, down)}),
        (SignalFilter(min_rvol=1.5), {"rvol": 1.5}, {"rvol": math.nextafter(1.5, down)}),
    ]
    for flt, at, beyond in cases:
        for matcher in (flt.compile(), lambda sig, flt=flt: flt.explain(sig) is None):
            assert matcher(s(**at)), (flt, at)
            assert not matcher(s(**beyond)), (flt, beyond)
