"""One dispatcher round's sending: what its sends share (:class:`Round`), sending
under the rate limits while following a moved destination (:func:`deliver`), and
a single alert: sent now, or held for a digest (:func:`send_alert`).

Digests are :mod:`core.digests`; edits of delivered messages :mod:`core.edits`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.channels import Alert, Channel, DestinationMoved
from core.delivery_outcomes import DeliveryOutcomes
from core.ratelimit import CURRENT_PERMIT, ScopedLimiter
from core.settings import DispatcherSettings
from domain.delivery_prefs import DeliveryPrefs
from domain.signals import Signal
from storage.database import Database
from storage.models import SignalRow
from storage.repositories.deliveries import Claimed
from storage.repositories.signals import to_signal

#: Waiting longer than this for a rate limit releases the claim instead of holding it.
MAX_INLINE_WAIT = 5.0
#: How many times one send follows its destination moving before it gives up.
MAX_MOVES = 3


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Round:
    """What one round's sends share."""

    channel: Channel
    outcomes: DeliveryOutcomes
    signals: Mapping[int, SignalRow]
    #: Per capped subscription, when its recent messages went (appended as we send).
    recent: dict[int, list[datetime]]
    sem: asyncio.Semaphore
    #: Loop time by which every send of the round has finished (inside the lease).
    deadline: float
    limiter: ScopedLimiter
    settings: DispatcherSettings
    db: Database
    clock: Callable[[], datetime]
    #: The outcome ledger's line for a signal, never raising (Dispatcher._hint_for).
    hint_for: Callable[[Signal], Awaitable[str | None]]


async def finished_unsent(rounds: Round, item: Claimed) -> bool:
    """Record a delivery that must not go: its subscription ended, or it is older
    than the TTL (news goes stale). True when it was recorded."""
    outcomes = rounds.outcomes
    if not item.active:
        await outcomes.inactive(item)
        return True
    if rounds.clock() - item.created_at > timedelta(seconds=rounds.settings.ttl_seconds):
        await outcomes.expired(item)
        return True
    return False


async def deliver(
    rounds: Round, lead: Claimed, send: Callable[[str], Awaitable[str | None]]
) -> Sent | datetime | None:
    """Send under the destination's rate limits, following it if it moved.

    ``lead`` is the row a failure is recorded on. Returns :class:`Sent` on
    success (the caller records it); otherwise the failure was recorded and
    the result is the time the destination must wait, or None."""
    channel, outcomes = rounds.channel, rounds.outcomes
    limiter = rounds.limiter
    destination = lead.destination
    for _move in range(MAX_MOVES):
        limits = channel.limits_for(destination)
        wait = limiter.ready_in(limits)
        loop_now = asyncio.get_running_loop().time()
        if wait > MAX_INLINE_WAIT or loop_now + wait > rounds.deadline:
            return await outcomes.rate_limited(lead, wait)
        async with rounds.sem:
            try:
                # Queued behind other sends (FIFO per scope): give up the wait,
                # not the claim, if the slot would come after the deadline.
                async with asyncio.timeout_at(rounds.deadline):
                    permit = await limiter.acquire(limits)
            except TimeoutError:
                return await outcomes.rate_limited(lead, 0.0)
            try:
                # A send never outlives its claim: past the deadline (well inside
                # the lease) another worker could retake and resend it.
                async with asyncio.timeout_at(rounds.deadline):
                    current = CURRENT_PERMIT.set(permit)
                    try:
                        message_id = await send(destination)
                    finally:
                        CURRENT_PERMIT.reset(current)
                        limiter.settle(permit)  # answered (or not): counted by now
            except DestinationMoved as exc:
                if not await outcomes.moved(lead, destination, exc.new_destination):
                    return None
                destination = exc.new_destination
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # what it means: DeliveryOutcomes.failed
                return await outcomes.failed(lead, exc, limits, permit)
        return Sent(message_id)
    await outcomes.dead(lead, "destination moved too many times")
    return None


async def send_alert(rounds: Round, item: Claimed) -> datetime | None:
    """Handle one claimed alert (not held): send it now, or hold it for a digest.

    Returns None when done, or the time before which later deliveries to the
    same destination must not go (this one was put back until then).
    """
    outcomes = rounds.outcomes
    if await finished_unsent(rounds, item):
        return None
    now = rounds.clock()
    prefs = DeliveryPrefs.stored(item.prefs)
    if not prefs.empty:
        hold = prefs.plan(now, rounds.recent.get(item.subscription_id, []))
        if hold is not None:
            await outcomes.hold([item], hold.until, hold.reason)
            return None
    row = rounds.signals.get(item.signal_seq)
    if row is None:  # pragma: no cover - foreign key makes this impossible
        await outcomes.dead(item, "signal missing")
        return None
    signal = to_signal(row)
    if signal.retracted:  # retracted while this delivery was in flight
        await outcomes.canceled(item, "signal retracted")
        return None
    hint = await rounds.hint_for(signal)

    def send(destination: str) -> Awaitable[str | None]:
        alert = Alert(item.delivery_id, item.subscription_id, destination, signal, hint)
        return rounds.channel.send(alert)

    result = await deliver(rounds, item, send)
    if isinstance(result, Sent):
        rounds.recent.setdefault(item.subscription_id, []).append(rounds.clock())
        await outcomes.sent(item, result.message_id)
        return None
    return result
