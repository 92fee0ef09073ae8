"""Per-channel health for the operator, from the outbox and this process's senders.

From the database (the same for every process): active subscriptions, outbox rows
by status created in the last hour and day (one grouped query per window), and the
send latency of the last hour's alerts (the newest :data:`LATENCY_SAMPLES` sent at
once; digest rows wait on purpose and are left out), p50 and p95 computed here.

From this process (meaningful in the process that sends for the platform, see
``sending_here``): the 429s seen since it started (the ``catalyst_deliveries_total``
counter with ``state="rate_limited"``) and the scopes a platform's retry-after
blocks right now, with the seconds left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from core.metrics import Metrics
from core.ratelimit import ScopedLimiter
from core.router import STREAM_PLATFORM
from storage.database import Database
from storage.repositories import operator as operator_repo

#: Statuses counted per window, in the order shown.
STATUSES = ("pending", "held", "sent", "failed", "expired", "dead", "canceled")
#: Chat platforms listed first, in this order; others follow alphabetically.
KNOWN_ORDER = ("telegram", "discord", "console")
#: The API stream's entry (not an outbox channel: signals go out as they come).
WEBSOCKET = "websocket"
#: Sent rows read at most for the latency percentiles.
LATENCY_SAMPLES = 10_000
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class SenderView(Protocol):
    """What the operator reads from (and asks of) the dispatcher."""

    @property
    def platforms(self) -> list[str]: ...

    def limiter(self, platform: str) -> ScopedLimiter: ...

    def sending(self, platform: str) -> bool: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamStats:
    """The API stream in this process: open WebSocket connections, distinct users."""

    connections: int
    users: int


@dataclass(frozen=True, slots=True)
class ChannelStats:
    channel: str
    #: A sender for it is registered in this process.
    registered: bool
    #: This process runs its sender now (the elected one): the live fields are its.
    sending_here: bool
    active_subscriptions: int
    last_hour: dict[str, int]
    last_day: dict[str, int]
    #: 429s (retry-after) this process saw since it started.
    rate_limited: int
    #: Scope -> seconds its retry-after still blocks it (this process).
    blocked_scopes: dict[str, float] = field(default_factory=dict)
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_samples: int = 0
    #: The WebSocket entry only.
    connections: int | None = None
    stream_users: int | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, interpolated linearly; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def rate_limited_counts(metrics: Metrics | None) -> dict[str, int]:
    """Per channel, the 429s counted by ``catalyst_deliveries_total`` in this process."""
    out: dict[str, int] = {}
    if metrics is None:
        return out
    for family in metrics.deliveries.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("state") == "rate_limited":
                channel = sample.labels.get("channel", "")
                out[channel] = out.get(channel, 0) + int(sample.value)
    return out


def _order(platforms: set[str]) -> list[str]:
    known = [p for p in KNOWN_ORDER if p in platforms]
    return known + sorted(platforms - set(KNOWN_ORDER))


def _counts(by_status: dict[str, int] | None) -> dict[str, int]:
    by_status = by_status or {}
    return {s: by_status.get(s, 0) for s in STATUSES}


async def channel_stats(
    db: Database,
    now: datetime,
    *,
    dispatcher: SenderView | None,
    metrics: Metrics | None,
    configured: Sequence[str] = (),
    stream: StreamStats | None = None,
) -> list[ChannelStats]:
    """Every channel registered here, enabled in the settings, or with subscriptions
    or outbox rows in the last day; then the WebSocket."""
    async with db.session() as session:
        subs = await operator_repo.active_subscriptions(session=session)
        hour = await operator_repo.status_counts(now - HOUR, session=session)
        day = await operator_repo.status_counts(now - DAY, session=session)
        latencies = await operator_repo.send_latencies(now - HOUR, LATENCY_SAMPLES, session=session)
    registered = set(dispatcher.platforms) if dispatcher is not None else set()
    platforms = (registered | set(configured) | set(subs) | set(day)) - {STREAM_PLATFORM}
    limited = rate_limited_counts(metrics)
    out: list[ChannelStats] = []
    for platform in _order(platforms):
        here = platform in registered
        assert dispatcher is not None or not here
        blocked = dispatcher.limiter(platform).blocked() if dispatcher and here else {}
        samples = latencies.get(platform, [])
        out.append(
            ChannelStats(
                channel=platform,
                registered=here,
                sending_here=bool(dispatcher and here and dispatcher.sending(platform)),
                active_subscriptions=subs.get(platform, 0),
                last_hour=_counts(hour.get(platform)),
                last_day=_counts(day.get(platform)),
                rate_limited=limited.get(platform, 0),
                blocked_scopes={s: round(left, 3) for s, left in sorted(blocked.items())},
                latency_p50=percentile(samples, 0.50),
                latency_p95=percentile(samples, 0.95),
                latency_samples=len(samples),
            )
        )
    out.append(
        ChannelStats(
            channel=WEBSOCKET,
            registered=stream is not None,
            sending_here=stream is not None,
            active_subscriptions=subs.get(STREAM_PLATFORM, 0),
            last_hour=_counts(None),
            last_day=_counts(None),
            rate_limited=0,
            connections=stream.connections if stream is not None else None,
            stream_users=stream.users if stream is not None else None,
        )
    )
    return out
