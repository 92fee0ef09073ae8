"""Run uvicorn inside the hub's own event loop (no signal handlers, no new loop)."""

from __future__ import annotations

import asyncio
import logging
import re

import uvicorn
from fastapi import FastAPI

from api.fastsend import FanoutProtocol
from api.ws import CLOSE_GOING_AWAY, ConnectionManager

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"((?:token|api_key)=)[^&\s\"']+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """uvicorn logs WebSocket paths with their query string; hide ``?token=`` values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _TOKEN_RE.sub(r"\1***", a) if isinstance(a, str) else a for a in args
            )
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = _TOKEN_RE.sub(r"\1***", record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` (0 = any free port, see :attr:`port`)."""

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        log_level: str = "warning",
        access_log: bool = False,
        fast_fanout: bool = True,
    ) -> None:
        """``fast_fanout`` installs :class:`~api.fastsend.FanoutProtocol` (broadcasts
        write pre-built frames); False uses uvicorn's plain sans-I/O protocol."""
        self.app = app
        self.host = host
        self.port = port
        max_bytes = app.state.ctx.settings.api.max_message_bytes
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ws=FanoutProtocol if fast_fanout else "websockets-sansio",
            # Frames above max_message_bytes get an error message from the app; far
            # larger ones are cut off by the protocol (close 1009).
            ws_max_size=max(16 * max_bytes, 1 << 20),
            # One compressor per connection would cost a deflate per client per signal.
            ws_per_message_deflate=False,
            lifespan="on",
            log_config=None,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=5,
            backlog=4096,
        )
        self._server = uvicorn.Server(self._config)
        self._main: asyncio.Task[None] | None = None

    @property
    def manager(self) -> ConnectionManager:
        manager: ConnectionManager = self.app.state.ws_manager
        return manager

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind, run the app's startup, and return once listening."""
        install_log_redaction()
        if not self._config.loaded:
            self._config.load()
        server = self._server
        server.lifespan = self._config.lifespan_class(self._config)
        try:
            await server.startup()
        except SystemExit:
            raise RuntimeError(f"the API could not start on {self.host}:{self.port}") from None
        sockets = server.servers[0].sockets if server.servers else []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._main = asyncio.create_task(server.main_loop(), name="api-server")
        log.info("API listening on %s", self.url)

    async def stop(self) -> None:
        """Close WebSocket clients with 1001, then stop uvicorn gracefully."""
        if self._main is None:
            return
        await self.manager.stop(CLOSE_GOING_AWAY)
        self._server.should_exit = True
        await self._main
        self._main = None
        await self._server.shutdown()
