"""TelegramBot: the python-telegram-bot Application running in the hub's event loop.

The composition root builds it from :class:`~core.settings.TelegramSettings`,
registers :attr:`TelegramBot.channel` on the dispatcher, and awaits
:meth:`TelegramBot.start` / :meth:`TelegramBot.stop` (never ``run_polling``,
which would own the loop). In webhook mode it mounts
:func:`bots.telegram.webhook.build_webhook_router` on the API app.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application, ApplicationBuilder

from bots.telegram.channel import TelegramChannel
from bots.telegram.handlers import TelegramHandlers
from bots.telegram.texts import bot_commands
from core.context import HubContext
from core.settings import TelegramSettings
from domain.errors import ConfigError

log = logging.getLogger(__name__)


class TelegramStartError(RuntimeError):
    """The bot could not start; the message names the cause and never the token."""


ALLOWED_UPDATES = ["message", "channel_post", "callback_query", "my_chat_member"]
#: Libraries whose log lines may carry the request URL, which holds the token.
_URL_LOGGERS = (
    "httpx",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.ext.Updater",
    "telegram.ext.Application",
)


class TokenRedactor(logging.Filter):
    """Replaces the bot token in log records (httpx logs every request URL at INFO)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self._token:
            message = record.getMessage()
            if self._token in message:
                record.msg = message.replace(self._token, "<token>")
                record.args = None
        return True


class TelegramBot:
    def __init__(self, settings: TelegramSettings, ctx: HubContext) -> None:
        self.settings = settings
        self.ctx = ctx
        token = settings.token.get_secret_value()
        if not token:
            raise ConfigError("telegram.token: required to run the Telegram bot")
        # On the URL loggers only while building (the Bot logs its URLs when created)
        # and while the bot runs (initialize .. stop): nothing is left process-wide.
        self._redactor = TokenRedactor(token)
        self._redact(True)
        try:
            self.application = self._build(settings, token)
        finally:
            self._redact(False)
        self.handlers = TelegramHandlers(ctx, settings)
        self.handlers.install(self.application)
        self.channel = TelegramChannel(
            self.application.bot,
            digest_ttl=timedelta(seconds=ctx.settings.dispatcher.digest_ttl_seconds),
        )
        self._started = False

    def _redact(self, on: bool) -> None:
        for name in _URL_LOGGERS:
            logger = logging.getLogger(name)
            if on:
                logger.addFilter(self._redactor)
            else:
                logger.removeFilter(self._redactor)

    @staticmethod
    def _build(settings: TelegramSettings, token: str) -> Application[Any, Any, Any, Any, Any, Any]:
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(settings.base_url)
            .base_file_url(settings.base_file_url)
            .job_queue(None)
        )
        if settings.mode == "webhook":
            builder = builder.updater(None)
        return builder.build()

    @property
    def running(self) -> bool:
        """True while updates are being received and processed."""
        return self._started

    async def start(self, *, receive_updates: bool = True) -> None:
        """Initialize (``getMe``) and, with ``receive_updates``, take updates.

        ``receive_updates=False`` is for a process that only delivers, or that
        stands by to poll: only one process may poll a bot token (a second
        ``getUpdates`` gets 409 Conflict), so the hub elects the poller and calls
        :meth:`start_receiving` / :meth:`stop_receiving` as the lead moves.
        """
        await self.initialize()
        if receive_updates:
            await self.start_receiving()
        else:
            log.info("telegram bot @%s ready to deliver", self.application.bot.username)

    async def initialize(self) -> None:
        """``getMe``: the username lets CommandHandler skip ``/cmd@otherbot``."""
        self._redact(True)  # before the first request (getMe) logs its URL
        try:
            await self.application.initialize()
        except InvalidToken:
            # PTB's own message quotes the token; ours never does.
            raise TelegramStartError(
                "Telegram rejected the bot token; check telegram.token"
            ) from None
        except NetworkError as exc:
            raise TelegramStartError(
                f"cannot reach the Telegram Bot API at {self.settings.base_url}: "
                f"{exc.__class__.__name__}"
            ) from None

    async def start_receiving(self) -> None:
        """Register the commands, then poll or set the webhook, and process updates."""
        app = self.application
        await app.bot.set_my_commands(bot_commands())
        if self.settings.mode == "webhook":
            await app.bot.set_webhook(
                self.settings.webhook_url,
                secret_token=self.settings.secret_token.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            assert app.updater is not None
            await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        if not app.running:
            await app.start()
        self._started = True
        log.info("telegram bot @%s receiving updates (%s)", app.bot.username, self.settings.mode)

    async def stop_receiving(self) -> None:
        """Stop polling and finish the updates already taken."""
        app = self.application
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
        finally:
            self._started = False

    async def stop(self) -> None:
        try:
            await self.stop_receiving()
            await self.application.shutdown()
        finally:
            self._redact(False)

    def check_secret(self, secret_header: str | None) -> bool:
        expected = self.settings.secret_token.get_secret_value()
        if not expected or secret_header is None:
            return False
        return hmac.compare_digest(secret_header.encode(), expected.encode())

    async def process_webhook_update(self, data: Any, secret_header: str | None) -> bool:
        """Queue one webhook update. False when the secret is wrong (answer 403).

        A body that is not an update is dropped (and True returned) so Telegram
        does not redeliver it forever.
        """
        if not self.check_secret(secret_header):
            return False
        if not isinstance(data, dict):
            log.warning("telegram webhook body is not a JSON object; dropped")
            return True
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:
            log.warning(
                "telegram webhook update not understood (%s); dropped", exc.__class__.__name__
            )
            return True
        await self.application.update_queue.put(update)
        return True
