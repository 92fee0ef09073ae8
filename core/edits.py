"""Edits: a delivered message changed in place to its signal's current revision
(corrected, or retracted). Only a destination that got the original is edited;
one whose original is being sent right now waits for its outcome."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from core.channels import Edit
from core.digests import digest_again
from core.sending import Round, Sent, deliver, finished_unsent
from storage.models import DeliveryStatus
from storage.repositories import deliveries as deliveries_repo
from storage.repositories.deliveries import Claimed
from storage.repositories.signals import to_signal

#: An edit whose original is being sent right now looks again after this long.
EDIT_WAIT_SECONDS = 5.0


async def send_edit(rounds: Round, item: Claimed) -> datetime | None:
    """Edit the message that carried a signal's alert to the signal's current
    revision. A destination that never got the alert gets nothing; one whose
    alert is being sent right now waits for it."""
    outcomes = rounds.outcomes
    if await finished_unsent(rounds, item):
        return None
    now = rounds.clock()
    async with rounds.db.session() as session:
        original = await deliveries_repo.original_of(
            item.signal_seq, item.subscription_id, now, session=session
        )
        row = rounds.signals.get(item.signal_seq)
        signal = to_signal(row) if row is not None else None
        digest = None
        if original is not None and original.batch_id is not None and signal is not None:
            digest = await digest_again(rounds, item, original, session)
    if original is not None and original.in_flight:
        return await outcomes.reschedule(
            item, EDIT_WAIT_SECONDS, "waiting for the original send", count_attempt=False
        )
    if original is None or signal is None or original.status != DeliveryStatus.SENT.value:
        await outcomes.canceled(item, "the destination never got the original")
        return None
    if original.message_id is None:
        await outcomes.canceled(item, "the original message has no id to edit")
        return None
    message_id = original.message_id
    hint = None if signal.retracted else await rounds.hint_for(signal)

    def send(destination: str) -> Awaitable[str | None]:
        edit = Edit(
            item.delivery_id,
            item.subscription_id,
            destination,
            message_id,
            signal,
            digest,
            hint,
        )
        return _edited(rounds.channel.edit(edit))

    result = await deliver(rounds, item, send)
    if isinstance(result, Sent):
        await outcomes.sent(item, message_id)
        return None
    return result


async def _edited(edit: Awaitable[None]) -> str | None:
    await edit
    return None
