"""The Signal: what a producer emits and every front delivers.

``Signal.parse`` validates a producer's mapping and turns every rejection into one
:class:`~domain.errors.InvalidInput` whose message names the field and the rule.

What is accepted can always be stored and served back, on SQLite and PostgreSQL:
no text holds NUL or a lone surrogate (PostgreSQL and UTF-8 cannot store them),
every number is finite, tickers and catalysts are ASCII, ids match to the end of
the string, and ``metadata`` is JSON (objects, arrays, strings, finite numbers,
true/false/null) of at most METADATA_MAX_BYTES and METADATA_MAX_DEPTH levels.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.errors import InvalidInput

# Use these with ``fullmatch`` (``\Z``, not ``$``: a trailing newline is not the end).
TICKER_RE = re.compile(r"[A-Z][A-Z0-9._\-]{0,14}\Z")
SIGNAL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}\Z")
CATALYST_RE = re.compile(r"[A-Z0-9][A-Z0-9&/_ .\-]{0,31}\Z")
METADATA_MAX_BYTES = 4096
#: Nesting levels of ``metadata``: the object itself is level 1, so
#: ``{"a": {"b": [1]}}`` has 3. Deeper JSON is refused: it cannot be served back.
METADATA_MAX_DEPTH = 16
HEADLINE_MAX = 500
URL_MAX = 2048


class SignalType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    WATCH = "WATCH"


#: What a correction can change that a trader sees (the signal's time stays as first
#: published: a producer retrying with a fresh timestamp is not correcting it).
VISIBLE_FIELDS = (
    "ticker",
    "signal_type",
    "confidence",
    "catalyst_type",
    "price",
    "rvol",
    "sector",
    "headline",
    "url",
    "status",
)


class SignalStatus(StrEnum):
    ACTIVE = "active"
    #: Withdrawn by its producer (a false positive): delivered messages are marked,
    #: undelivered ones are not sent.
    RETRACTED = "retracted"


def check_text(value: str) -> str:
    """Refuse text that PostgreSQL (NUL) or UTF-8 (lone surrogates) cannot store;
    raises ValueError with the rule."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "must be valid Unicode text: lone surrogates (\\ud800-\\udfff) cannot be stored"
        ) from None
    return value


def is_signal_id(value: str) -> bool:
    """Whether ``value`` is a well-formed signal id (to the very end of the string)."""
    return SIGNAL_ID_RE.fullmatch(value) is not None


def normalize_ticker(value: str) -> str:
    """Upper-case and check a ticker symbol; raises ValueError with the rule.

    Only ASCII is upper-cased: Unicode rules would turn ``aß`` into ``ASS``."""
    stripped = value.strip()
    ticker = stripped.upper().lstrip("$") if stripped.isascii() else stripped
    if not TICKER_RE.fullmatch(ticker):
        raise ValueError(
            f"{value!r} is not a ticker: use 1-15 ASCII letters, digits, '.', '-' or '_', "
            "starting with a letter (e.g. AAPL, BRK.B)"
        )
    return ticker


def normalize_catalyst(value: str) -> str:
    catalyst = " ".join(value.split())
    if catalyst.isascii():
        catalyst = catalyst.upper()
    if not CATALYST_RE.fullmatch(catalyst):
        raise ValueError(
            f"{value!r} is not a catalyst type: use up to 32 ASCII letters, digits, spaces or &/_.- "
            "(e.g. FDA, M&A, EARNINGS)"
        )
    return catalyst


class Signal(BaseModel):
    """A validated trading signal. ``seq`` is assigned by the hub when stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    ticker: str
    signal_type: SignalType = SignalType.WATCH
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    catalyst_type: str = "NEWS"
    source: str = Field(default="unknown", min_length=1, max_length=64)
    price: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    rvol: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    sector: str | None = Field(default=None, max_length=64)
    headline: str | None = Field(default=None, max_length=HEADLINE_MAX)
    url: str | None = Field(default=None, max_length=URL_MAX)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: A producer publishes the same ``signal_id`` again with ``"status": "retracted"``
    #: to withdraw it, or with corrected fields to correct it.
    status: SignalStatus = SignalStatus.ACTIVE
    #: 0 as first published; the hub adds one per correction or retraction.
    revision: int = 0
    seq: int | None = None

    @field_validator("signal_id")
    @classmethod
    def _check_signal_id(cls, value: str) -> str:
        if not is_signal_id(value):
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

    @field_validator("status", mode="before")
    @classmethod
    def _check_status(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("active", "retracted"):
            return value.strip().lower()
        raise ValueError("must be active or retracted")

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

    @field_validator("source", "sector", "headline", "url")
    @classmethod
    def _check_storable(cls, value: str | None) -> str | None:
        return check_text(value) if value is not None else None

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
        return clean_metadata(value)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Signal) -> Signal:
        """Validate a producer's mapping; raise InvalidInput naming every bad field."""
        if isinstance(data, Signal):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput("a signal must be a JSON object")
        payload = dict(data)
        payload.pop("seq", None)  # assigned by the hub, never by a producer
        payload.pop("revision", None)
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc), field=_first_field(exc)) from None

    def to_public(self) -> dict[str, Any]:
        """The JSON shape clients code against (REST and WebSocket ``data``).

        A row stored before validation bounded ``metadata`` (say, nested 300 levels)
        is served with a placeholder in its place rather than failing every read
        and replay that crosses it."""
        try:
            return self.model_dump(mode="json")
        except (ValueError, RecursionError):
            placeholder = {"metadata_error": "stored metadata cannot be served (too deep)"}
            return self.model_copy(update={"metadata": placeholder}).model_dump(mode="json")

    @cached_property
    def public_json(self) -> bytes:
        """:meth:`to_public` as compact JSON bytes, serialized once per signal object:
        what REST serves (the same bytes as the API's ``SignalOut`` serializer, both
        pydantic-core) and what the WebSocket ``data`` could reuse."""
        return pydantic_core.to_json(self.to_public())

    @property
    def retracted(self) -> bool:
        return self.status is SignalStatus.RETRACTED

    def same_content(self, other: Signal) -> bool:
        """Whether ``other`` tells a trader the same thing: the fields an alert shows
        and the status. A producer re-sending a signal with new metadata or source
        (a fetch time, a retry count) is not correcting it."""
        return all(getattr(self, name) == getattr(other, name) for name in VISIBLE_FIELDS)

    def with_seq(self, seq: int) -> Signal:
        copy = self.model_copy(update={"seq": seq})
        copy.__dict__.pop("public_json", None)  # model_copy copies a cached form too
        return copy


def clean_metadata(value: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``value`` is JSON that every backend can store and serve back, and
    return it as plain dicts, lists and scalars (tuples become lists). Raises
    ValueError naming the offending path and the rule."""
    cleaned = _clean_json(value, "metadata", 1)
    assert isinstance(cleaned, dict)
    size = len(json.dumps(cleaned, separators=(",", ":")).encode())
    if size > METADATA_MAX_BYTES:
        raise ValueError(f"is {size} bytes; at most {METADATA_MAX_BYTES} bytes of JSON")
    return cleaned


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_\-]{1,32}\Z")


def _key_path(path: str, key: str) -> str:
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}"
    # json.dumps escapes NUL, surrogates and everything non-ASCII: safe in a message.
    return f"{path}[{json.dumps(key[:32])}]"


def _clean_json(value: Any, path: str, depth: int) -> Any:
    where = f" at {path}"
    if isinstance(value, Mapping | list | tuple) and depth > METADATA_MAX_DEPTH:
        raise ValueError(
            f"is nested deeper than {METADATA_MAX_DEPTH} levels{where}; "
            f"at most {METADATA_MAX_DEPTH} levels of objects and arrays"
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"keys must be strings{where}")
            inner = _key_path(path, key)
            try:
                check_text(key)
            except ValueError as exc:
                raise ValueError(f"key {inner} {exc}") from None
            out[key] = _clean_json(item, inner, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_clean_json(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"numbers must be finite{where}: NaN and Infinity are not JSON")
        return float(value)
    if isinstance(value, str):
        try:
            return check_text(str(value))
        except ValueError as exc:
            raise ValueError(f"text{where} {exc}") from None
    raise ValueError(
        f"{type(value).__name__}{where} is not JSON: use objects, arrays, strings, "
        "finite numbers, true, false or null"
    )


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
