"""Fixtures: a fake Bot API server and the real TelegramBot polling it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bots.telegram import TelegramBot
from core.context import HubContext
from core.settings import TelegramSettings
from tests.conftest import _context, settings_for
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.fake_bot_api import FakeBotApi, SentMessage


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[HubContext]:
    """The shared ``ctx`` with a quick dispatcher: short polls and backoff keep tests fast."""
    settings = settings_for(tmp_path, dispatcher={"poll_seconds": 0.1, "backoff_base_seconds": 0.1})
    context = await _context(settings)
    try:
        yield context
    finally:
        await context.dispatcher.stop()
        await context.db.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def telegram_settings(fake: FakeBotApi, **overrides: Any) -> TelegramSettings:
    data: dict[str, Any] = {
        "enabled": True,
        "token": fake.token,
        "base_url": fake.base_url,
        "base_file_url": fake.base_file_url,
    }
    data.update(overrides)
    return TelegramSettings(**data)


@dataclass
class Chat:
    """Talks to the bot as Telegram would, through the fake's update queue."""

    fake: FakeBotApi
    bot: TelegramBot

    async def ask(
        self, text: str, *, chat_id: int = 1001, user_id: int | None = None, kind: str | None = None
    ) -> SentMessage:
        before = len(self.fake.sent_to(chat_id))
        self.fake.push_update(fake_api.command(text, chat_id=chat_id, user_id=user_id, kind=kind))
        replies = await self.fake.wait_sent(before + 1, chat_id=chat_id)
        return replies[before]

    async def silent(
        self, text: str, *, chat_id: int = 1001, user_id: int | None = None, kind: str | None = None
    ) -> None:
        """Send a command that must get no reply; a /help after it proves it was processed."""
        before = len(self.fake.sent_to(chat_id))
        self.fake.push_update(fake_api.command(text, chat_id=chat_id, user_id=user_id, kind=kind))
        probe = await self.ask("/help", chat_id=chat_id, user_id=user_id, kind=kind)
        assert probe.text.startswith("<b>Commands</b>")
        assert len(self.fake.sent_to(chat_id)) == before + 1


@pytest.fixture
async def bot(fake: FakeBotApi, ctx: HubContext) -> AsyncIterator[TelegramBot]:
    telegram = TelegramBot(telegram_settings(fake, admin_user_ids=[4242]), ctx)
    await telegram.start()
    try:
        yield telegram
    finally:
        await telegram.stop()


@pytest.fixture
def tg(fake: FakeBotApi, bot: TelegramBot) -> Chat:
    return Chat(fake, bot)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll an async condition (database state written after a send) until it holds."""
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.02)
