"""The Telegram front: commands, feedback buttons and alert delivery (python-telegram-bot)."""

from bots.telegram.bot import TelegramBot
from bots.telegram.channel import TelegramChannel
from bots.telegram.webhook import build_webhook_router

__all__ = ["TelegramBot", "TelegramChannel", "build_webhook_router"]
