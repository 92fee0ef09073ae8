"""Building things changes nothing process-wide: a TelegramBot touches the global
loggers only while it runs, and configure_logging replaces only its own handler."""

from __future__ import annotations

import logging
from pathlib import Path

from bots.telegram.bot import _URL_LOGGERS, TelegramBot
from core.context import HubContext
from core.logs import HubLogHandler, configure_logging
from core.settings import Settings, TelegramSettings


def _filters() -> dict[str, list[logging.Filter | object]]:
    return {name: list(logging.getLogger(name).filters) for name in _URL_LOGGERS}


async def test_constructing_a_telegram_bot_adds_no_logger_filters(ctx: HubContext) -> None:
    before = _filters()
    TelegramBot(TelegramSettings(enabled=True, token="123456:SIDE-effects"), ctx)
    assert _filters() == before


def test_configure_logging_keeps_other_handlers(tmp_path: Path) -> None:
    root = logging.getLogger()
    theirs = logging.StreamHandler()
    root.addHandler(theirs)
    level = root.level
    try:
        configure_logging(Settings())
        configure_logging(Settings())
        ours = [h for h in root.handlers if isinstance(h, HubLogHandler)]
        assert len(ours) == 1 and theirs in root.handlers
    finally:
        for handler in [h for h in root.handlers if isinstance(h, HubLogHandler)]:
            root.removeHandler(handler)
        root.removeHandler(theirs)
        root.setLevel(level)
