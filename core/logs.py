"""Logging setup: one format, noisy libraries quietened, and secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from core.settings import Settings


class RedactSecrets(logging.Filter):
    """Replaces every configured secret in a log record with ``***``.

    Belt and braces: our code never logs secrets, but libraries may log URLs
    (the Telegram Bot API puts the token in the path).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def secrets_of(settings: Settings) -> list[str]:
    return [
        settings.auth.jwt_secret.get_secret_value(),
        settings.telegram.token.get_secret_value(),
        settings.telegram.secret_token.get_secret_value(),
        settings.discord.token.get_secret_value(),
    ]


class HubLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The hub's own stdout handler: :func:`configure_logging` replaces only this one."""


def configure_logging(settings: Settings) -> None:
    """Log to stdout with secrets redacted. Calling it again replaces the handler it
    installed before; handlers someone else added to the root logger stay."""
    handler = HubLogHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets_of(settings)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, HubLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.logging.level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "apscheduler", "alembic", "discord.http"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
