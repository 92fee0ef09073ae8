"""The shared 50/s Discord budget, and the fake's enforced limits and headers."""

from __future__ import annotations

import aiohttp

from bots.discord.bot import DiscordBot
from core.channels import Alert, RateLimit
from core.ratelimit import CURRENT_PERMIT, ScopedLimiter
from domain.signals import Signal
from tests.discord.fake_discord import TOKEN, FakeDiscord
from tests.discord.helpers import signal_data

USER = 8181
CHANNEL = 9191


def alert(destination: str) -> Alert:
    return Alert(1, 1, destination, Signal.parse(signal_data()).with_seq(1))


async def test_posts_may_use_the_whole_budget_when_dms_are_known(bot: DiscordBot) -> None:
    bot.channel.remember_dm_channel(USER, 4242)
    limits = bot.channel.limits_for(f"dm:{USER}")
    assert RateLimit("global", 50, 1.0) in limits
    assert not [lim for lim in limits if lim.scope != "global" and lim.scope != f"dm:{USER}"]
    # 50 sends in the same instant all pass the limiter: no share is kept for DM opens.
    limiter = ScopedLimiter(clock=lambda: 1.0)
    for n in range(50):
        assert limiter.ready_in(bot.channel.limits_for(f"dm:{n}")) == 0
        await limiter.acquire(bot.channel.limits_for(f"dm:{n}"))
    assert limiter.ready_in(bot.channel.limits_for("dm:51")) > 0


async def test_a_dm_open_draws_a_second_slot_from_the_same_budget(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    clock = [1.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    bot.channel.attach_limiter(limiter)
    destination = f"dm:{USER}"
    permit = await limiter.acquire(bot.channel.limits_for(destination))
    await bot.channel.send(alert(destination))  # opens the DM, then posts
    limiter.settle(permit)
    assert fake.dm_opened == [USER]
    assert len(limiter.stamps(RateLimit("global", 50, 1.0))) == 2
    await bot.channel.send(alert(destination))  # known now: no second slot
    assert len(limiter.stamps(RateLimit("global", 50, 1.0))) == 2


async def test_a_dm_opens_slot_counts_from_its_own_answer(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    """The dispatcher's slot went with the DM open. Discord counted the open when it
    arrived, so the slot must free one second after the open's answer: not after it
    was queued (posts behind it would land in Discord's same window: 429s), and not
    after the post too (a second of budget lost per open)."""
    clock = [1.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    bot.channel.attach_limiter(limiter)
    destination = f"dm:{USER}"
    global_limit = RateLimit("global", 50, 1.0)
    permit = await limiter.acquire(bot.channel.limits_for(destination))
    token = CURRENT_PERMIT.set(permit)  # as the dispatcher sets it around a send
    try:
        original = bot.channel._dm_channel

        async def open_then_tick(user_id: int) -> int:
            channel_id = await original(user_id)
            clock[0] = 1.4  # the open's answer
            return channel_id

        bot.channel._dm_channel = open_then_tick  # type: ignore[method-assign]
        await bot.channel.send(alert(destination))
    finally:
        CURRENT_PERMIT.reset(token)
    clock[0] = 1.9  # the whole send ends: the dispatcher settles its permit again
    limiter.settle(permit)
    # The open counts from its answer (1.4), the post from when it left (1.4).
    assert limiter.stamps(global_limit) == [1.4, 1.4]
    assert fake.dm_opened == [USER]


async def _post(
    session: aiohttp.ClientSession, fake: FakeDiscord, channel: int
) -> aiohttp.ClientResponse:
    response = await session.post(
        f"{fake.base}/channels/{channel}/messages",
        json={"content": "x"},
        headers={"Authorization": f"Bot {TOKEN}"},
    )
    await response.read()
    return response


async def test_fake_enforces_the_per_channel_bucket_with_headers() -> None:
    fake = FakeDiscord(enforce_limits=True)
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            remaining = []
            for _ in range(5):
                response = await _post(session, fake, CHANNEL)
                assert response.status == 200
                headers = response.headers
                remaining.append(int(headers["X-RateLimit-Remaining"]))
                assert headers["X-RateLimit-Limit"] == "5"
                assert headers["X-RateLimit-Bucket"]
                assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 5.0
                assert float(headers["X-RateLimit-Reset"]) > 0
            assert remaining == [4, 3, 2, 1, 0]
            refused = await _post(session, fake, CHANNEL)
            assert refused.status == 429
            body = await refused.json()
            assert body["global"] is False and 0 < body["retry_after"] <= 5.0
            assert refused.headers["Via"] and refused.headers["X-RateLimit-Scope"] == "user"
            assert "X-RateLimit-Global" not in refused.headers
            other = await _post(session, fake, CHANNEL + 1)  # another channel's bucket
            assert other.status == 200
        assert fake.rate_limited == 1 and fake.refused_by == {"route": 1}
        assert len(fake.sent) == 6 and all(s.at > 0 for s in fake.sent)
    finally:
        await fake.close()


async def test_fake_enforces_the_global_limit() -> None:
    fake = FakeDiscord(enforce_limits=True, global_limit=(3, 60.0))
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = [(await _post(session, fake, CHANNEL + n)).status for n in range(4)]
            refused = await _post(session, fake, CHANNEL + 9)
            body = await refused.json()
        assert statuses == [200, 200, 200, 429]
        assert body["global"] is True and body["retry_after"] > 0
        assert refused.headers["X-RateLimit-Global"] == "true"
        assert refused.headers["X-RateLimit-Scope"] == "global"
        assert fake.refused_by == {"global": 2}
    finally:
        await fake.close()


async def test_fake_without_limits_is_unchanged() -> None:
    fake = FakeDiscord()
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = [(await _post(session, fake, CHANNEL)).status for _ in range(8)]
        assert statuses == [200] * 8 and fake.rate_limited == 0
    finally:
        await fake.close()
