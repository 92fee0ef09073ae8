"""Corrections and retractions: the signal, its outbox rows, and the edits they cause."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.context import HubContext
from domain.errors import InvalidInput, NotFound
from domain.signals import SignalStatus
from storage.models import DeliveryStatus
from storage.repositories import deliveries as repo
from tests.fakes import RecordingChannel, signal
from tests.manual_clock import ManualClock
from tests.storage.test_digests import _by_status, _dispatcher, _quiet_around
from tests.storage.test_dispatcher import _deliveries, _sub


async def _setup(ctx: HubContext, *dests: str) -> tuple[RecordingChannel, ManualClock, object]:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(ctx, clock)
    dispatcher.register(channel)
    for dest in dests:
        await _sub(ctx, dest)
    return channel, clock, dispatcher


async def test_a_retracted_signal_that_was_not_sent_yet_is_never_sent(any_ctx: HubContext) -> None:
    channel, _clock, dispatcher = await _setup(any_ctx, "a", "b")
    await any_ctx.publisher.publish(signal("s1"))
    result = await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    assert result.revised and not result.created and result.deliveries == 0
    assert result.signal.status is SignalStatus.RETRACTED and result.signal.revision == 1
    assert result.signal.ticker == "AAPL"  # the rest is what was stored
    assert await dispatcher.run_once("fake") == 0  # type: ignore[attr-defined]
    assert channel.sent == [] and channel.edits == []
    assert _by_status(await _deliveries(any_ctx)) == {"canceled": 2}
    stored = await any_ctx.publisher.get("s1")
    assert stored is not None and stored.retracted and stored.revision == 1


async def test_a_delivered_alert_is_edited_in_place_and_only_where_it_arrived(
    any_ctx: HubContext,
) -> None:
    channel, _clock, dispatcher = await _setup(any_ctx, "a", "b")
    channel.behaviour = lambda alert: (
        (_ for _ in ()).throw(__import__("core.channels").channels.PermanentError("no"))
        if alert.destination == "b"
        else None
    )
    await any_ctx.publisher.publish(signal("s1"))
    assert await dispatcher.run_once("fake") == 2  # type: ignore[attr-defined]
    assert channel.sent_to("a") == ["s1"]
    [sent] = [r for r in await _deliveries(any_ctx) if r.status == DeliveryStatus.SENT.value]
    assert sent.message_id == "m1"

    result = await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    assert result.deliveries == 1  # one edit: "b" never got the alert
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    [edit] = channel.edits
    assert (edit.destination, edit.message_id, edit.digest) == ("a", "m1", None)
    assert edit.signal.retracted and edit.signal.revision == 1
    rows = await _deliveries(any_ctx)
    edits = [r for r in rows if r.kind == "edit"]
    assert [(r.status, r.revision, r.message_id) for r in edits] == [("sent", 1, "m1")]
    assert await dispatcher.run_once("fake") == 0  # type: ignore[attr-defined]
    # Retracted is final: publishing it again changes and sends nothing.
    again = await any_ctx.publisher.publish(signal("s1", headline="back again"))
    assert not again.revised and again.signal.retracted
    assert await dispatcher.run_once("fake") == 0  # type: ignore[attr-defined]
    assert len(channel.edits) == 1


async def test_a_correction_edits_once_and_the_same_data_again_changes_nothing(
    any_ctx: HubContext,
) -> None:
    channel, _clock, dispatcher = await _setup(any_ctx, "a")
    await any_ctx.publisher.publish(signal("s1"))
    await dispatcher.run_once("fake")  # type: ignore[attr-defined]
    fixed = await any_ctx.publisher.publish(signal("s1", headline="Corrected headline"))
    assert fixed.revised and fixed.signal.revision == 1 and not fixed.signal.retracted
    same = await any_ctx.publisher.publish(signal("s1", headline="Corrected headline"))
    assert not same.revised and same.signal.revision == 1
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    [edit] = channel.edits
    assert edit.signal.headline == "Corrected headline" and edit.signal.revision == 1


async def test_a_newer_revision_supersedes_an_edit_not_yet_sent(any_ctx: HubContext) -> None:
    channel, _clock, dispatcher = await _setup(any_ctx, "a")
    await any_ctx.publisher.publish(signal("s1"))
    await dispatcher.run_once("fake")  # type: ignore[attr-defined]
    await any_ctx.publisher.publish(signal("s1", headline="first fix"))
    await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    [edit] = channel.edits
    assert edit.signal.retracted and edit.signal.revision == 2
    assert edit.signal.headline == "first fix"
    kinds = [(r.kind, r.revision, r.status) for r in await _deliveries(any_ctx)]
    assert kinds == [("alert", 0, "sent"), ("edit", 1, "canceled"), ("edit", 2, "sent")]


async def test_an_alert_in_flight_when_retracted_is_not_sent_when_retried(
    any_ctx: HubContext,
) -> None:
    channel, clock, dispatcher = await _setup(any_ctx, "a")
    await any_ctx.publisher.publish(signal("s1"))
    # Another worker claims the alert, and dies before sending it.
    async with any_ctx.db.transaction() as session:
        now = clock.wall()
        [claim] = await repo.claim_due("fake", now, now + timedelta(seconds=30), 10, session=session)
    result = await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    assert result.deliveries == 1  # an edit, in case that send went through
    # The edit waits for the original's outcome ...
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    assert channel.edits == [] and channel.sent == []
    await clock.advance(31)
    # ... the retried original sees the retraction, and the edit has nothing to edit.
    assert await dispatcher.run_once("fake") == 2  # type: ignore[attr-defined]
    assert channel.sent == [] and channel.edits == []
    assert _by_status(await _deliveries(any_ctx)) == {"canceled": 2}
    assert claim.signal_seq == result.signal.seq


async def test_a_retracted_item_of_a_delivered_digest_edits_that_digest(
    any_ctx: HubContext,
) -> None:
    channel, clock, dispatcher = await _setup(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await any_ctx.publisher.publish(signal("s1"))
    await any_ctx.publisher.publish(signal("s2"))
    assert await dispatcher.run_once("fake") == 2  # type: ignore[attr-defined]
    # One held alert is retracted before the digest: it is left out.
    await any_ctx.publisher.publish(signal("s3"))
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    await any_ctx.publisher.publish({"signal_id": "s3", "status": "retracted"})
    await clock.advance(3600 + 60)
    assert await dispatcher.run_once("fake") == 2  # type: ignore[attr-defined]
    [digest] = channel.digests
    assert [i.signal.signal_id for i in digest.items] == ["s2", "s1"]

    await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    assert await dispatcher.run_once("fake") == 1  # type: ignore[attr-defined]
    [edit] = channel.edits
    assert edit.message_id == "m1" and edit.digest is not None
    assert [(i.signal.signal_id, i.signal.retracted) for i in edit.digest.items] == [
        ("s2", False),
        ("s1", True),
    ]
    assert abs(edit.digest.now - digest.now) < timedelta(seconds=1)  # ages as first sent


async def test_bad_revisions_are_refused(any_ctx: HubContext) -> None:
    with pytest.raises(NotFound, match="no signal 'nope' to retract"):
        await any_ctx.publisher.publish({"signal_id": "nope", "status": "retracted"})
    await any_ctx.publisher.publish(signal("s1"))
    with pytest.raises(InvalidInput, match="status"):
        await any_ctx.publisher.publish({"signal_id": "s1", "status": "deleted"})
    with pytest.raises(InvalidInput, match="confidence"):
        await any_ctx.publisher.publish({"signal_id": "s1", "confidence": 7})
    stored = await any_ctx.publisher.get("s1")
    assert stored is not None and stored.revision == 0 and stored.confidence == 0.8


async def test_a_correction_read_before_a_retraction_does_not_undo_it(
    any_ctx: HubContext,
) -> None:
    """Two publishers race: one retracts while the other corrects from the state it
    read before. Retracted is final, whichever commits last."""
    await any_ctx.publisher.publish(signal("s1"))
    stale = await any_ctx.publisher.get("s1")
    assert stale is not None and not stale.retracted
    await any_ctx.publisher.publish({"signal_id": "s1", "status": "retracted"})
    # The other publisher's correction, computed from what it read before.
    late = await any_ctx.publisher._revise(stale, {"headline": "late fix"})
    assert not late.revised and late.signal.retracted
    stored = await any_ctx.publisher.get("s1")
    assert stored is not None and stored.retracted and stored.revision == 1
    assert stored.headline == "Test headline"
