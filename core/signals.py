"""The Signal: what a producer emits and every front delivers.

``Signal.parse`` validates a producer's mapping and turns every rejection into one
:class:`~core.errors.InvalidInput` whose message names the field and the rule.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import InvalidInput

TICKER_RE = re.compile(r"^[A-Z][A-Z0-9._\-]{0,14}$")
SIGNAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
CATALYST_RE = re.compile(r"^[A-Z0-9][A-Z0-9&/_ .\-]{0,31}$")
METADATA_MAX_BYTES = 4096
HEADLINE_MAX = 500
URL_MAX = 2048


class SignalType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    WATCH = "WATCH"


def normalize_ticker(value: str) -> str:
    """Upper-case and check a ticker symbol; raises ValueError with the rule."""
    ticker = value.strip().upper().lstrip("$")
    if not TICKER_RE.match(ticker):
        raise ValueError(
            f"{value!r} is not a ticker: use 1-15 letters, digits, '.', '-' or '_', "
            "starting with a letter (e.g. AAPL, BRK.B)"
        )
    return ticker


def normalize_catalyst(value: str) -> str:
    catalyst = " ".join(value.strip().upper().split())
    if not CATALYST_RE.match(catalyst):
        raise ValueError(
            f"{value!r} is not a catalyst type: use up to 32 letters, digits, spaces or &/_.- "
            "(e.g. FDA, M&A, EARNINGS)"
        )
    return catalyst


class Signal(BaseModel):
    """A validated trading signal. ``seq`` is assigned by the hub when stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    ticker: str
    signal_type: SignalType = SignalType.WATCH
    confidence: float = Field(ge=0.0, le=1.0)
    catalyst_type: str = "NEWS"
    source: str = Field(default="unknown", min_length=1, max_length=64)
    price: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    rvol: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    sector: str | None = Field(default=None, max_length=64)
    headline: str | None = Field(default=None, max_length=HEADLINE_MAX)
    url: str | None = Field(default=None, max_length=URL_MAX)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = None

    @field_validator("signal_id")
    @classmethod
    def _check_signal_id(cls, value: str) -> str:
        if not SIGNAL_ID_RE.match(value):
            raise ValueError(
                "must be 1-128 characters of letters, digits and ._:- starting with a "
                "letter or digit"
            )
        return value

    @field_validator("ticker", mode="before")
    @classmethod
    def _check_ticker(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string such as AAPL")
        return normalize_ticker(value)

    @field_validator("signal_type", mode="before")
    @classmethod
    def _check_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            upper = value.strip().upper()
            if upper not in SignalType.__members__:
                raise ValueError("must be one of BUY, SELL, WATCH")
            return upper
        return value

    @field_validator("catalyst_type", mode="before")
    @classmethod
    def _check_catalyst(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string such as FDA")
        return normalize_catalyst(value)

    @field_validator("sector", mode="before")
    @classmethod
    def _check_sector(cls, value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split()) or None
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("timestamp")
    @classmethod
    def _check_timestamp(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must include a timezone, e.g. 2026-01-02T15:04:05Z")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range") from None

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
        except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
            raise ValueError("must be JSON-serialisable") from exc
        if size > METADATA_MAX_BYTES:
            raise ValueError(f"is {size} bytes; at most {METADATA_MAX_BYTES} bytes of JSON")
        return value

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Signal) -> Signal:
        """Validate a producer's mapping; raise InvalidInput naming every bad field."""
        if isinstance(data, Signal):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput("a signal must be a JSON object")
        payload = dict(data)
        payload.pop("seq", None)  # assigned by the hub, never by a producer
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc), field=_first_field(exc)) from None

    def to_public(self) -> dict[str, Any]:
        """The JSON shape clients code against (REST and WebSocket ``data``)."""
        data = self.model_dump(mode="json")
        return data

    def with_seq(self, seq: int) -> Signal:
        return self.model_copy(update={"seq": seq})


def _first_field(exc: ValidationError) -> str | None:
    errors = exc.errors()
    if errors and errors[0]["loc"]:
        return str(errors[0]["loc"][0])
    return None


def describe_validation_error(exc: ValidationError) -> str:
    """Render pydantic errors as ``field: reason; field: reason``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "is not a known field"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def content_id(prefix: str, *parts: object) -> str:
    """A stable signal id derived from content, for sources without their own ids."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"{prefix}-{digest}"
