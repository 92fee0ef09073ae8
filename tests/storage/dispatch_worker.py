"""A dispatcher process for the kill-and-restart test: ``python -m tests.storage.dispatch_worker URL OUT``.

Its channel appends ``<destination> <signal_id>`` to OUT (flushed and fsynced)
for every send, slowly, so the test can kill it mid-run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import ClassVar

from core.channels import Alert, Channel, RateLimit
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from storage.database import Database


class FileChannel(Channel):
    platform: ClassVar[str] = "fake"

    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8")

    def limits_for(self, destination: str) -> tuple[RateLimit, ...]:
        return ()

    async def send(self, alert: Alert) -> None:
        await asyncio.sleep(0.02)
        self._fh.write(f"{alert.destination} {alert.signal.signal_id}\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


async def main(url: str, out: str) -> None:
    db = Database(url)
    db.connect()
    dispatcher = Dispatcher(
        db, DispatcherSettings(lease_seconds=1.0, batch_size=10, concurrency=4, poll_seconds=0.05)
    )
    dispatcher.register(FileChannel(out))
    await dispatcher.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
