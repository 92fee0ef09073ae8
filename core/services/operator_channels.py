"""Per-channel health for the operator, from the outbox and this process's senders.

From the database (the same for every process): active subscriptions, outbox rows
by status created in the last hour and day (one grouped query per window), and the
send latency of the last hour's alerts (the newest :data:`LATENCY_SAMPLES` sent at
once; digest rows wait on purpose and are left out), p50 and p95 computed here.

From the platform's sender: the 429s (retry-afters) it got in the last hour and
day and the scopes a retry-after blocks, with the seconds left. Live when this
process is the sender (``sending_here``); otherwise what the sender last stored
(``sender_health``, every few seconds, by :meth:`Dispatcher.report_health`), with
its age: in a Procfile deployment the web role answering is not the sender.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from core.ratelimit import ScopedLimiter
from core.router import STREAM_PLATFORM
from storage.database import Database
from storage.models import SenderHealth
from storage.repositories import operator as operator_repo
from storage.repositories import sender_health as sender_health_repo

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
    #: 429s (retry-afters) its sender got in the last hour.
    rate_limited: int
    #: Scope -> seconds its retry-after still blocks it.
    blocked_scopes: dict[str, float] = field(default_factory=dict)
    #: 429s in the last day.
    rate_limited_day: int = 0
    #: Which process the 429s and blocks come from (``host:pid``; this one when
    #: ``sending_here``), and how old its report is (None: live).
    reported_by: str | None = None
    report_age_seconds: float | None = None
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


@dataclass(frozen=True, slots=True)
class _Health:
    hour: int = 0
    day: int = 0
    blocked: dict[str, float] = field(default_factory=dict)
    sender: str | None = None
    age: float | None = None


def _live(dispatcher: SenderView | None, platform: str) -> _Health:
    """This process sends for ``platform``: its limiter, as it is now."""
    assert dispatcher is not None
    limiter = dispatcher.limiter(platform)
    return _Health(
        limiter.blocks_within(HOUR.total_seconds()),
        limiter.blocks_within(DAY.total_seconds()),
        limiter.blocked(),
        f"{socket.gethostname()}:{os.getpid()}",
        None,
    )


def _reported(row: SenderHealth | None, now: datetime) -> _Health:
    """Another process sends for it: what it last reported (blocks that ended since
    are left out; its counts are as of ``age`` seconds ago)."""
    if row is None:
        return _Health()
    blocked = {}
    for scope, until in (row.blocked or {}).items():
        try:
            left = (datetime.fromisoformat(str(until)) - now).total_seconds()
        except ValueError:
            continue
        if left > 0:
            blocked[scope] = left
    age = max(0.0, (now - row.updated_at).total_seconds())
    return _Health(row.rate_limited_hour, row.rate_limited_day, blocked, row.sender, age)


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
        reports = await sender_health_repo.reports(session=session)
    registered = set(dispatcher.platforms) if dispatcher is not None else set()
    platforms = (registered | set(configured) | set(subs) | set(day)) - {STREAM_PLATFORM}
    out: list[ChannelStats] = []
    for platform in _order(platforms):
        here = platform in registered
        assert dispatcher is not None or not here
        sending = bool(dispatcher and here and dispatcher.sending(platform))
        report = reports.get(platform)
        if sending or (here and report is None):
            health = _live(dispatcher, platform)
        else:
            health = _reported(report, now)
        samples = latencies.get(platform, [])
        out.append(
            ChannelStats(
                channel=platform,
                registered=here,
                sending_here=sending,
                active_subscriptions=subs.get(platform, 0),
                last_hour=_counts(hour.get(platform)),
                last_day=_counts(day.get(platform)),
                rate_limited=health.hour,
                rate_limited_day=health.day,
                blocked_scopes={s: round(left, 3) for s, left in sorted(health.blocked.items())},
                reported_by=health.sender,
                report_age_seconds=health.age,
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
