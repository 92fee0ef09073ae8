"""Digests: a destination's held alerts (quiet hours, digest period, cap), sent as
one message in as many parts as the platform's length limit needs, each part
recorded as sent when it is; or held again when quiet hours began or the cap is
full. The rules are :mod:`domain.delivery_prefs`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import Digest, DigestItem
from core.sending import Round, Sent, deliver
from domain.delivery_prefs import DeliveryPrefs, HoldReason
from domain.signals import SignalStatus
from storage.repositories import deliveries as deliveries_repo
from storage.repositories.deliveries import Claimed, Original
from storage.repositories.signals import to_signal


async def send_held(rounds: Round, held: list[Claimed]) -> datetime | None:
    """Send one destination's due held alerts as a digest (in parts past the
    platform's length limit), or hold them again (quiet hours began, the cap is
    full). Returns the time the rest of the destination must wait, or None."""
    outcomes = rounds.outcomes
    first = held[0]
    if not first.active:
        for item in held:
            await outcomes.inactive(item)
        return None
    now = rounds.clock()
    prefs = DeliveryPrefs.stored(first.prefs)
    hold = prefs.plan(now, rounds.recent.get(first.subscription_id, []), batching=False)
    if hold is not None:
        await outcomes.hold(held, hold.until, hold.reason)
        return None
    ttl = timedelta(seconds=rounds.settings.digest_ttl_seconds)
    stale = [i for i in held if now - i.created_at > ttl]
    for item in stale:
        await outcomes.expired(item)
    entries = []
    for item in held:
        row = rounds.signals.get(item.signal_seq)
        if item in stale or row is None:
            continue
        if row.status == SignalStatus.RETRACTED.value:
            await outcomes.canceled(item, "signal retracted")
            continue
        signal = to_signal(row)
        hint = await rounds.hint_for(signal)
        entries.append((DigestItem(item.delivery_id, signal, item.created_at, hint), item))
    if not entries:
        return None
    entries.sort(key=lambda e: (e[0].signal.timestamp, e[0].signal.seq or 0), reverse=True)
    reasons = Counter(i.held_reason for _d, i in entries)
    digest = Digest(
        first.subscription_id,
        first.destination,
        tuple(d for d, _i in entries),
        hold_reason(reasons.most_common(1)[0][0]),
        now,
        omitted=len(stale),
    )
    rows = {d.delivery_id: i for d, i in entries}
    parts = rounds.channel.digest_parts(digest)
    for index, part in enumerate(parts):
        part_rows = [rows[d.delivery_id] for d in part.items]

        def send(destination: str, part: Digest = part) -> Awaitable[str | None]:
            return rounds.channel.send_digest(replace(part, destination=destination))

        result = await deliver(rounds, part_rows[0], send)
        if isinstance(result, Sent):
            rounds.recent.setdefault(first.subscription_id, []).append(rounds.clock())
            await outcomes.digest_sent(part_rows, result.message_id)
            continue
        later = [rows[d.delivery_id] for p in parts[index + 1 :] for d in p.items]
        if result is not None:  # put back: the part's other rows and later parts wait too
            await outcomes.release(part_rows[1:] + later, result)
            return result
        if first.subscription_id in outcomes.gone_subscriptions:
            return None  # its rows were all marked dead with the subscription
        for item in part_rows[1:]:
            await outcomes.dead(item, "its digest part was refused")
    return None


async def digest_again(
    rounds: Round, item: Claimed, original: Original, session: AsyncSession
) -> Digest | None:
    """The digest part an alert went out in, from its items' current state."""
    assert original.batch_id is not None
    rows = await deliveries_repo.batch_rows(original.batch_id, session=session)
    signals = await deliveries_repo.signals_by_seq([r[1] for r in rows], session=session)
    items = [
        DigestItem(delivery_id, to_signal(signals[seq]), created_at)
        for delivery_id, seq, created_at, _reason in rows
        if seq in signals
    ]
    if not items:
        return None
    items.sort(key=lambda i: (i.signal.timestamp, i.signal.seq or 0), reverse=True)
    return Digest(
        item.subscription_id,
        item.destination,
        tuple(items),
        hold_reason(rows[0][3]),
        original.sent_at or rounds.clock(),
    )


def hold_reason(value: str | None) -> HoldReason:
    try:
        return HoldReason(value or HoldReason.DIGEST)
    except ValueError:
        return HoldReason.DIGEST
