"""Webhook mode: setWebhook with a secret, updates POSTed to the API route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bots.telegram import TelegramBot, build_webhook_router
from core.context import HubContext
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.conftest import telegram_settings
from tests.telegram.fake_bot_api import FakeBotApi

SECRET = "s3cret-Token_value"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def webhook_bot(fake: FakeBotApi, ctx: HubContext) -> AsyncIterator[TelegramBot]:
    settings = telegram_settings(
        fake,
        mode="webhook",
        webhook_url="https://hub.example/telegram/webhook",
        secret_token=SECRET,
    )
    bot = TelegramBot(settings, ctx)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()


@pytest.fixture
async def api_url(webhook_bot: TelegramBot) -> AsyncIterator[str]:
    app = FastAPI()
    app.include_router(build_webhook_router(webhook_bot))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/telegram/webhook"
    finally:
        server.should_exit = True
        await task


async def test_webhook_is_registered_with_the_secret(
    webhook_bot: TelegramBot, fake: FakeBotApi
) -> None:
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://hub.example/telegram/webhook"
    assert fake.webhook["secret_token"] == SECRET
    assert "getUpdates" not in [m for m, _p in fake.calls]


async def test_updates_are_processed_and_wrong_secrets_refused(
    api_url: str, fake: FakeBotApi
) -> None:
    update = {"update_id": 1, **fake_api.command("/start", chat_id=1001)}
    async with httpx.AsyncClient() as client:
        for headers in ({}, {HEADER: "wrong"}, {HEADER: SECRET + "x"}, {HEADER: ""}):
            response = await client.post(api_url, json=update, headers=headers)
            assert response.status_code == 403
        assert (
            await client.post(api_url, content=b"{not json", headers={HEADER: SECRET})
        ).status_code == 400
        not_an_update = await client.post(api_url, json=[1, 2], headers={HEADER: SECRET})
        assert not_an_update.status_code == 200
        response = await client.post(api_url, json=update, headers={HEADER: SECRET})
        assert response.status_code == 200
    [reply] = await fake.wait_sent(1, chat_id=1001)
    assert "Catalyst Signal Hub" in reply.text
    assert len(fake.sent) == 1  # the refused posts did nothing


async def test_process_webhook_update_directly(webhook_bot: TelegramBot, fake: FakeBotApi) -> None:
    update = {"update_id": 5, **fake_api.command("/help", chat_id=1001)}
    assert await webhook_bot.process_webhook_update(update, None) is False
    assert await webhook_bot.process_webhook_update(update, "nope") is False
    assert await webhook_bot.process_webhook_update(update, SECRET) is True
    [reply] = await fake.wait_sent(1, chat_id=1001)
    assert "<b>Commands</b>" in reply.text
