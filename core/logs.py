"""Logging setup: text or JSON lines on stdout, noisy libraries quietened, secrets masked.

``logging.format = "json"`` writes one JSON object per line: ``ts`` (ISO-8601 UTC),
``level``, ``logger``, ``message``, ``exception`` (the traceback, when there is one)
and every ``extra=`` field of the call, such as ``signal_id``, ``seq`` and
``delivery_id``. Either way every configured secret is replaced by ``***`` in the
whole line, the traceback and the extras included.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from core.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: A LogRecord's own attributes: whatever else it carries came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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


class Redactor:
    """Replaces every secret (of 6+ characters) in a formatted line with ``***``."""

    def __init__(self, secrets: Iterable[str], *, in_json: bool = False) -> None:
        found = [s for s in secrets if s and len(s) >= 6]
        # Inside a JSON string a secret appears escaped (quotes, backslashes).
        self._secrets = [json.dumps(s, ensure_ascii=False)[1:-1] if in_json else s for s in found]

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line


class TextFormatter(logging.Formatter):
    """The default format, one readable line (plus any traceback), redacted whole."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, redacted whole."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redact = Redactor(secrets, in_json=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


def formatter_for(settings: Settings) -> logging.Formatter:
    secrets = secrets_of(settings)
    if settings.logging.format == "json":
        return JsonFormatter(secrets)
    return TextFormatter(secrets)


class HubLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The hub's own stdout handler: :func:`configure_logging` replaces only this one."""


def configure_logging(settings: Settings) -> None:
    """Log to stdout (``logging.format``: text or JSON lines) with secrets redacted.
    Calling it again replaces the handler it installed before; handlers someone else
    added to the root logger stay."""
    handler = HubLogHandler(sys.stdout)
    handler.setFormatter(formatter_for(settings))
    handler.addFilter(RedactSecrets(secrets_of(settings)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, HubLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.logging.level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "apscheduler", "alembic", "discord.http"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
