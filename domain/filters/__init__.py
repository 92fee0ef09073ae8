"""Subscription filters: which signals a destination wants.

A :class:`SignalFilter` is pure data with ``matches`` and ``explain``. Chat
commands use its compact text form, e.g.
``min_confidence=0.7 tickers=AAPL,TSLA max_price=20``.
An empty filter matches every signal.

One concept per module:

* :mod:`~domain.filters.fields`: the field catalogue (names, help, known catalysts);
* :mod:`~domain.filters.model`: :class:`SignalFilter`, the validated pydantic model;
* :mod:`~domain.filters.matching`: :class:`CompiledFilter`, the router's fast matcher;
* :mod:`~domain.filters.explain`: the first condition that rejects a signal;
* :mod:`~domain.filters.text`: the compact ``field=value`` form, parsed and rendered.
"""

from __future__ import annotations

from domain.filters.fields import FIELD_HELP, KNOWN_CATALYSTS, MAX_LIST_ITEMS
from domain.filters.matching import CompiledFilter
from domain.filters.model import SignalFilter

__all__ = ["FIELD_HELP", "KNOWN_CATALYSTS", "MAX_LIST_ITEMS", "CompiledFilter", "SignalFilter"]
