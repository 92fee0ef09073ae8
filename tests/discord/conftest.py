"""Fixtures: a started fake Discord, and started DiscordBots pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bots.discord.bot import DiscordBot
from core.context import HubContext
from core.settings import DiscordSettings
from tests.discord.fake_discord import TOKEN, FakeDiscord

BotFactory = Callable[..., Awaitable[DiscordBot]]


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    server.patch(monkeypatch)
    try:
        yield server
    finally:
        await server.close()


def discord_settings(**overrides: Any) -> DiscordSettings:
    data: dict[str, Any] = {"enabled": True, "token": TOKEN, **overrides}
    return DiscordSettings(**data)


@pytest.fixture
async def make_bot(fake: FakeDiscord, ctx: HubContext) -> AsyncIterator[BotFactory]:
    bots: list[DiscordBot] = []

    async def _make(start: bool = True, **overrides: Any) -> DiscordBot:
        kwargs = {k: overrides.pop(k) for k in ("defer_after", "ready_timeout") if k in overrides}
        bot = DiscordBot(discord_settings(**overrides), ctx, **kwargs)
        bots.append(bot)
        if start:
            await bot.start()
        return bot

    try:
        yield _make
    finally:
        for bot in bots:
            await bot.stop()


@pytest.fixture
async def bot(make_bot: BotFactory) -> DiscordBot:
    return await make_bot()
