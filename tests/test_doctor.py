"""``catalyst doctor`` against the fake Telegram Bot API and fake Discord on 127.0.0.1:
in process (``hub.doctor.run_checks``) and as a real ``python -m hub.doctor`` process."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.settings import Settings
from hub import doctor
from hub.doctor import CheckResult, Status, run_checks
from storage.database import Database
from storage.migrate import head_revision, upgrade
from tests.aiohttp_server import serve
from tests.discord.fake_discord import (
    ADMINISTRATOR,
    EMBED_LINKS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
)
from tests.telegram.fake_bot_api import FakeBotApi

ROOT = Path(__file__).resolve().parents[1]
GUILD = 555000000000000001
TG_TOKEN = "424242:doctor-telegram-SECRET-token"
DC_TOKEN = "doctor.discord.SECRET.token"
JWT_SECRET = "kQ9vX2mLr7TzP4wN8cYb1HsD6fJgA3eU5iO0pZxRtVy"
WEBHOOK_SECRET = "doctor-webhook-SECRET-value"
HOOK = "https://hub.example/telegram/webhook"
#: Both bots disabled, for checks that do not need them.
OFF: dict[str, Any] = {"telegram": {"enabled": False}, "discord": {"enabled": False}}
ORDER = [
    "configuration",
    "database",
    "telegram",
    "telegram webhook",
    "discord",
    f"discord guild {GUILD}",
    "jsonl source",
    "clock",
]


@pytest.fixture
async def tg() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(token=TG_TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(token=DC_TOKEN)
    await server.start()
    server.patch(monkeypatch)
    server.add_guild(GUILD)
    try:
        yield server
    finally:
        await server.close()


async def migrated(path: Path, revision: str = "head") -> str:
    url = f"sqlite+aiosqlite:///{path}"
    db = Database(url)
    db.connect()
    try:
        await upgrade(db, revision)
    finally:
        await db.dispose()
    return url


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    return await migrated(tmp_path / "hub.db")


def config(tmp_path: Path, db_url: str, tg: FakeBotApi, **overrides: Any) -> dict[str, Any]:
    """Everything enabled, in production, pointing at the fakes."""
    jsonl = tmp_path / "accepted_items.jsonl"
    jsonl.write_text('{"ticker": "ABCD"}\n', encoding="utf-8")
    data: dict[str, Any] = {
        "env": "production",
        "database": {"url": db_url},
        "auth": {"jwt_secret": JWT_SECRET},
        "telegram": {
            "enabled": True,
            "token": TG_TOKEN,
            "base_url": tg.base_url,
            "base_file_url": tg.base_file_url,
        },
        "discord": {"enabled": True, "token": DC_TOKEN, "guild_ids": [GUILD]},
        "scheduler": {"source": "jsonl", "jsonl": {"path": str(jsonl)}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def check(tmp_path: Path, db_url: str, tg: FakeBotApi, **overrides: Any) -> dict[str, Any]:
    results = await run_checks(Settings(**config(tmp_path, db_url, tg, **overrides)))
    return by_name(results)


# ---- in process ------------------------------------------------------------------
async def test_all_green(tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord) -> None:
    results = await run_checks(Settings(**config(tmp_path, db_url, tg)))
    assert [r.name for r in results] == ORDER
    assert [r.status for r in results] == [Status.OK] * len(ORDER), doctor.render(results)
    assert doctor.exit_code(results) == 0
    found = by_name(results)
    assert "@catalyst_test_bot" in found["telegram"].detail
    assert "polling mode, and no webhook is set" in found["telegram webhook"].detail
    assert "View Channel, Send Messages, Embed Links" in found[f"discord guild {GUILD}"].detail
    assert head_revision() in found["database"].detail
    text = doctor.render(results)
    assert all(line.startswith("PASS") for line in text.splitlines()[:-1])
    assert text.splitlines()[-1] == f"{len(ORDER)} passed, 0 warned, 0 failed, 0 skipped"


async def test_disabled_bots_are_skipped(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    found = await check(tmp_path, db_url, tg, **OFF)
    assert found["telegram"].status is Status.SKIP and found["discord"].status is Status.SKIP
    text = doctor.render(list(found.values()))
    assert re.search(r"^SKIP  telegram +skipped: not enabled$", text, re.MULTILINE), text
    assert re.search(r"^SKIP  discord +skipped: not enabled$", text, re.MULTILINE), text
    assert doctor.exit_code(list(found.values())) == 0


async def test_unmigrated_database(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    missing = tmp_path / "missing.db"
    found = await check(tmp_path, f"sqlite:///{missing}", tg, **OFF)
    assert found["database"].status is Status.FAIL
    assert "does not exist" in found["database"].detail
    assert "run catalyst db upgrade" in found["database"].fix
    assert found["clock"].status is Status.SKIP
    assert not missing.exists()  # doctor looks, it does not create

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    found = await check(tmp_path, f"sqlite:///{empty}", tg, **OFF)
    assert found["database"].status is Status.FAIL
    assert "no tables yet" in found["database"].detail
    assert "run catalyst db upgrade" in found["database"].fix
    assert found["clock"].status is Status.OK  # reachable, so the clock is still read

    behind = await migrated(tmp_path / "behind.db", "0001")
    found = await check(tmp_path, behind, tg, **OFF)
    assert "at revision 0001, this version needs" in found["database"].detail
    assert "run catalyst db upgrade" in found["database"].fix


async def test_bad_telegram_token(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord
) -> None:
    found = await check(tmp_path, db_url, tg, telegram={"token": "424242:wrong-token-XYZ"})
    assert found["telegram"].status is Status.FAIL
    assert "rejected the token" in found["telegram"].detail
    assert "@BotFather" in found["telegram"].fix
    assert found["telegram webhook"].status is Status.SKIP
    assert found["discord"].status is Status.OK  # the other checks still run
    assert doctor.exit_code(list(found.values())) == 1


async def test_polling_mode_with_a_webhook_set(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord
) -> None:
    tg.webhook = {"url": HOOK}
    found = await check(tmp_path, db_url, tg)
    hook = found["telegram webhook"]
    assert hook.status is Status.FAIL
    assert "polling mode, but a webhook is set" in hook.detail and HOOK in hook.detail
    assert "deleteWebhook" in hook.fix and "another deployment" in hook.fix
    assert ("getWebhookInfo", {}) in tg.calls


async def test_webhook_mode_needs_the_configured_url(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord
) -> None:
    webhook = {"mode": "webhook", "webhook_url": HOOK, "secret_token": WEBHOOK_SECRET}
    found = await check(tmp_path, db_url, tg, telegram=webhook)
    assert found["telegram webhook"].status is Status.FAIL
    assert "no webhook is set" in found["telegram webhook"].detail

    tg.webhook = {"url": "https://old.example/hook"}
    found = await check(tmp_path, db_url, tg, telegram=webhook)
    assert found["telegram webhook"].status is Status.FAIL
    assert "https://old.example/hook, not telegram.webhook_url" in found["telegram webhook"].detail

    tg.webhook = {"url": HOOK, "secret_token": WEBHOOK_SECRET}
    found = await check(tmp_path, db_url, tg, telegram=webhook)
    assert found["telegram webhook"].status is Status.OK


async def test_bad_discord_token(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord
) -> None:
    found = await check(tmp_path, db_url, tg, discord={"token": "wrong.discord.token"})
    assert found["discord"].status is Status.FAIL
    assert "rejected the token" in found["discord"].detail
    assert "CATALYST_DISCORD__TOKEN" in found["discord"].fix
    assert f"discord guild {GUILD}" not in found


async def test_discord_guild_permissions(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord
) -> None:
    no_embeds, via_everyone, admin, absent = (GUILD + 10, GUILD + 20, GUILD + 30, GUILD + 40)
    dc.add_guild(no_embeds, permissions=VIEW_CHANNEL | SEND_MESSAGES, name="No Embeds")
    dc.add_guild(via_everyone, permissions=VIEW_CHANNEL | SEND_MESSAGES, everyone=EMBED_LINKS)
    dc.add_guild(admin, permissions=ADMINISTRATOR)
    guilds = [no_embeds, via_everyone, admin, absent]
    found = await check(tmp_path, db_url, tg, discord={"guild_ids": guilds})

    lacking = found[f"discord guild {no_embeds}"]
    assert lacking.status is Status.FAIL
    assert lacking.detail == "No Embeds: the bot lacks Embed Links"
    assert "give the bot's role Embed Links" in lacking.fix
    assert found[f"discord guild {via_everyone}"].status is Status.OK  # @everyone counts
    assert found[f"discord guild {admin}"].status is Status.OK  # Administrator implies all
    missing = found[f"discord guild {absent}"]
    assert missing.status is Status.FAIL and "not in this guild" in missing.detail
    assert f"guild_id={absent}" in missing.fix and "permissions=19456" in missing.fix
    assert ("GET", f"/guilds/{no_embeds}/members/{910000000000000002}") in dc.requests


async def test_missing_jsonl_file(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    gone = tmp_path / "nowhere" / "accepted_items.jsonl"
    found = await check(tmp_path, db_url, tg, scheduler={"jsonl": {"path": str(gone)}}, **OFF)
    assert found["jsonl source"].status is Status.FAIL
    assert str(gone) in found["jsonl source"].detail
    assert "CATALYST_SCHEDULER__JSONL__PATH" in found["jsonl source"].fix
    found = await check(tmp_path, db_url, tg, scheduler={"source": "demo"}, **OFF)
    assert found["jsonl source"].status is Status.SKIP


async def test_weak_secret_in_production(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    weak = "correct-horse-battery"
    results = await run_checks(Settings(**config(tmp_path, db_url, tg, auth={"jwt_secret": weak})))
    assert results[0].status is Status.FAIL and results[0].name == "configuration"
    assert "auth.jwt_secret" in results[0].detail and "token_urlsafe" in results[0].fix
    assert all(r.status is Status.SKIP for r in results[1:])
    assert [r.name for r in results] == ["configuration", *doctor.LATER_CHECKS]
    assert doctor.exit_code(results) == 1
    assert weak not in doctor.render(results)
    # The same secret in development passes.
    dev = config(tmp_path, db_url, tg, env="development", auth={"jwt_secret": weak})
    assert (await run_checks(Settings(**dev)))[0].status is Status.OK


async def test_clock_skew(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    settings = Settings(**config(tmp_path, db_url, tg, **OFF))
    for ahead, status in ((30, Status.FAIL), (3.5, Status.WARN), (0, Status.OK)):

        def local(ahead: float = ahead) -> datetime:
            return datetime.now(UTC) + timedelta(seconds=ahead)

        results = await run_checks(settings, now=local)
        clock = by_name(results)["clock"]
        assert clock.status is status, clock
        if ahead:
            assert f"{ahead:.1f}s behind this machine's UTC clock" in clock.detail
            assert "NTP" in clock.fix
        assert doctor.exit_code(results) == (1 if status is Status.FAIL else 0)


async def test_a_hung_platform_does_not_hang_doctor(
    tmp_path: Path, db_url: str, tg: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        await release.wait()  # answers only once the test is over
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    runner, port = await serve(app)
    try:
        import discord

        monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
        data = config(tmp_path, db_url, tg, telegram={"base_url": f"http://127.0.0.1:{port}/bot"})
        started = time.monotonic()
        found = by_name(await run_checks(Settings(**data), network_timeout=0.5))
        assert time.monotonic() - started < 5
    finally:
        release.set()
        await runner.cleanup()
    for name in ("telegram", "discord"):
        assert found[name].status is Status.FAIL
        assert "no answer from" in found[name].detail and "within 0.5s" in found[name].detail


async def test_cli_functions(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="catalyst")
    doctor.add_parser(parser.add_subparsers(dest="command"), common)
    path = tmp_path / "config.toml"
    path.write_text(toml(config(tmp_path, db_url, tg)), encoding="utf-8")

    args = parser.parse_args(["doctor", "--config", str(path), "--timeout", "3"])
    assert (args.command, args.timeout) == ("doctor", 3.0)
    assert await doctor.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == len(ORDER) and f"loaded {path}" in out

    dc.guilds.clear()
    assert await doctor.main(args) == 1
    assert "FAIL  discord guild" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["doctor", "--timeout", "0"])


async def test_a_secret_quoted_by_mistake_is_still_masked(
    tmp_path: Path, db_url: str, tg: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Belt and braces: whatever a check says, configured secrets leave as ***."""
    password = "doctor-db-SECRET-pw"

    def leaky(settings: Settings) -> CheckResult:
        quoted = f"{TG_TOKEN} {DC_TOKEN} {JWT_SECRET} {WEBHOOK_SECRET} {password}"
        return CheckResult("jsonl source", Status.FAIL, quoted, f"not {TG_TOKEN}")

    monkeypatch.setattr(doctor, "check_jsonl", leaky)
    monkeypatch.setenv("CATALYST_DATABASE__URL", f"postgresql://u:{password}@127.0.0.1:1/x")
    data = config(tmp_path, db_url, tg, **OFF)
    data["telegram"].update(token=TG_TOKEN, secret_token=WEBHOOK_SECRET)
    data["discord"]["token"] = DC_TOKEN
    found = by_name(await run_checks(Settings(**data), network_timeout=2))
    assert found["jsonl source"].detail == "*** *** *** *** ***"
    assert found["jsonl source"].fix == "not ***"


# ---- as a real process -----------------------------------------------------------
def toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the config dicts above (tables of scalars and lists)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", toml(v, f"{prefix}{k}.")]
    return "\n".join(lines)


#: ``python -m hub.doctor`` with discord.py's REST base pointed at the fake first
#: (argv[1]), as the in-process tests patch it.
PATCHED = (
    "import runpy, sys, discord; discord.http.Route.BASE = sys.argv.pop(1); "
    "runpy.run_module('hub.doctor', run_name='__main__', alter_sys=True)"
)


async def doctor_process(
    cwd: Path, *args: str, env: dict[str, str], discord_base: str | None = None
) -> tuple[int, str, str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    full_env.update(PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost", **env)
    argv = ["-c", PATCHED, discord_base] if discord_base else ["-m", "hub.doctor"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        *args,
        cwd=cwd,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_process_exit_zero_when_all_pass(tmp_path: Path, db_url: str, tg: FakeBotApi) -> None:
    """``python -m hub.doctor --config`` itself (Discord off: no setting moves its API)."""
    path = tmp_path / "doctor.toml"
    data = config(tmp_path, db_url, tg, discord={"enabled": False})
    path.write_text(toml(data), encoding="utf-8")
    code, out, err = await doctor_process(tmp_path, "--config", str(path), env={})
    assert code == 0, out + err
    assert "SKIP  discord" in out and "skipped: not enabled" in out and "1 skipped" in out


SECRETS = (TG_TOKEN, DC_TOKEN, JWT_SECRET, WEBHOOK_SECRET, "doctor-db-SECRET-pw")


@pytest.mark.parametrize("broken", [False, True])
async def test_process_never_prints_a_secret(
    tmp_path: Path, db_url: str, tg: FakeBotApi, dc: FakeDiscord, broken: bool
) -> None:
    """Secrets from the TOML file and from the environment; all passing, then with
    wrong tokens and a database URL with a password that cannot be reached."""
    path = tmp_path / "doctor.toml"
    data = config(tmp_path, db_url, tg, telegram={"secret_token": WEBHOOK_SECRET})
    del data["telegram"]["token"], data["auth"]
    path.write_text(toml(data), encoding="utf-8")
    env = {
        "CATALYST_TELEGRAM__TOKEN": TG_TOKEN,
        "CATALYST_DISCORD__TOKEN": DC_TOKEN,
        "CATALYST_AUTH__JWT_SECRET": JWT_SECRET,
    }
    secrets: tuple[str, ...] = SECRETS
    if broken:
        wrong = ("424242:wrong-SECRET-tg", "wrong.SECRET.discord")
        env["CATALYST_TELEGRAM__TOKEN"], env["CATALYST_DISCORD__TOKEN"] = wrong
        env["CATALYST_DATABASE__URL"] = (
            f"postgresql://doctor:doctor-db-SECRET-pw@127.0.0.1:{closed_port()}/hub"
        )
        secrets += wrong
    code, out, err = await doctor_process(
        tmp_path, "--config", str(path), "--timeout", "5", env=env, discord_base=dc.base
    )
    assert code == (1 if broken else 0), out + err
    for secret in secrets:
        assert secret not in out and secret not in err
    assert "SECRET" not in out + err
    if broken:
        assert "doctor:***@127.0.0.1" in out
        assert "FAIL  telegram " in out and "FAIL  discord " in out
    else:
        assert out.count("PASS") == len(ORDER)


async def test_process_weak_secret_fails(tmp_path: Path) -> None:
    weak = "changeme"
    env = {"CATALYST_ENV": "production", "CATALYST_AUTH__JWT_SECRET": weak}
    code, out, err = await doctor_process(tmp_path, env=env)
    assert code == 1
    assert out.startswith("FAIL  configuration  auth.jwt_secret: is a placeholder")
    assert weak not in out + err
    assert not (tmp_path / "catalyst.db").exists()
