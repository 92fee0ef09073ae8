"""Small builders shared by the Discord tests."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count(1)


def signal_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "signal_id": f"sig-{next(_counter)}",
        "ticker": "AAPL",
        "signal_type": "BUY",
        "confidence": 0.82,
        "catalyst_type": "FDA",
        "source": "test",
        "price": 3.42,
        "rvol": 4.1,
        "sector": "Healthcare",
        "headline": "FDA approves lead drug",
        "url": "https://example.com/news/1",
    }
    data.update(overrides)
    return data
