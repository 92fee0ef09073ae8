"""logging.format: the default text lines, and JSON lines with extras, tracebacks and
every secret redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.channels import Alert, PermanentError
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.logs import HubLogHandler, JsonFormatter, TextFormatter, configure_logging
from core.settings import DispatcherSettings, Settings, load_settings
from domain.errors import ConfigError
from domain.filters import SignalFilter
from tests.fakes import RecordingChannel, signal

TOKEN = "123456:telegram-TOKEN-abcdefghij"
#: A secret JSON must escape: redaction has to match it as it is written.
QUOTED = 'jwt"secret\\with-escapes-0123456789'


def _record(
    message: str = "hello %s",
    args: tuple[object, ...] = ("world",),
    *,
    extra: dict[str, object] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    logger = logging.getLogger("catalyst.test")
    exc_info: Any = None
    if exc:
        try:
            raise ValueError(f"boom near {TOKEN}")
        except ValueError:
            exc_info = sys.exc_info()
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, args, exc_info, extra=extra
    )


def _json(line: str) -> dict[str, Any]:
    assert "\n" not in line  # one object per line, tracebacks included
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


def test_the_default_format_is_the_text_line() -> None:
    assert Settings().logging.format == "text"
    line = TextFormatter().format(_record())
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING catalyst.test: hello world", line
    )


def test_a_json_line_has_time_level_logger_message_and_extras() -> None:
    extra = {"signal_id": "sig-1", "seq": 42, "delivery_id": 7}
    data = _json(JsonFormatter().format(_record(extra=extra)))
    assert data["level"] == "WARNING"
    assert data["logger"] == "catalyst.test"
    assert data["message"] == "hello world"
    assert {k: data[k] for k in extra} == extra
    assert "exception" not in data
    assert data["ts"].endswith("Z")
    ts = datetime.fromisoformat(data["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - ts) < timedelta(minutes=1)
    # Nothing of the LogRecord's own bookkeeping leaks in.
    assert set(data) == {"ts", "level", "logger", "message", *extra}


def test_a_json_line_carries_the_traceback() -> None:
    data = _json(JsonFormatter().format(_record(exc=True)))
    assert data["exception"].startswith("Traceback (most recent call last)")
    assert "ValueError: boom near" in data["exception"]


def test_values_json_cannot_encode_are_written_as_text() -> None:
    data = _json(JsonFormatter().format(_record(extra={"when": datetime(2024, 1, 2, tzinfo=UTC)})))
    assert data["when"] == "2024-01-02 00:00:00+00:00"


@pytest.mark.parametrize("formatter", [JsonFormatter, TextFormatter])
def test_secrets_are_redacted_everywhere_in_the_line(
    formatter: type[JsonFormatter] | type[TextFormatter],
) -> None:
    format_ = formatter([TOKEN, QUOTED])
    record = _record(
        "GET /bot%s/getMe with %s",
        (TOKEN, QUOTED),
        extra={"url": f"https://api.telegram.org/bot{TOKEN}/x", "nested": {"k": QUOTED}},
        exc=True,
    )
    line = format_.format(record)
    assert TOKEN not in line
    assert "TOKEN-abcdefghij" not in line
    assert "with-escapes" not in line
    assert line.count("***") >= 3
    if formatter is JsonFormatter:
        data = _json(line)
        assert data["message"] == "GET /bot***/getMe with ***"
        assert data["url"] == "https://api.telegram.org/bot***/x"
        assert "boom near ***" in data["exception"]


@pytest.fixture
def hub_handler() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if isinstance(h, HubLogHandler)]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_configure_logging_writes_json_lines_with_the_settings_secrets(
    hub_handler: None, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        logging={"format": "json"},
        telegram={"token": TOKEN},
        auth={"jwt_secret": QUOTED},
    )
    configure_logging(settings)
    logging.getLogger("catalyst.test").info(
        "token %s", TOKEN, extra={"signal_id": "s-9", "secret": QUOTED}
    )
    (line,) = capsys.readouterr().out.splitlines()
    data = _json(line)
    assert data["message"] == "token ***" and data["secret"] == "***"
    assert data["signal_id"] == "s-9"


def test_configure_logging_keeps_the_text_format_by_default(
    hub_handler: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(telegram={"token": TOKEN}))
    logging.getLogger("catalyst.test").warning("token %s", TOKEN)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith(" WARNING catalyst.test: token ***")


def test_the_format_setting_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_LOGGING__FORMAT", " JSON ")
    assert load_settings().logging.format == "json"
    monkeypatch.setenv("CATALYST_LOGGING__FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "logging.format (from CATALYST_LOGGING__FORMAT)" in message
    assert "'text' or 'json'" in message


async def test_publish_and_delivery_lines_carry_their_ids(
    ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(alert: Alert) -> None:
        raise PermanentError("chat not allowed")

    dispatcher = Dispatcher(ctx.db, DispatcherSettings())
    dispatcher.register(RecordingChannel(behaviour=refuse))
    user = await ctx.services.accounts.resolve("fake", "a")
    await ctx.services.subscriptions.subscribe("fake", "a", user.id, SignalFilter.from_text(""))
    caplog.set_level(logging.INFO)
    result = await ctx.publisher.publish(signal("ids-1"))
    await dispatcher.run_once("fake")
    await ctx.publisher.publish(signal("ids-1", price=11.0))

    def extras(prefix: str, *names: str) -> tuple[object, ...]:
        (record,) = [r for r in caplog.records if r.getMessage().startswith(prefix)]
        return tuple(vars(record)[name] for name in names)

    seq = result.signal.seq
    assert extras("published AAPL ids-1", "signal_id", "seq") == ("ids-1", seq)
    assert extras("corrected AAPL ids-1", "signal_id", "seq", "revision") == ("ids-1", seq, 1)
    (delivery_id,) = extras("fake delivery", "delivery_id")
    assert isinstance(delivery_id, int)
    assert extras("fake delivery", "seq") == (seq,)
    (rejected,) = [r for r in caplog.records if r.getMessage().startswith("fake delivery")]
    data = _json(JsonFormatter().format(rejected))
    assert (data["delivery_id"], data["seq"]) == (delivery_id, seq)
