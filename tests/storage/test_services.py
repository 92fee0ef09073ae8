"""Core services every front calls, on every backend."""

from __future__ import annotations

import pytest

from core.context import HubContext
from domain.errors import InvalidInput, NotFound
from domain.filters import SignalFilter
from tests.fakes import RecordingChannel, signal


async def test_subscribe_twice_is_harmless_and_unsubscribe_undoes(any_ctx: HubContext) -> None:
    subs = any_ctx.services.subscriptions
    user = await any_ctx.services.accounts.resolve("telegram", 1)
    info, changed = await subs.subscribe("telegram", "100", user.id)
    again, changed_again = await subs.subscribe("telegram", "100", user.id)
    assert changed and not changed_again and info.id == again.id
    assert await subs.unsubscribe("telegram", "100")
    assert not await subs.unsubscribe("telegram", "100")
    with pytest.raises(NotFound, match="not subscribed"):
        await subs.get_filter("telegram", "100")
    # Re-subscribing reactivates the same row and keeps nothing stale.
    back, changed = await subs.subscribe("telegram", "100", user.id)
    assert changed and back.id == info.id and back.active


async def test_filters_show_set_reset(any_ctx: HubContext) -> None:
    subs = any_ctx.services.subscriptions
    user = await any_ctx.services.accounts.resolve("discord", 7)
    await subs.subscribe("discord", "dm:7", user.id)
    assert (await subs.get_filter("discord", "dm:7")).is_empty()
    await subs.set_field("discord", "dm:7", "min_confidence", "0.7")
    flt = await subs.update_filter(
        "discord", "dm:7", {"tickers": ["aapl", "tsla"], "max_price": 20}
    )
    assert flt.to_text() == "min_confidence=0.7 tickers=AAPL,TSLA max_price=20"
    assert (await subs.get_filter("discord", "dm:7")) == flt
    with pytest.raises(InvalidInput, match="min_confidence"):
        await subs.set_field("discord", "dm:7", "min_confidence", "2")
    assert (await subs.get_filter("discord", "dm:7")) == flt  # a bad value changes nothing
    assert (await subs.reset_filter("discord", "dm:7")).is_empty()
    with pytest.raises(NotFound):
        await subs.set_field("discord", "dm:unknown", "tickers", "AAPL")


async def test_trade_outcomes_one_per_user_and_signal(any_ctx: HubContext) -> None:
    fb = any_ctx.services.feedback
    user = await any_ctx.services.accounts.create_user("trader")
    await any_ctx.publisher.publish(signal("o1"))
    first = await fb.record(user.id, "o1", "win", "12.5")
    second = await fb.record(user.id, "o1", "LOSS", "-4%")
    assert not first.updated and second.updated
    stats = await fb.user_stats(user.id)
    assert stats.trades_executed == 1
    assert stats.outcomes.losses == 1 and stats.outcomes.wins == 0
    assert stats.avg_return == -4.0


@pytest.mark.parametrize(
    ("signal_id", "outcome", "ret", "error", "message"),
    [
        ("nope", "win", None, NotFound, "no signal with id 'nope'"),
        ("o1", "maybe", None, InvalidInput, "outcome must be one of win, loss, breakeven, skipped"),
        ("o1", "win", "lots", InvalidInput, "return_pct must be a number"),
        ("o1", "win", "1e9", InvalidInput, "between -100 and 10000"),
        ("o1", "skipped", "5", InvalidInput, "skipped signal has no return_pct"),
    ],
)
async def test_bad_feedback_is_refused_clearly(
    any_ctx: HubContext, signal_id: str, outcome: str, ret: str | None, error: type, message: str
) -> None:
    user = await any_ctx.services.accounts.create_user("trader")
    await any_ctx.publisher.publish(signal("o1"))
    with pytest.raises(error, match=message):
        await any_ctx.services.feedback.record(user.id, signal_id, outcome, ret)


async def test_user_stats(any_ctx: HubContext) -> None:
    channel = RecordingChannel("telegram")
    any_ctx.dispatcher.register(channel)
    user = await any_ctx.services.accounts.resolve("telegram", 5)
    await any_ctx.services.subscriptions.subscribe("telegram", "5", user.id)
    for i, (outcome, ret) in enumerate(
        [("win", 10), ("win", 20), ("loss", -15), ("breakeven", 0), ("skipped", None)]
    ):
        await any_ctx.publisher.publish(signal(f"st{i}", confidence=0.55 + i * 0.1))
        await any_ctx.services.feedback.record(user.id, f"st{i}", outcome, ret)
    await any_ctx.dispatcher.run_once("telegram")
    stats = await any_ctx.services.feedback.user_stats(user.id)
    assert stats.signals_received == 5
    assert stats.trades_executed == 4
    assert stats.win_rate == 0.5
    assert stats.avg_return == 3.75
    assert stats.outcomes.skipped == 1
    other = await any_ctx.services.accounts.create_user("other")
    assert (await any_ctx.services.feedback.user_stats(other.id)).trades_executed == 0


async def test_stats_by_catalyst_and_confidence(any_ctx: HubContext) -> None:
    a = await any_ctx.services.accounts.create_user("a")
    b = await any_ctx.services.accounts.create_user("b")
    await any_ctx.publisher.publish(signal("c1", catalyst_type="FDA", confidence=0.95))
    await any_ctx.publisher.publish(signal("c2", catalyst_type="M&A", confidence=0.55))
    await any_ctx.services.feedback.record(a.id, "c1", "win", 10)
    await any_ctx.services.feedback.record(b.id, "c1", "loss", -5)
    await any_ctx.services.feedback.record(a.id, "c2", "win", 30)
    by_cat = {g.key: g.stats for g in await any_ctx.services.feedback.by_catalyst()}
    assert by_cat["FDA"].trades_executed == 2 and by_cat["FDA"].win_rate == 0.5
    assert by_cat["M&A"].avg_return == 30
    by_conf = {g.key: g.stats for g in await any_ctx.services.feedback.by_confidence()}
    assert by_conf["0.9-1.0"].trades_executed == 2
    assert by_conf["0.5-0.6"].wins == 1


async def test_recent_signals_respect_a_filter(any_ctx: HubContext) -> None:
    for i in range(5):
        await any_ctx.publisher.publish(signal(f"n{i}", ticker="TSLA" if i % 2 else "AAPL"))
    recent = await any_ctx.services.signals.recent(2)
    assert [s.signal_id for s in recent] == ["n4", "n3"]
    only = await any_ctx.services.signals.recent(10, SignalFilter.from_text("tickers=TSLA"))
    assert [s.signal_id for s in only] == ["n3", "n1"]
    replay = await any_ctx.services.signals.query(after_seq=recent[1].seq, ascending=True)
    assert [s.signal_id for s in replay] == ["n4"]
    with pytest.raises(NotFound):
        await any_ctx.services.signals.get("missing")


async def test_account_linking_merges_users(any_ctx: HubContext) -> None:
    accounts = any_ctx.services.accounts
    api_user = await accounts.create_user("scripter")
    tg = await accounts.resolve("telegram", 42)
    await any_ctx.services.subscriptions.subscribe("telegram", "42", tg.id)
    await any_ctx.publisher.publish(signal("l1"))
    await any_ctx.services.feedback.record(tg.id, "l1", "win", 5)
    code = await accounts.issue_link_code(tg.id, "telegram")
    merged = await accounts.redeem_link_code(code.lower(), api_user.id)
    assert merged.id == min(api_user.id, tg.id)
    assert (await accounts.resolve("telegram", 42)).id == merged.id
    subs = await any_ctx.services.subscriptions.for_user(merged.id)
    assert [s.destination for s in subs] == ["42"]
    assert (await any_ctx.services.feedback.user_stats(merged.id)).trades_executed == 1
    with pytest.raises(NotFound, match="unknown, used or expired"):
        await accounts.redeem_link_code(code, api_user.id)  # one-time
    with pytest.raises(NotFound):
        await accounts.redeem_link_code("ZZZZZZZZ", api_user.id)
    with pytest.raises(InvalidInput):
        await accounts.redeem_link_code("", api_user.id)


async def test_api_keys_are_hashed_scoped_and_revocable(any_ctx: HubContext) -> None:
    from sqlalchemy import select

    from storage.models import ApiKey

    user = await any_ctx.services.accounts.create_user("keyholder")
    key, info = await any_ctx.auth.create_key(user.id, ("read", "publish"))
    assert key.startswith("catalyst_") and len(key) > 40
    async with any_ctx.db.session() as session:
        stored = (await session.execute(select(ApiKey))).scalars().one()
    assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    principal = await any_ctx.auth.authenticate(key)
    assert principal is not None and principal.has("publish") and not principal.has("admin")
    token, expires_in = any_ctx.auth.issue_token(principal)
    via_jwt = await any_ctx.auth.authenticate(token)
    assert via_jwt is not None and via_jwt.user.id == user.id and expires_in == 3600
    assert await any_ctx.auth.authenticate("catalyst_wrong") is None
    assert await any_ctx.auth.authenticate(token + "x") is None
    await any_ctx.auth.revoke_key(info.id)
    assert await any_ctx.auth.authenticate(key) is None
    assert await any_ctx.auth.authenticate(token) is None  # tokens die with their key
    with pytest.raises(InvalidInput, match="unknown scope"):
        await any_ctx.auth.create_key(user.id, ("root",))


async def test_expired_jwt_is_rejected(any_ctx: HubContext) -> None:
    import time

    import jwt

    from tests.conftest import TEST_JWT_SECRET

    user = await any_ctx.services.accounts.create_user("x")
    now = int(time.time())
    expired = jwt.encode(
        {"sub": str(user.id), "iat": now - 100, "exp": now - 10, "iss": "catalyst-signal-hub"},
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    assert await any_ctx.auth.authenticate(expired) is None
    string_exp = jwt.encode(
        {
            "sub": str(user.id),
            "iat": now,
            "exp": "2099-01-01T00:00:00",
            "iss": "catalyst-signal-hub",
        },
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    assert await any_ctx.auth.authenticate(string_exp) is None


async def test_concurrent_first_subscribes_do_not_crash(any_ctx: HubContext) -> None:
    import asyncio

    user = await any_ctx.services.accounts.create_user("racer")
    results = await asyncio.gather(
        *(any_ctx.services.subscriptions.stream(user.id) for _ in range(5))
    )
    assert len({r.id for r in results}) == 1


async def test_signal_by_seq_and_recent_under_a_destinations_filter(any_ctx: HubContext) -> None:
    """The two look-ups both bots use, written once in core."""
    signals = any_ctx.services.signals
    for i, ticker in enumerate(("AAPL", "TSLA", "AAPL")):
        await any_ctx.publisher.publish({"signal_id": f"r{i}", "ticker": ticker, "confidence": 0.8})
    second = await signals.get("r1")
    assert second.seq is not None
    assert (await signals.by_seq(second.seq)) == second
    assert await signals.by_seq(second.seq + 100) is None
    assert await signals.by_seq(0) is None and await signals.by_seq(2**63) is None

    user = await any_ctx.services.accounts.create_user("recent-user")
    subs = any_ctx.services.subscriptions
    everything, flt = await signals.recent_for_destination("telegram", "555", 5)
    assert flt is None and [s.signal_id for s in everything] == ["r2", "r1", "r0"]
    await subs.subscribe("telegram", "555", user.id)
    await subs.update_filter("telegram", "555", {"tickers": ["AAPL"]})
    mine, flt = await signals.recent_for_destination("telegram", "555", 5)
    assert flt is not None and [s.signal_id for s in mine] == ["r2", "r0"]
    await subs.unsubscribe("telegram", "555")
    _, flt = await signals.recent_for_destination("telegram", "555", 5)
    assert flt is None  # an inactive subscription's filter no longer applies


async def test_stream_receipts_add_up_in_the_database(any_ctx: HubContext) -> None:
    from storage.repositories import receipts

    a = await any_ctx.services.accounts.create_user("rcpt-a")
    b = await any_ctx.services.accounts.create_user("rcpt-b")
    for counts in ({a.id: 2}, {a.id: 3, b.id: 1}):
        async with any_ctx.db.transaction() as session:
            await receipts.add(counts, session=session)
    async with any_ctx.db.session() as session:
        assert await receipts.received(a.id, session=session) == 5
        assert await receipts.received(b.id, session=session) == 1
    assert (await any_ctx.services.feedback.user_stats(a.id)).signals_received == 5


async def test_linking_users_adds_their_stream_receipts(any_ctx: HubContext) -> None:
    from storage.repositories import receipts

    accounts = any_ctx.services.accounts
    api_user = await accounts.create_user("streamer")
    tg = await accounts.resolve("telegram", 77)
    async with any_ctx.db.transaction() as session:
        await receipts.add({api_user.id: 4, tg.id: 3}, session=session)
    code = await accounts.issue_link_code(tg.id, "telegram")
    merged = await accounts.redeem_link_code(code, api_user.id)
    dropped = tg.id if merged.id == api_user.id else api_user.id
    assert (await any_ctx.services.feedback.user_stats(merged.id)).signals_received == 7
    assert (await any_ctx.services.feedback.user_stats(dropped)).signals_received == 0
