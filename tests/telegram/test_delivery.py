"""Alert delivery through the real dispatcher and TelegramChannel, with Telegram's errors."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bots.telegram import TelegramBot, TelegramChannel
from bots.telegram.channel import JITTER_SECONDS, FloodTracker
from core.channels import (
    Alert,
    DestinationGone,
    DestinationMoved,
    PermanentError,
    RateLimit,
    RetryLater,
    TransientError,
)
from core.context import HubContext
from domain.signals import Signal
from storage.models import Delivery, User
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.conftest import eventually
from tests.telegram.fake_bot_api import FakeBotApi

SIGNAL = {"ticker": "AAPL", "confidence": 0.8, "catalyst_type": "FDA", "headline": "News"}


async def subscribe(ctx: HubContext, *chats: int) -> None:
    for chat in chats:
        user = await ctx.services.accounts.resolve("telegram", chat)
        await ctx.services.subscriptions.subscribe("telegram", str(chat), user.id)


async def run(ctx: HubContext, bot: TelegramBot) -> None:
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()


async def deliveries(ctx: HubContext) -> list[Delivery]:
    async with ctx.db.session() as session:
        return list((await session.execute(select(Delivery))).scalars())


def alert(destination: str) -> Alert:
    signal = Signal.parse({**SIGNAL, "signal_id": "a1"}).with_seq(1)
    return Alert(1, 1, destination, signal)


def test_limits() -> None:
    channel = TelegramChannel.__new__(TelegramChannel)
    chat_period = 1.0 + JITTER_SECONDS
    assert channel.limits_for("1001") == (
        RateLimit("global", 30, 1.0),
        RateLimit("chat:1001", 1, chat_period),
    )
    assert channel.limits_for("-100200") == (
        RateLimit("global", 30, 1.0),
        RateLimit("group:-100200", 20, 60.0),
        RateLimit("chat:-100200", 1, chat_period),
    )
    assert channel.limits_for("@news")[1].scope == "group:@news"


def test_flood_tracker_escalates_to_global_when_many_chats_are_refused() -> None:
    now = [0.0]
    tracker = FloodTracker(threshold=3, window=1.0, clock=lambda: now[0])
    assert tracker.scope_for("1") == "chat:1"
    assert tracker.scope_for("1") == "chat:1"
    assert tracker.scope_for("2") == "chat:2"
    assert tracker.scope_for("3") == "global"
    now[0] = 5.0
    assert tracker.scope_for("4") == "chat:4"


async def test_errors_are_classified(bot: TelegramBot, fake: FakeBotApi) -> None:
    channel = bot.channel
    cases: list[tuple[tuple[int, dict[str, object]], type[Exception]]] = [
        (fake_api.too_many_requests(7), RetryLater),
        (fake_api.blocked(), DestinationGone),
        (fake_api.migrated(-100777), DestinationMoved),
        (fake_api.bad_request("chat not found"), DestinationGone),
        (fake_api.server_error(), TransientError),
        ((502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}), TransientError),
    ]
    for response, expected in cases:
        fake.fail("sendMessage", response, chat_id=1001)
        try:
            await channel.send(alert("1001"))
        except expected as exc:
            if isinstance(exc, RetryLater):
                assert (exc.retry_after, exc.scope) == (7.0, "chat:1001")
            if isinstance(exc, DestinationMoved):
                assert exc.new_destination == "-100777"
        else:
            raise AssertionError(f"{response} did not raise {expected.__name__}")
    assert fake.sent == []
    # a rejected payload is retried once as plain text, then given up
    fake.fail("sendMessage", fake_api.bad_request("message is too long"), chat_id=1001, times=2)
    try:
        await channel.send(alert("1001"))
    except PermanentError as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("expected PermanentError")


async def test_broken_entity_falls_back_to_plain_text(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    await subscribe(ctx, 1001)
    fake.fail("sendMessage", fake_api.bad_request("can't parse entities: bad tag"), chat_id=1001)
    await run(ctx, bot)
    await ctx.publisher.publish({**SIGNAL, "headline": "Q3 <beat> & raise"})
    [message] = await fake.wait_sent(1, chat_id=1001)
    assert message.parse_mode is None
    assert "Q3 <beat> & raise" in message.text
    assert [label for label, _d in message.buttons()] == ["Win", "Loss", "Skip"]


async def test_429_delays_only_that_chat(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    await subscribe(ctx, 1001, 1002, 1003)
    fake.fail("sendMessage", fake_api.too_many_requests(1), chat_id=1002)
    await run(ctx, bot)
    await ctx.publisher.publish(SIGNAL)
    await fake.wait_sent(2)
    assert {m.chat_id for m in fake.sent} == {1001, 1003}

    async def two_sent() -> bool:
        return [r.status for r in await deliveries(ctx)].count("sent") == 2

    await eventually(two_sent)
    waiting = [r for r in await deliveries(ctx) if r.status != "sent"]
    assert len(waiting) == 1 and "429" in (waiting[0].last_error or "")
    assert waiting[0].attempts == 0  # a 429 is not a failed attempt
    assert waiting[0].next_attempt_at.replace(tzinfo=UTC) > datetime.now(UTC).replace(microsecond=0)
    await fake.wait_sent(1, chat_id=1002, within=5)
    assert fake.rate_limited == 1
    assert sorted(m.chat_id for m in fake.sent) == [1001, 1002, 1003]  # nothing twice

    async def all_sent() -> bool:
        return {r.status for r in await deliveries(ctx)} == {"sent"}

    await eventually(all_sent)


async def test_blocked_user_deactivates_the_subscription(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    await subscribe(ctx, 1001, 1002)
    fake.fail("sendMessage", fake_api.blocked(), chat_id=1002)
    await run(ctx, bot)
    await ctx.publisher.publish(SIGNAL)
    await fake.wait_sent(1, chat_id=1001)

    async def gone() -> bool:
        info = await ctx.services.subscriptions.get("telegram", "1002")
        return info is not None and not info.active

    await eventually(gone)
    info = await ctx.services.subscriptions.get("telegram", "1002")
    assert info is not None and not info.active
    assert "blocked" in (info.deactivated_reason or "")
    result = await ctx.publisher.publish({**SIGNAL, "signal_id": "second"})
    assert result.deliveries == 1  # only the chat that still listens
    await fake.wait_sent(2, chat_id=1001)
    assert fake.sent_to(1002) == []


async def test_migrated_group_follows_the_new_id(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    old, new = -4001, -1004001
    await subscribe(ctx, old)
    fake.fail("sendMessage", fake_api.migrated(new), chat_id=old)
    await run(ctx, bot)
    await ctx.publisher.publish(SIGNAL)
    [message] = await fake.wait_sent(1, chat_id=new)
    assert "AAPL" in message.text
    assert fake.sent_to(old) == []
    info = await ctx.services.subscriptions.get("telegram", str(new))
    assert info is not None and info.active


async def test_server_errors_are_retried(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    await subscribe(ctx, 1001)
    fake.fail("sendMessage", fake_api.server_error(), chat_id=1001, times=2)
    await run(ctx, bot)
    await ctx.publisher.publish(SIGNAL)
    [message] = await fake.wait_sent(1, chat_id=1001, within=10)
    assert "AAPL" in message.text

    async def sent() -> bool:
        return [r.status for r in await deliveries(ctx)] == ["sent"]

    await eventually(sent)
    [row] = await deliveries(ctx)
    assert row.attempts == 3


async def test_delivery_only_process_neither_polls_nor_registers(
    ctx: HubContext, fake: FakeBotApi
) -> None:
    from tests.telegram.conftest import telegram_settings

    bot = TelegramBot(telegram_settings(fake), ctx)
    await bot.start(receive_updates=False)
    try:
        assert not bot.running
        await subscribe(ctx, 1001)
        await run(ctx, bot)
        await ctx.publisher.publish(SIGNAL)
        await fake.wait_sent(1, chat_id=1001)
        methods = {m for m, _p in fake.calls}
        assert methods == {"getMe", "sendMessage"}
    finally:
        await ctx.dispatcher.stop()
        await bot.stop()


async def test_alert_carries_the_outcome_hint_once_the_sample_is_big_enough(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    """Through the real dispatcher: 10 executed FDA trades at 80-90 % confidence
    (stats.min_sample) and the next such alert carries the ledger's line."""
    async with ctx.db.transaction() as session:
        users = [User(name=f"trader{i}") for i in range(10)]
        session.add_all(users)
    for i, user in enumerate(users):
        await ctx.publisher.publish({**SIGNAL, "signal_id": f"old{i}", "confidence": 0.85})
        assert user.id is not None
        await ctx.services.feedback.record(user.id, f"old{i}", "win" if i < 6 else "loss", "3")
    await subscribe(ctx, 1001)
    await run(ctx, bot)
    await ctx.publisher.publish({**SIGNAL, "signal_id": "new", "confidence": 0.82})
    [message] = await fake.wait_sent(1, chat_id=1001)
    assert "📊 <i>FDA, 80–90%: 6 W / 4 L reported, avg +3.00%</i>" in message.text
    await ctx.publisher.publish({**SIGNAL, "signal_id": "low", "confidence": 0.55})
    messages = await fake.wait_sent(2, chat_id=1001)
    assert "📊" not in messages[1].text  # nothing reported in the 50-60 % bucket
