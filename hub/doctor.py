"""``catalyst doctor``: check a deployment, one line per check, each failure with a fix.

In order: the configuration loads (and its secrets are strong in production); the
database is reachable and migrated; the Telegram token is valid and the webhook
matches the mode; the Discord token is valid and the bot is in each configured
guild with View Channel, Send Messages and Embed Links; the jsonl source file is
readable (when that is the source); the database's clock agrees with this one.
A disabled bot's checks print ``skipped: not enabled``. Exit status 1 when any
check failed, else 0 (warnings too). Every network check has a timeout, and no
output quotes a token, a secret or a database password.

``python -m hub.doctor [--config PATH] [--timeout SECONDS]`` runs it alone;
:func:`add_parser` and :func:`main` plug it into ``catalyst``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from core.logs import secrets_of
from core.settings import Settings
from hub.doctor_checks import (
    CheckResult,
    Status,
    check_clock,
    check_config,
    check_database,
    check_jsonl,
    describe_error,
    fail,
    skip,
    url_passwords,
)
from hub.doctor_platforms import check_discord, check_telegram
from storage.database import Database

__all__ = ["CheckResult", "Status", "add_parser", "main", "render", "run_checks"]

#: Seconds each network step (database, Telegram, Discord request) may take.
DEFAULT_TIMEOUT = 10.0
#: The checks after the configuration, for the lines printed when it does not load.
LATER_CHECKS = ("database", "telegram", "discord", "jsonl source", "clock")
#: Environment variables whose values are secret whatever the settings say.
_SECRET_ENV_SUFFIXES = ("TOKEN", "SECRET", "PASSWORD")


async def _guarded(name: str, check: Awaitable[list[CheckResult]]) -> list[CheckResult]:
    """A check that raised unexpectedly is reported as failed, never as a traceback."""
    try:
        return await check
    except Exception as exc:
        return [fail(name, f"the check itself failed: {describe_error(exc)}", "report this bug")]


async def run_checks(
    config: str | Path | Settings | None = None,
    *,
    network_timeout: float = DEFAULT_TIMEOUT,
    now: Callable[[], datetime] | None = None,
) -> list[CheckResult]:
    """Run every check in order. ``config`` is a TOML path (None: ./config.toml when
    present, then CATALYST_* variables, as ``catalyst`` reads it) or ready Settings.
    ``now`` replaces this machine's UTC clock (tests)."""
    config_result, settings = check_config(config)
    if settings is None:
        later = [skip(name, "the configuration did not load") for name in LATER_CHECKS]
        return _redacted([config_result, *later], _secrets(None))
    results = [config_result]
    try:
        db_result, db = await check_database(settings, network_timeout)
    except Exception as exc:
        db_result, db = fail("database", describe_error(exc), "report this bug"), None
    results.append(db_result)
    try:
        results += await _guarded("telegram", check_telegram(settings.telegram, network_timeout))
        results += await _guarded("discord", check_discord(settings.discord, network_timeout))
        results += await _guarded("jsonl source", _jsonl(settings))
        if db is None:
            results.append(skip("clock", "needs a reachable database"))
        else:
            results += await _guarded("clock", _clock(db, network_timeout, now))
    finally:
        if db is not None:
            await db.dispose()
    return _redacted(results, _secrets(settings))


async def _jsonl(settings: Settings) -> list[CheckResult]:
    return [check_jsonl(settings)]


async def _clock(
    db: Database, seconds: float, now: Callable[[], datetime] | None
) -> list[CheckResult]:
    return [await check_clock(db, seconds, now)]


def _secrets(settings: Settings | None) -> list[str]:
    found = [
        value
        for key, value in os.environ.items()
        if key.upper().startswith("CATALYST_") and key.upper().endswith(_SECRET_ENV_SUFFIXES)
    ]
    found += url_passwords(os.environ.get("CATALYST_DATABASE__URL", ""))
    if settings is not None:
        found += secrets_of(settings)
        found += url_passwords(settings.database.url)
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _redacted(results: list[CheckResult], secrets: Sequence[str]) -> list[CheckResult]:
    """Belt and braces: no check quotes a secret, and this makes sure."""

    def clean(value: str) -> str:
        for secret in secrets:
            value = value.replace(secret, "***")
        return value

    return [CheckResult(r.name, r.status, clean(r.detail), clean(r.fix)) for r in results]


# ---- output ----------------------------------------------------------------------
_LABELS = {Status.OK: "PASS", Status.WARN: "WARN", Status.SKIP: "SKIP", Status.FAIL: "FAIL"}


def render(results: Sequence[CheckResult]) -> str:
    """One line per check (``fix:`` under each failure or warning), then a summary."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        detail = f"skipped: {r.detail}" if r.status is Status.SKIP else r.detail
        lines.append(f"{_LABELS[r.status]}  {r.name:<{width}}  {detail}")
        if r.fix and r.status in (Status.FAIL, Status.WARN):
            lines.append(f"{'':6}{'':<{width}}  fix: {r.fix}")
    counts = {s: sum(r.status is s for r in results) for s in Status}
    lines.append(
        f"{counts[Status.OK]} passed, {counts[Status.WARN]} warned, "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
    return "\n".join(lines)


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(r.failed for r in results) else 0


# ---- command line ----------------------------------------------------------------
def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError("give between 0 and 600 seconds")
    return seconds


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each network check may take (default {DEFAULT_TIMEOUT:g})",
    )


HELP = "check the configuration, database, bots, source file and clock, with a fix for each failure"


def add_parser(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``doctor`` to ``catalyst``'s subcommands (``common_parent`` carries --config)."""
    parser = subparsers.add_parser(
        "doctor",
        help=HELP,
        description=HELP + ". Exits 1 if any check fails.",
        parents=[common_parent],
    )
    _add_options(parser)


async def main(args: argparse.Namespace) -> int:
    """Run the checks, print them, and return the exit status (1 on any failure).

    Call it before loading the settings: reporting a configuration that does not
    load is doctor's first check."""
    config = getattr(args, "config", None) or os.environ.get("CATALYST_CONFIG") or None
    root = logging.getLogger()
    if not root.handlers:
        # Libraries' warnings (and URLs with tokens) stay out of doctor's output.
        root.addHandler(logging.NullHandler())
    results = await run_checks(config, network_timeout=getattr(args, "timeout", DEFAULT_TIMEOUT))
    print(render(results), flush=True)
    return exit_code(results)


def _standalone(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.doctor", description=HELP + ".")
    parser.add_argument("--config", metavar="PATH", help="TOML settings file")
    _add_options(parser)
    try:
        return asyncio.run(main(parser.parse_args(argv)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(_standalone())
