"""DiscordChannel: sending embeds with buttons, DM caching, and error classification."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.discord.bot import DiscordBot
from bots.discord.channel import parse_destination
from core.channels import (
    Alert,
    DestinationGone,
    PermanentError,
    RetryLater,
    TransientError,
)
from core.context import HubContext
from domain.signals import Signal
from storage.models import Delivery, DeliveryStatus
from tests.discord.conftest import BotFactory
from tests.discord.fake_discord import (
    CANNOT_DM,
    MISSING_PERMISSIONS,
    SERVER_ERROR,
    UNKNOWN_CHANNEL,
    Failure,
    FakeDiscord,
    custom_ids,
)
from tests.discord.helpers import signal_data

USER = 5151
DM_CHANNEL = 6161
CHANNEL = 7171


def alert(destination: str, **overrides: object) -> Alert:
    return Alert(1, 1, destination, Signal.parse(signal_data(**overrides)).with_seq(1))


async def test_dm_is_opened_once_and_embed_has_buttons(bot: DiscordBot, fake: FakeDiscord) -> None:
    fake.dm_channels[USER] = DM_CHANNEL
    await bot.channel.send(alert(f"dm:{USER}", signal_id="one"))
    await bot.channel.send(alert(f"dm:{USER}", signal_id="two"))
    assert fake.dm_opened == [USER]
    assert bot.channel.cached_dm_channel(USER) == DM_CHANNEL
    sent = fake.messages_to(DM_CHANNEL)
    assert len(sent) == 2
    embed = sent[0].payload["embeds"][0]
    assert embed["title"] == "AAPL · BUY"
    assert embed["footer"]["text"].startswith("signal one")
    assert custom_ids(sent[0]) == ["csh:o:w:one", "csh:o:l:one", "csh:o:s:one"]


async def test_dm_channel_seen_in_an_interaction_needs_no_open(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    fake.dm_channels[USER] = DM_CHANNEL
    await fake.reply(await fake.slash("help", user_id=USER))  # sent from the DM
    assert bot.channel.cached_dm_channel(USER) == DM_CHANNEL
    await bot.channel.send(alert(f"dm:{USER}"))
    assert fake.dm_opened == []
    assert len(fake.messages_to(DM_CHANNEL)) == 1


async def test_channel_destination_posts_directly(bot: DiscordBot, fake: FakeDiscord) -> None:
    await bot.channel.send(alert(f"channel:{CHANNEL}"))
    assert len(fake.messages_to(CHANNEL)) == 1
    assert fake.dm_opened == []


async def test_sent_views_leave_no_state_in_the_client(bot: DiscordBot, fake: FakeDiscord) -> None:
    """discord.py stores a sent view unless it is finished; ours are all DynamicItems,
    so sending thousands of alerts keeps nothing per message."""
    for n in range(5):
        await bot.channel.send(alert(f"channel:{CHANNEL}", signal_id=f"v{n}"))
    assert len(fake.messages_to(CHANNEL)) == 5
    assert bot.client.persistent_views == []


def test_the_adapter_uses_no_discord_py_internals() -> None:
    """Sends go through public API (create_dm, get_partial_messageable(...).send), so
    a discord.py upgrade cannot silently change them."""
    internals = re.compile(r"discord\.http\b|\.http\.|\._connection\b|\._state\b|\._http\b")
    folder = Path(__file__).resolve().parents[2] / "bots" / "discord"
    used = [
        f"{path.name}:{n}"
        for path in sorted(folder.glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if internals.search(line)
    ]
    assert used == []


async def test_limits_share_the_global_budget_with_dm_opens(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    def scopes(destination: str) -> list[tuple[str, int, float]]:
        return [
            (lim.scope, lim.max_calls, lim.period) for lim in bot.channel.limits_for(destination)
        ]

    # One 50/s budget for everything; a DM still to be opened draws its second
    # request from it when sending (tests/discord/test_rate_budget.py).
    assert scopes(f"channel:{CHANNEL}") == [("global", 50, 1.0), (f"channel:{CHANNEL}", 5, 5.0)]
    assert scopes(f"dm:{USER}") == [("global", 50, 1.0), (f"dm:{USER}", 5, 5.0)]


@pytest.mark.parametrize("destination", ["dm:", "chat:1", "channel:abc", "dm:1:2", ""])
def test_bad_destination_is_permanent(destination: str) -> None:
    with pytest.raises(PermanentError):
        parse_destination(destination)


@pytest.mark.parametrize(
    ("failure", "error", "words"),
    [
        (CANNOT_DM, DestinationGone, "cannot DM"),
        (UNKNOWN_CHANNEL, DestinationGone, "unknown"),
        (MISSING_PERMISSIONS, DestinationGone, "forbidden"),
        (Failure(404, 0, "Not Found"), DestinationGone, "unknown"),
        (SERVER_ERROR, TransientError, "server error"),
        (Failure(400, 50035, "Invalid Form Body"), PermanentError, "rejected"),
        (Failure(429, retry_after=31.0), RetryLater, "rate limited"),
        (Failure(429, retry_after=7.0, via=False), RetryLater, "429 (global)"),
    ],
)
async def test_errors_are_classified(
    bot: DiscordBot,
    fake: FakeDiscord,
    failure: Failure,
    error: type[Exception],
    words: str,
) -> None:
    fake.fail_messages(CHANNEL, failure)
    with pytest.raises(error) as info:
        await bot.channel.send(alert(f"channel:{CHANNEL}"))
    assert words in str(info.value)
    if isinstance(info.value, RetryLater):
        assert info.value.retry_after == pytest.approx(failure.retry_after, abs=1.0)
        scope = f"channel:{CHANNEL}" if failure.via else "global"
        assert info.value.scope == scope


async def test_401_pauses_the_whole_channel(bot: DiscordBot, fake: FakeDiscord) -> None:
    fake.token = "rotated"  # the bot's token stops working
    with pytest.raises(RetryLater) as info:
        await bot.channel.send(alert(f"channel:{CHANNEL}"))
    assert info.value.scope == "global" and info.value.retry_after >= 30


async def test_429_that_discord_py_gives_up_on_is_retry_later(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    fake.fail_messages(CHANNEL, Failure(429, retry_after=0.01, is_global=True), times=5)
    with pytest.raises(RetryLater) as info:
        await bot.channel.send(alert(f"channel:{CHANNEL}"))
    assert info.value.scope == "global"
    assert info.value.retry_after == pytest.approx(0.01)


async def test_cannot_open_dm_is_gone_and_forgets_nothing_cached(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    fake.fail_dm_open(USER, CANNOT_DM)
    with pytest.raises(DestinationGone):
        await bot.channel.send(alert(f"dm:{USER}"))
    assert bot.channel.cached_dm_channel(USER) is None


async def test_not_connected_is_transient(make_bot: BotFactory, fake: FakeDiscord) -> None:
    bot = await make_bot(start=False)
    with pytest.raises(TransientError, match="not connected"):
        await bot.channel.send(alert(f"channel:{CHANNEL}"))


async def test_network_error_is_transient(bot: DiscordBot, fake: FakeDiscord) -> None:
    await fake.close()  # the REST server goes away
    with pytest.raises(TransientError):
        await bot.channel.send(alert(f"channel:{CHANNEL}"))


# ---- through the real dispatcher -------------------------------------------------
async def _deliveries(ctx: HubContext) -> list[Delivery]:
    async with ctx.db.session() as session:
        return list((await session.execute(select(Delivery))).scalars().all())


async def _subscribe_dm(ctx: HubContext, user: int = USER) -> int:
    ref = await ctx.services.accounts.resolve("discord", user)
    info, _ = await ctx.services.subscriptions.subscribe("discord", f"dm:{user}", ref.id)
    return info.id


async def _wait(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():
            await asyncio.sleep(0.05)


async def test_429_is_rescheduled_by_the_dispatcher_and_sent_later(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    await _subscribe_dm(ctx)
    fake.dm_channels[USER] = DM_CHANNEL
    # discord.py sleeps through each 429 and gives up after 5; the dispatcher takes over.
    fake.fail_messages(DM_CHANNEL, Failure(429, retry_after=0.05), times=5)
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    await ctx.publisher.publish(signal_data(signal_id="rl-1"))

    async def sent() -> bool:
        rows = await _deliveries(ctx)
        return bool(rows) and rows[0].status == DeliveryStatus.SENT

    await _wait(sent)
    rows = await _deliveries(ctx)
    assert rows[0].attempts <= 1  # a 429 is not a failed attempt
    assert not fake.failures[("messages", DM_CHANNEL)]  # all five 429s were served
    assert len(fake.messages_to(DM_CHANNEL)) == 1
    rate_limited = ctx.metrics.deliveries.labels(channel="discord", state="rate_limited")
    assert rate_limited._value.get() == 1


async def test_50007_deactivates_and_is_not_retried(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    sub_id = await _subscribe_dm(ctx)
    fake.dm_channels[USER] = DM_CHANNEL
    fake.fail_messages(DM_CHANNEL, CANNOT_DM, times=10)
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    await ctx.publisher.publish(signal_data(signal_id="gone-1"))

    async def dead() -> bool:
        rows = await _deliveries(ctx)
        return bool(rows) and rows[0].status == DeliveryStatus.DEAD

    await _wait(dead)
    info = await ctx.services.subscriptions.get("discord", f"dm:{USER}")
    assert info is not None and info.id == sub_id and not info.active
    assert "cannot DM" in (info.deactivated_reason or "")
    # A second signal is not even routed to the inactive subscription.
    result = await ctx.publisher.publish(signal_data(signal_id="gone-2"))
    assert result.deliveries == 0
    posts = [r for r in fake.requests if r == ("POST", f"/channels/{DM_CHANNEL}/messages")]
    assert len(posts) == 1  # tried once, never again
    assert len(fake.failures[("messages", DM_CHANNEL)]) == 9


async def test_403_on_channel_deactivates_with_reason(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    ref = await ctx.services.accounts.resolve("discord", USER)
    await ctx.services.subscriptions.subscribe("discord", f"channel:{CHANNEL}", ref.id)
    fake.fail_messages(CHANNEL, MISSING_PERMISSIONS)
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    await ctx.publisher.publish(signal_data(timestamp=datetime.now(UTC).isoformat()))

    async def inactive() -> bool:
        info = await ctx.services.subscriptions.get("discord", f"channel:{CHANNEL}")
        return info is not None and not info.active

    await _wait(inactive)
    info = await ctx.services.subscriptions.get("discord", f"channel:{CHANNEL}")
    assert info is not None
    assert "forbidden" in (info.deactivated_reason or "") and "50013" in (
        info.deactivated_reason or ""
    )


async def test_dm_channels_survive_a_restart(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext
) -> None:
    first = await make_bot()
    await first.channel.send(alert(f"dm:{USER}", signal_id="before"))
    assert fake.dm_opened == [USER]
    await first.stop()
    restarted = await make_bot()  # a new process would build a new bot the same way
    assert restarted.channel.cached_dm_channel(USER) is not None
    await restarted.channel.send(alert(f"dm:{USER}", signal_id="after"))
    assert fake.dm_opened == [USER]  # not opened again
    channel_id = restarted.channel.cached_dm_channel(USER)
    assert channel_id is not None and len(fake.messages_to(channel_id)) == 2
