"""PostgreSQL LISTEN on one connection per process, reconnecting when it dies.

Callbacks get each notification's payload (a signal's seq as text). They run on
the event loop and must not block (they set events). After a reconnect every
callback is called with ``None``: notifications sent while the connection was
down are lost, so readers must catch up from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

Callback = Callable[[str | None], None]
#: How often an idle listening connection is checked.
PING_SECONDS = 5.0
MAX_BACKOFF = 30.0


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class NotifyListener:
    def __init__(self, url: str, channel: str) -> None:
        self._dsn = asyncpg_dsn(url)
        self._channel = channel
        self._callbacks: list[Callback] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0

    def add(self, callback: Callback) -> None:
        self._callbacks.append(callback)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self, *, wait: float = 5.0) -> None:
        """Start listening; waits up to ``wait`` seconds for the first connection
        (the loop keeps trying in the background after that)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _fire(self, payload: str | None) -> None:
        for callback in list(self._callbacks):
            try:
                callback(payload)
            except Exception:
                log.exception("notification callback failed")

    async def _run(self) -> None:
        failures = 0
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(
                    self._channel, lambda _c, _pid, _ch, payload: self._fire(payload)
                )
                if failures or self.reconnects:
                    log.info("listening for %s again", self._channel)
                self._connected.set()
                self.reconnects += 1
                failures = 0
                self._fire(None)  # catch up on whatever was missed before this
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), PING_SECONDS)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_SECONDS)
                raise ConnectionError("listening connection closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                failures += 1
                if failures == 1:
                    log.warning(
                        "LISTEN %s: connection lost (%s); reconnecting, polling meanwhile",
                        self._channel,
                        exc.__class__.__name__,
                    )
                await asyncio.sleep(min(MAX_BACKOFF, 0.25 * 2 ** min(failures, 7)))
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
