"""Outcome hints: the ledger's line for an alert's catalyst and confidence bucket."""

from __future__ import annotations

from core.context import HubContext
from core.hints import OutcomeHints
from domain.outcomes import bucket_label, hint_line, summarize
from domain.signals import Signal
from storage.models import User


def test_hint_line_needs_the_minimum_sample() -> None:
    nine = summarize([("win", 5.0)] * 6 + [("loss", -2.0)] * 3)
    assert hint_line("FDA", "0.8-0.9", nine, min_sample=10) is None
    ten = summarize([("win", 5.0)] * 6 + [("loss", -2.0)] * 3 + [("breakeven", 0.0)])
    assert hint_line("FDA", "0.8-0.9", ten, min_sample=10) == (
        "FDA, 80–90%: 6 W / 3 L reported (1 breakeven), avg +2.40%"
    )
    skips = summarize([("skipped", None)] * 20)  # skips are not trades
    assert hint_line("FDA", "0.8-0.9", skips, min_sample=10) is None
    assert bucket_label("0.9-1.0") == "90–100%" and bucket_label("unknown") == "unknown"


async def test_hints_follow_the_ledger_and_refresh_after_the_ttl(ctx: HubContext) -> None:
    now = [0.0]
    hints = OutcomeHints(ctx.db, min_sample=3, ttl=60.0, clock=lambda: now[0])
    async with ctx.db.transaction() as session:
        users = [User(name=f"u{i}") for i in range(4)]
        session.add_all(users)
    fda = [
        (
            await ctx.publisher.publish(
                {"signal_id": f"f{i}", "ticker": "ABCD", "catalyst_type": "FDA", "confidence": 0.85}
            )
        ).signal
        for i in range(4)
    ]
    other = (
        await ctx.publisher.publish(
            {"signal_id": "low", "ticker": "ABCD", "catalyst_type": "FDA", "confidence": 0.55}
        )
    ).signal
    new = Signal.model_validate(
        {"signal_id": "new", "ticker": "WXYZ", "catalyst_type": "FDA", "confidence": 0.81}
    )
    assert await hints.line_for(new) is None  # nothing reported yet
    for user, (signal, outcome, ret) in zip(
        users, [(fda[0], "win", "10"), (fda[1], "win", "4"), (fda[2], "loss", "-2")], strict=False
    ):
        assert user.id is not None
        await ctx.services.feedback.record(user.id, signal.signal_id, outcome, ret)
    assert users[3].id is not None
    await ctx.services.feedback.record(users[3].id, other.signal_id, "loss", "-50")
    assert await hints.line_for(new) is None  # the table is cached for the TTL
    now[0] = 61.0
    assert await hints.line_for(new) == "FDA, 80–90%: 2 W / 1 L reported, avg +4.00%"
    # Another bucket, another line: the 50-60% loss does not leak into 80-90%.
    assert await hints.line_for(other) is None
