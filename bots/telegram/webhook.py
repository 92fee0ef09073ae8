"""The webhook route: Telegram POSTs updates here in webhook mode.

The lead mounts the router on the API app. A missing or wrong
``X-Telegram-Bot-Api-Secret-Token`` gets 403; a body that is not JSON gets 400;
anything else gets 200 at once and is processed by the Application's queue.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from bots.telegram.bot import TelegramBot

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20


def build_webhook_router(bot: TelegramBot) -> APIRouter:
    router = APIRouter()

    @router.post(WEBHOOK_PATH, include_in_schema=False)
    async def telegram_webhook(request: Request) -> Response:
        if not bot.check_secret(request.headers.get(SECRET_HEADER)):
            return Response(status_code=403)
        if not bot.running:
            return Response(status_code=503)
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(status_code=413)
        try:
            data = json.loads(body)
        except ValueError:
            return Response(status_code=400)
        accepted = await bot.process_webhook_update(data, request.headers.get(SECRET_HEADER))
        return Response(status_code=200 if accepted else 403)

    return router
