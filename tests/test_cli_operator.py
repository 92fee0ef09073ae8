"""``catalyst trace`` and ``catalyst dead list|retry``, run as real processes in a
fresh folder. The delivery rows are made beforehand by a Dispatcher on the same
SQLite file, through a channel that refuses one destination."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from core.channels import Alert, PermanentError
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from storage.models import AdminAction, Delivery
from tests.conftest import _context, settings_for
from tests.fakes import RecordingChannel, signal
from tests.test_cli import run


def _settings(folder: Path):  # type: ignore[no-untyped-def]
    return settings_for(folder, db_url=f"sqlite+aiosqlite:///{folder / 'catalyst.db'}")


async def _deliver(folder: Path) -> dict[str, int]:
    """Publish fda-abcd to telegram chats 100 (sent) and 200 (refused: dead)."""
    ctx = await _context(_settings(folder))
    try:
        for dest in ("100", "200"):
            user = await ctx.services.accounts.resolve("telegram", dest)
            await ctx.services.subscriptions.subscribe("telegram", dest, user.id)

        def behaviour(alert: Alert) -> None:
            if alert.destination == "200":
                raise PermanentError("Forbidden: bot was kicked from the group chat")

        dispatcher = Dispatcher(ctx.db, DispatcherSettings())
        dispatcher.register(RecordingChannel("telegram", behaviour=behaviour))
        await ctx.publisher.publish(signal("fda-abcd", ticker="ABCD", headline="FDA approves X"))
        await dispatcher.run_once("telegram")
        async with ctx.db.session() as session:
            rows = (await session.execute(select(Delivery))).scalars().all()
            return {r.status: r.id for r in rows if r.id is not None}
    finally:
        await ctx.db.dispose()


async def _state(folder: Path) -> tuple[dict[int, str], list[AdminAction]]:
    ctx = await _context(_settings(folder))
    try:
        async with ctx.db.session() as session:
            rows = (await session.execute(select(Delivery))).scalars().all()
            actions = (await session.execute(select(AdminAction))).scalars().all()
            return {r.id: r.status for r in rows if r.id is not None}, list(actions)
    finally:
        await ctx.db.dispose()


def test_trace_prints_the_signal_and_each_delivery(tmp_path: Path) -> None:
    ids = asyncio.run(_deliver(tmp_path))
    result = run(tmp_path, "trace", "fda-abcd")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("signal fda-abcd: ABCD BUY FDA confidence 0.80, seq 1")
    assert lines[0].endswith(": FDA approves X")
    assert lines[1] in ("2 deliveries: 1 sent, 1 dead", "2 deliveries: 1 dead, 1 sent")
    assert lines[2].startswith("id\tkind\tplatform\tdestination")
    sent = lines[3].split("\t")
    assert sent[:7] == [str(ids["sent"]), "alert", "telegram", "100", "telegram:100", "sent", "1"]
    assert sent[8].startswith("sent 20") and sent[9] == "-"
    dead = lines[4].split("\t")
    assert dead[:6] == [str(ids["dead"]), "alert", "telegram", "200", "telegram:200", "dead"]
    assert dead[8].startswith("ended 20")
    assert dead[9] == "Forbidden: bot was kicked from the group chat"


def test_trace_of_an_unknown_signal_exits_1(tmp_path: Path) -> None:
    result = run(tmp_path, "trace", "no-such-signal")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no signal with id 'no-such-signal'"
    assert result.stdout == ""


def test_dead_list_and_retry(tmp_path: Path) -> None:
    ids = asyncio.run(_deliver(tmp_path))
    listing = run(tmp_path, "dead", "list", "--channel", "telegram", "--limit", "5")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.startswith("id\tsignal\tticker\tplatform")
    assert row.startswith(f"{ids['dead']}\tfda-abcd\tABCD\ttelegram\t200\talert\t1\t")
    assert row.endswith("\tForbidden: bot was kicked from the group chat")
    assert run(tmp_path, "dead", "list", "--channel", "discord").stdout.strip() == (
        "no dead deliveries on discord"
    )

    retried = run(tmp_path, "dead", "retry", "--id", str(ids["dead"]), "--id", str(ids["sent"]))
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines()[:2] == [
        f"retried 1 delivery(ies): {ids['dead']}",
        f"skipped {ids['sent']}: status is sent; only dead deliveries can be retried",
    ]
    statuses, actions = asyncio.run(_state(tmp_path))
    assert statuses == {ids["sent"]: "sent", ids["dead"]: "pending"}
    (action,) = actions
    assert action.actor == "cli" and action.action == "retry_dead"
    assert action.detail["retried"] == [ids["dead"]]

    nothing = run(tmp_path, "dead", "retry", "--channel", "telegram", "--all")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "retried 0 delivery(ies)"
    assert len(asyncio.run(_state(tmp_path))[1]) == 2  # every retry is recorded


def test_dead_mistakes_are_clear_and_traceback_free(tmp_path: Path) -> None:
    for args, message in (
        (("dead", "retry"), "error: give --id N (repeat it for more) or --channel X --all"),
        (("dead", "retry", "--channel", "telegram"), "error: give --id N"),
        (("dead", "retry", "--id", "1", "--channel", "x", "--all"), "not both"),
        (("dead", "list", "--limit", "0"), "error: limit must be 1 to 1000"),
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    usage = run(tmp_path, "dead", "retry", "--id", "x")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr
