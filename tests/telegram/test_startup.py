"""Start-up failures say what is wrong and never show the token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots.telegram.bot import TelegramBot, TelegramStartError
from core.context import HubContext
from tests.telegram.conftest import telegram_settings
from tests.telegram.fake_bot_api import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]


async def test_rejected_token_is_reported_without_the_token(
    ctx: HubContext, fake: FakeBotApi
) -> None:
    settings = telegram_settings(fake, token="999999:WRONG-secret-token")
    bot = TelegramBot(settings, ctx)
    with pytest.raises(TelegramStartError) as err:
        await bot.start()
    assert "rejected the bot token" in str(err.value)
    assert "WRONG-secret-token" not in str(err.value)
    await bot.stop()


def test_catalyst_run_with_a_bad_token_fails_cleanly(fake_port_closed: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.update(
        PYTHONPATH=str(ROOT),
        CATALYST_API__ENABLED="false",
        CATALYST_TELEGRAM__ENABLED="true",
        CATALYST_TELEGRAM__TOKEN="424242:SUPER-secret-value",
        CATALYST_TELEGRAM__BASE_URL=f"http://127.0.0.1:{fake_port_closed}/bot",
    )
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "error: could not start" in result.stderr
    assert "SUPER-secret-value" not in output
    assert "Traceback" not in output


@pytest.fixture
def fake_port_closed() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused
