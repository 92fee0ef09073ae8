"""The console channel's alert line: no stray separator when a signal has no headline."""

from __future__ import annotations

import logging

import pytest

from core.channels import Alert, ConsoleChannel
from domain.signals import Signal


@pytest.mark.parametrize(
    ("headline", "ending"),
    [(None, "BUY ABCD FDA 90% [c-1]"), ("Phase 3 met", "BUY ABCD FDA 90% | Phase 3 met [c-1]")],
)
async def test_console_line(
    caplog: pytest.LogCaptureFixture, headline: str | None, ending: str
) -> None:
    data = {"signal_id": "c-1", "ticker": "ABCD", "confidence": 0.9, "signal_type": "BUY"}
    data |= {"catalyst_type": "FDA"} | ({"headline": headline} if headline else {})
    logger = logging.getLogger("test.console")
    with caplog.at_level(logging.INFO, logger="test.console"):
        await ConsoleChannel(logger).send(Alert(1, 1, "stdout", Signal.parse(data)))
    line = caplog.records[-1].getMessage()
    assert line == f"ALERT -> stdout | {ending}", line
