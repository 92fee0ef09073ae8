"""Typed request and response bodies of the REST API (what /docs shows).

Shapes follow the design document: signals are ``Signal.to_public()``, errors are
``{"detail": "<message>"}``. Request models only check JSON types; the core
(``Signal.parse``, ``SignalFilter.from_mapping``, the feedback service) applies
the domain rules and its messages are returned as they are.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.filters import SignalFilter
from domain.outcomes import GroupStats, OutcomeStats, UserStats
from domain.preview import FilterPreview
from domain.signals import METADATA_MAX_BYTES, METADATA_MAX_DEPTH, SignalStatus, SignalType


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and what to do about it.")


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    timestamp: datetime
    connected_clients: int
    database: Literal["ok", "unavailable"]


class SignalOut(BaseModel):
    """A stored signal, as REST returns it and as the WebSocket ``data`` carries it."""

    signal_id: str
    ticker: str
    signal_type: SignalType
    confidence: float
    catalyst_type: str
    source: str
    price: float | None = None
    rvol: float | None = None
    sector: str | None = None
    headline: str | None = None
    url: str | None = None
    timestamp: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: SignalStatus = Field(
        default=SignalStatus.ACTIVE,
        description="`retracted` once the producer withdrew the signal.",
    )
    revision: int = Field(
        default=0, description="0 as first published; one more per correction or retraction."
    )
    seq: int | None = Field(default=None, description="Hub-assigned replay cursor.")


class IngestReceipt(BaseModel):
    """What ingest answers a key without the ``read`` scope: that the signal is stored,
    never its stored content (which may be another producer's)."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str
    seq: int | None = Field(default=None, description="Hub-assigned replay cursor.")
    created: bool = Field(description="False when the signal_id was already stored.")


class SignalIn(BaseModel):
    """A producer's signal. Only ``ticker`` and ``confidence`` are required; a
    ``signal_id`` makes publishing idempotent (one is generated when absent).
    Publishing a known ``signal_id`` again with other fields corrects it (only the
    fields given change), and with ``"status": "retracted"`` withdraws it.
    Text may not contain NUL or lone surrogates; numbers must be finite."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str | None = Field(default=None, max_length=128, examples=["fda-abcd-20260102"])
    ticker: str | None = Field(
        default=None,
        max_length=32,
        examples=["ABCD"],
        description="Required for a new signal; a correction or retraction may leave it out.",
    )
    signal_type: str | None = Field(default=None, examples=["BUY"])
    confidence: float | None = Field(
        default=None,
        allow_inf_nan=False,
        examples=[0.85],
        description="Required for a new signal; a correction or retraction may leave it out.",
    )
    catalyst_type: str | None = Field(default=None, examples=["FDA"])
    source: str | None = Field(default=None, examples=["SEC_8K"])
    price: float | None = Field(default=None, allow_inf_nan=False)
    rvol: float | None = Field(default=None, allow_inf_nan=False)
    sector: str | None = None
    headline: str | None = None
    url: str | None = None
    timestamp: datetime | None = Field(
        default=None, description="ISO timestamp with a timezone; defaults to now."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description=(
            f"Any JSON object of at most {METADATA_MAX_BYTES} bytes and "
            f"{METADATA_MAX_DEPTH} levels of nesting (the object itself is level 1); "
            "numbers must be finite."
        ),
    )
    status: str | None = Field(
        default=None,
        description="Publish a known `signal_id` again with `retracted` to withdraw it "
        "(delivered messages are marked, undelivered ones dropped), or with corrected "
        "fields to correct it (delivered messages are edited).",
        examples=["retracted"],
    )


class FilterModel(BaseModel):
    """A signal filter. Unset fields do not restrict anything; lists may also be
    given as comma-separated strings."""

    model_config = ConfigDict(extra="forbid")

    min_confidence: float | None = Field(default=None, examples=[0.7])
    tickers: list[str] | str | None = Field(default=None, examples=[["AAPL", "TSLA"]])
    exclude_tickers: list[str] | str | None = None
    catalyst_types: list[str] | str | None = Field(default=None, examples=[["FDA", "M&A"]])
    signal_types: list[str] | str | None = None
    sectors: list[str] | str | None = None
    min_rvol: float | None = Field(default=None, examples=[1.5])
    min_price: float | None = None
    max_price: float | None = Field(default=None, examples=[20.0])

    @classmethod
    def of(cls, flt: SignalFilter) -> FilterModel:
        return cls.model_validate(flt.to_mapping())


class UserConfig(BaseModel):
    """The user's preferences for the API and WebSocket stream (the design document's
    ``{"filters": {...}}``). In an update only the filter fields given change; an
    explicit ``null`` clears one."""

    model_config = ConfigDict(extra="forbid")

    filters: FilterModel = Field(default_factory=FilterModel)

    @model_validator(mode="before")
    @classmethod
    def _filters_wrapper(cls, data: Any) -> Any:
        if isinstance(data, dict):
            loose = [k for k in data if k != "filters" and k in FilterModel.model_fields]
            if loose:
                raise ValueError(
                    f'{", ".join(loose)}: filter fields go under "filters", e.g. '
                    f'{{"filters": {{"{loose[0]}": ...}}}}'
                )
        return data


class ConfigResponse(BaseModel):
    user_id: int
    filters: FilterModel
    active: bool


class ConfigUpdated(BaseModel):
    status: Literal["updated"]
    user_id: int
    config: UserConfig


class OutcomeDetail(BaseModel):
    """The design document's outcome object."""

    model_config = ConfigDict(extra="ignore")

    outcome: str = Field(examples=["win"])
    return_pct: float | str | None = None


class FeedbackIn(BaseModel):
    signal_id: str = Field(max_length=256)
    outcome: str | OutcomeDetail = Field(
        description="win, loss, breakeven or skipped, or an object with outcome and return_pct"
    )
    return_pct: float | str | None = Field(default=None, examples=[12.5])


class FeedbackOut(BaseModel):
    status: Literal["received"]
    signal_id: str
    outcome: str
    return_pct: float | None
    updated: bool


class OutcomeStatsOut(BaseModel):
    trades_executed: int
    wins: int
    losses: int
    breakeven: int
    skipped: int
    win_rate: float
    avg_return: float | None

    @classmethod
    def of(cls, stats: OutcomeStats) -> OutcomeStatsOut:
        return cls(**asdict(stats))


class StatsOut(OutcomeStatsOut):
    user_id: int
    signals_received: int

    @classmethod
    def for_user(cls, user_id: int, stats: UserStats) -> StatsOut:
        base = OutcomeStatsOut.of(stats.outcomes).model_dump()
        return cls(user_id=user_id, signals_received=stats.signals_received, **base)


class GroupStatsOut(BaseModel):
    key: str
    stats: OutcomeStatsOut

    @classmethod
    def of(cls, group: GroupStats) -> GroupStatsOut:
        return cls(key=group.key, stats=OutcomeStatsOut.of(group.stats))


class TokenRequest(BaseModel):
    api_key: str | None = Field(
        default=None,
        max_length=256,
        description="The API key to exchange; defaults to the one in the Authorization header.",
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class LinkRequest(BaseModel):
    code: str = Field(max_length=64, examples=["K7PQ2M9X"])


class LinkResponse(BaseModel):
    status: Literal["linked"]
    user_id: int
    name: str


class CountOut(BaseModel):
    name: str
    count: int


class PreviewOut(BaseModel):
    """What a filter would have matched over the last ``days`` days."""

    days: int
    since: datetime
    filters: FilterModel
    filter_text: str
    signals_in_window: int
    matched: int
    per_day: float
    top_catalysts: list[CountOut]
    top_tickers: list[CountOut]
    outcomes: OutcomeStatsOut
    outcomes_reported: int
    small_sample: bool = Field(
        description="Fewer executed trades reported than the sample the hub trusts."
    )
    summary: str

    @classmethod
    def of(cls, flt: SignalFilter, preview: FilterPreview) -> PreviewOut:
        return cls(
            days=preview.days,
            since=preview.since,
            filters=FilterModel.of(flt),
            filter_text=flt.to_text(),
            signals_in_window=preview.signals_in_window,
            matched=preview.matched,
            per_day=round(preview.per_day, 2),
            top_catalysts=[CountOut(name=n, count=c) for n, c in preview.top_catalysts],
            top_tickers=[CountOut(name=n, count=c) for n, c in preview.top_tickers],
            outcomes=OutcomeStatsOut.of(preview.outcomes),
            outcomes_reported=preview.reported,
            small_sample=preview.small_sample,
            summary=preview.summary_line(),
        )


class HintOut(BaseModel):
    """The outcome ledger's line for alerts of one catalyst type and confidence bucket."""

    catalyst_type: str
    confidence_bucket: str = Field(examples=["0.8-0.9"])
    line: str = Field(examples=["FDA, 80–90%: 14 W / 6 L reported, avg +4.20%"])
    stats: OutcomeStatsOut


class DeliverySettings(BaseModel):
    """When a chat destination gets its alerts. A missing or ``null`` field is off."""

    model_config = ConfigDict(extra="forbid")

    quiet: str | None = Field(
        default=None,
        max_length=100,
        description="Quiet hours and an IANA time zone: alerts are held and arrive "
        "as one digest when they end.",
        examples=["22:00-07:00 America/New_York"],
    )
    digest: str | None = Field(
        default=None,
        max_length=16,
        description="Batch alerts into one message per period (5m-24h).",
        examples=["15m"],
    )
    max: str | None = Field(
        default=None,
        max_length=16,
        description="At most this many messages per period; the rest fold into the next "
        "digest. A digest counts as one.",
        examples=["10/h"],
    )


class SubscriptionOut(BaseModel):
    """A chat destination (Telegram chat, Discord DM or channel) subscribed by you."""

    id: int
    platform: str
    destination: str
    active: bool
    filters: FilterModel
    delivery: DeliverySettings
