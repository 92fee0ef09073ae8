"""Subscription filters: which signals a destination wants.

A :class:`SignalFilter` is pure data with ``matches`` and ``explain``. Chat
commands use its compact text form, e.g.
``min_confidence=0.7 tickers=AAPL,TSLA max_price=20``.
An empty filter matches every signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.errors import InvalidInput
from domain.signals import (
    Signal,
    SignalType,
    check_text,
    describe_validation_error,
    normalize_catalyst,
    normalize_ticker,
)

MAX_LIST_ITEMS = 100

#: One line per field: what it does and an example, for help texts.
FIELD_HELP: dict[str, str] = {
    "min_confidence": "lowest confidence to receive, 0..1 (e.g. 0.7)",
    "tickers": "only these tickers (e.g. AAPL,TSLA)",
    "exclude_tickers": "never these tickers (e.g. GME,AMC)",
    "catalyst_types": "only these catalysts (e.g. FDA,M&A,EARNINGS)",
    "signal_types": "only these signal types: BUY, SELL, WATCH (e.g. BUY)",
    "sectors": "only these sectors (e.g. Healthcare,Technology)",
    "min_rvol": "lowest relative volume (e.g. 1.5)",
    "min_price": "lowest price (e.g. 1)",
    "max_price": "highest price (e.g. 20)",
}

KNOWN_CATALYSTS = (
    "FDA",
    "M&A",
    "EARNINGS",
    "OFFERING",
    "SEC_FILING",
    "PARTNERSHIP",
    "CONTRACT",
    "CLINICAL_TRIAL",
    "BUYBACK",
    "GUIDANCE",
    "ANALYST",
    "NEWS",
)


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = [p for p in value.replace(";", ",").split(",")]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise ValueError("must be a list or a comma-separated string")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("items must be strings")
        try:
            check_text(item)
        except ValueError as exc:
            raise ValueError(f"{item[:64]!r} {exc}") from None
        item = item.strip()
        if item and item not in out:
            out.append(item)
    if len(out) > MAX_LIST_ITEMS:
        raise ValueError(f"has {len(out)} items; at most {MAX_LIST_ITEMS}")
    return out


class SignalFilter(BaseModel):
    """Per-subscription filter. Unset fields do not restrict anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    LIST_FIELDS: ClassVar[tuple[str, ...]] = (
        "tickers",
        "exclude_tickers",
        "catalyst_types",
        "signal_types",
        "sectors",
    )
    NUMBER_FIELDS: ClassVar[tuple[str, ...]] = (
        "min_confidence",
        "min_rvol",
        "min_price",
        "max_price",
    )

    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    tickers: tuple[str, ...] = ()
    exclude_tickers: tuple[str, ...] = ()
    catalyst_types: tuple[str, ...] = ()
    signal_types: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    min_rvol: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    min_price: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    max_price: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)

    @field_validator("tickers", "exclude_tickers", mode="before")
    @classmethod
    def _tickers(cls, value: Any) -> tuple[str, ...]:
        return tuple(normalize_ticker(t) for t in _split(value))

    @field_validator("catalyst_types", mode="before")
    @classmethod
    def _catalysts(cls, value: Any) -> tuple[str, ...]:
        return tuple(normalize_catalyst(t) for t in _split(value))

    @field_validator("signal_types", mode="before")
    @classmethod
    def _signal_types(cls, value: Any) -> tuple[str, ...]:
        out = []
        for item in _split(value):
            upper = item.upper() if item.isascii() else item
            if upper not in SignalType.__members__:
                raise ValueError(f"{item!r} is not a signal type; use BUY, SELL or WATCH")
            out.append(upper)
        return tuple(out)

    @field_validator("sectors", mode="before")
    @classmethod
    def _sectors(cls, value: Any) -> tuple[str, ...]:
        out = []
        for item in _split(value):
            if len(item) > 64:
                raise ValueError("a sector name has at most 64 characters")
            out.append(" ".join(item.split()))
        return tuple(out)

    @model_validator(mode="after")
    def _price_range(self) -> SignalFilter:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError("min_price must not be above max_price")
        return self

    # ---- construction -------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SignalFilter:
        """Validate a JSON object (REST, WebSocket ``subscribe``, stored rows)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput("filters must be a JSON object")
        cleaned = {k: v for k, v in data.items() if v is not None}
        try:
            return cls.model_validate(cleaned)
        except ValidationError as exc:
            raise InvalidInput(_filter_error(exc)) from None
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    @classmethod
    def from_text(cls, text: str) -> SignalFilter:
        """Parse ``field=value field=value``; an empty text is the empty filter."""
        values: dict[str, str] = {}
        for token in text.split():
            field, sep, value = token.partition("=")
            if not sep:
                raise InvalidInput(f"{token!r} is not field=value; fields: {', '.join(FIELD_HELP)}")
            cls._check_field_name(field)
            values[field] = value
        return cls.from_mapping({k: (v or None) for k, v in values.items()})

    @classmethod
    def _check_field_name(cls, field: str) -> None:
        if field not in FIELD_HELP:
            raise InvalidInput(
                f"unknown filter field {field!r}; use one of: {', '.join(FIELD_HELP)}",
                field=field,
            )

    def with_field(self, field: str, value: str | None) -> SignalFilter:
        """Set one field from user text; ``None`` or blank clears it."""
        self._check_field_name(field)
        data = self.model_dump()
        text = (value or "").strip()
        if not text:
            data[field] = () if field in self.LIST_FIELDS else None
        elif field in self.NUMBER_FIELDS:
            try:
                number = float(text)
            except ValueError:
                raise InvalidInput(
                    f"{field} needs a number: {FIELD_HELP[field]}", field=field
                ) from None
            if not math.isfinite(number):
                raise InvalidInput(f"{field} needs a finite number", field=field)
            data[field] = number
        else:
            data[field] = text
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(_filter_error(exc), field=field) from None
        except ValueError as exc:
            raise InvalidInput(str(exc), field=field) from None

    def updated(self, changes: Mapping[str, Any]) -> SignalFilter:
        """Apply several field changes given as JSON values (``None`` clears)."""
        data = self.model_dump()
        for key, value in changes.items():
            self._check_field_name(key)
            data[key] = value
        return self.from_mapping(data)

    # ---- rendering ----------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        """Only the set fields, lists as lists: the stored and API shape."""
        out: dict[str, Any] = {}
        for name in FIELD_HELP:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_text(self) -> str:
        parts = []
        for name, value in self.to_mapping().items():
            rendered = ",".join(value) if isinstance(value, list) else _num(value)
            parts.append(f"{name}={rendered}")
        return " ".join(parts)

    def is_empty(self) -> bool:
        return not self.to_mapping()

    # ---- matching -----------------------------------------------------
    def explain(self, signal: Signal) -> str | None:
        """Name the first condition that rejects ``signal``; ``None`` if it matches."""
        if self.min_confidence is not None and signal.confidence < self.min_confidence:
            return f"confidence {signal.confidence:.2f} is below min_confidence {_num(self.min_confidence)}"
        if self.tickers and signal.ticker not in self.tickers:
            return f"ticker {signal.ticker} is not in tickers {','.join(self.tickers)}"
        if signal.ticker in self.exclude_tickers:
            return f"ticker {signal.ticker} is in exclude_tickers"
        if self.catalyst_types and signal.catalyst_type not in self.catalyst_types:
            return (
                f"catalyst {signal.catalyst_type} is not in catalyst_types "
                f"{','.join(self.catalyst_types)}"
            )
        if self.signal_types and signal.signal_type.value not in self.signal_types:
            return f"signal type {signal.signal_type.value} is not in signal_types {','.join(self.signal_types)}"
        if self.sectors:
            sector = (signal.sector or "").casefold()
            if sector not in {s.casefold() for s in self.sectors}:
                return f"sector {signal.sector or 'unknown'} is not in sectors {','.join(self.sectors)}"
        if self.min_rvol is not None and (signal.rvol is None or signal.rvol < self.min_rvol):
            return f"rvol {_opt(signal.rvol)} is below min_rvol {_num(self.min_rvol)}"
        if self.min_price is not None and (signal.price is None or signal.price < self.min_price):
            return f"price {_opt(signal.price)} is below min_price {_num(self.min_price)}"
        if self.max_price is not None and (signal.price is None or signal.price > self.max_price):
            return f"price {_opt(signal.price)} is above max_price {_num(self.max_price)}"
        return None

    def matches(self, signal: Signal) -> bool:
        return self.compile()(signal)

    def compile(self) -> CompiledFilter:
        """A fast matcher for routing many signals (no message formatting)."""
        return CompiledFilter(self)


class CompiledFilter:
    """``SignalFilter.matches`` with sets precomputed; what the router runs per subscription."""

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


def _num(value: float) -> str:
    return f"{value:g}"


def _opt(value: float | None) -> str:
    return "unknown" if value is None else _num(value)


def _filter_error(exc: ValidationError) -> str:
    return describe_validation_error(exc)
