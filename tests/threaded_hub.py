"""A hub and its API server on a private event loop in a daemon thread, for
synchronous clients (schemathesis, the websockets sync client) to hammer.

``prepare(ctx)`` runs on the hub's loop before the server starts and returns the
API key the clients use."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from api import ApiServer, create_app
from core.context import HubContext
from core.settings import Settings
from tests.conftest import _context

Prepare = Callable[[HubContext], Awaitable[str]]


class ThreadedHub:
    def __init__(self, settings: Settings, prepare: Prepare, name: str = "threaded-hub") -> None:
        self.settings = settings
        self.prepare = prepare
        self.key = ""
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> ThreadedHub:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the hub did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        try:
            ctx = await _context(self.settings)
            self.key = await self.prepare(ctx)
            server = ApiServer(create_app(ctx), "127.0.0.1", 0)
            await server.start()
            self.port = server.port
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()
            await ctx.dispatcher.stop()
            await ctx.db.dispose()
