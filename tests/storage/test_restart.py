"""Kill a dispatcher process mid-run; a new one delivers every pending delivery."""

from __future__ import annotations

import asyncio
import os
import signal as signals
import sys
from collections import Counter
from pathlib import Path
from typing import ClassVar

from sqlalchemy import func, select

from core.channels import Alert, Channel, RateLimit
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from storage.models import Delivery, DeliveryStatus
from tests.fakes import signal, wait_for

ROOT = Path(__file__).resolve().parents[2]


class ListChannel(Channel):
    platform: ClassVar[str] = "fake"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def limits_for(self, destination: str) -> tuple[RateLimit, ...]:
        return ()

    async def send(self, alert: Alert) -> None:
        self.lines.append(f"{alert.destination} {alert.signal.signal_id}")


async def _open(ctx: HubContext) -> int:
    async with ctx.db.session() as session:
        stmt = (
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status != DeliveryStatus.SENT.value)
        )
        return int((await session.execute(stmt)).scalar_one())


async def test_killed_dispatcher_loses_nothing(any_ctx: HubContext, tmp_path: Path) -> None:
    for dest in ("a", "b", "c"):
        user = await any_ctx.services.accounts.resolve("fake", dest)
        await any_ctx.services.subscriptions.subscribe("fake", dest, user.id)
    for i in range(30):
        await any_ctx.publisher.publish(signal(f"k{i:02d}"))
    expected = {f"{d} k{i:02d}" for d in "abc" for i in range(30)}

    out = tmp_path / "sent.txt"
    out.touch()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.storage.dispatch_worker",
        any_ctx.db.url,
        str(out),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        await wait_for(lambda: len(out.read_text().splitlines()) >= 15, timeout=30)
    finally:
        proc.send_signal(signals.SIGKILL)
        await proc.wait()
    first_run = out.read_text().splitlines()
    assert 15 <= len(first_run) < len(expected), "the worker must die mid-run"

    channel = ListChannel()
    dispatcher = Dispatcher(any_ctx.db, DispatcherSettings(lease_seconds=1.0, poll_seconds=0.05))
    dispatcher.register(channel)
    await dispatcher.start()
    try:
        await wait_for(lambda: set(first_run) | set(channel.lines) >= expected, timeout=30)
        for _ in range(200):  # the last sends are recorded as sent just after they go out
            if await _open(any_ctx) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert await _open(any_ctx) == 0
    delivered = Counter(first_run + channel.lines)
    assert set(delivered) == expected  # nothing lost
    duplicates = sum(n - 1 for n in delivered.values())
    assert duplicates <= 4  # only the sends in flight at the kill (concurrency 4)
