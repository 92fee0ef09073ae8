"""The filter model: one validated, immutable :class:`SignalFilter` per subscription."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.errors import InvalidInput
from domain.filters import text as filter_text
from domain.filters.explain import explain as explain_rejection
from domain.filters.fields import FIELD_HELP, LIST_FIELDS, NUMBER_FIELDS, check_field_name
from domain.filters.matching import CompiledFilter
from domain.signals import (
    Signal,
    SignalType,
    describe_validation_error,
    normalize_catalyst,
    normalize_ticker,
)


class SignalFilter(BaseModel):
    """Per-subscription filter. Unset fields do not restrict anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    LIST_FIELDS: ClassVar[tuple[str, ...]] = LIST_FIELDS
    NUMBER_FIELDS: ClassVar[tuple[str, ...]] = NUMBER_FIELDS

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
        return tuple(normalize_ticker(t) for t in filter_text.split_items(value))

    @field_validator("catalyst_types", mode="before")
    @classmethod
    def _catalysts(cls, value: Any) -> tuple[str, ...]:
        return tuple(normalize_catalyst(t) for t in filter_text.split_items(value))

    @field_validator("signal_types", mode="before")
    @classmethod
    def _signal_types(cls, value: Any) -> tuple[str, ...]:
        out = []
        for item in filter_text.split_items(value):
            upper = item.upper() if item.isascii() else item
            if upper not in SignalType.__members__:
                raise ValueError(f"{item!r} is not a signal type; use BUY, SELL or WATCH")
            out.append(upper)
        return tuple(out)

    @field_validator("sectors", mode="before")
    @classmethod
    def _sectors(cls, value: Any) -> tuple[str, ...]:
        out = []
        for item in filter_text.split_items(value):
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
        return cls._validate(cleaned)

    @classmethod
    def from_text(cls, text: str) -> SignalFilter:
        """Parse ``field=value field=value``; an empty text is the empty filter."""
        return cls.from_mapping(filter_text.parse_text(text))

    def with_field(self, field: str, value: str | None) -> SignalFilter:
        """Set one field from user text; ``None`` or blank clears it."""
        data = self.model_dump()
        data[field] = filter_text.parse_field_value(field, value)
        return self._validate(data, field=field)

    def updated(self, changes: Mapping[str, Any]) -> SignalFilter:
        """Apply several field changes given as JSON values (``None`` clears)."""
        data = self.model_dump()
        for key, value in changes.items():
            check_field_name(key)
            data[key] = value
        return self.from_mapping(data)

    @classmethod
    def _validate(cls, data: Mapping[str, Any], field: str | None = None) -> SignalFilter:
        # Validators' ValueErrors (the price range too) arrive wrapped in ValidationError.
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc), field=field) from None

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
        return filter_text.render_text(self.to_mapping())

    def is_empty(self) -> bool:
        return not self.to_mapping()

    # ---- matching -----------------------------------------------------
    def explain(self, signal: Signal) -> str | None:
        """Name the first condition that rejects ``signal``; ``None`` if it matches."""
        return explain_rejection(self, signal)

    def matches(self, signal: Signal) -> bool:
        return self.compile()(signal)

    def compile(self) -> CompiledFilter:
        """A fast matcher for routing many signals (no message formatting)."""
        return CompiledFilter(self)
