"""Run uvicorn inside the hub's own event loop (no signal handlers, no new loop).

uvicorn runs through its public API: ``Server.serve(sockets=...)`` in a task, on
sockets bound here (so port 0 resolves before it starts), ``Server.started`` to
know it is up, ``should_exit`` to stop it. The one thing it has no option for,
leaving SIGINT/SIGTERM to the hub, is :class:`api.uvicorn_internals.EmbeddedServer`.

:class:`ApiServer` is how the API faces the internet (``catalyst run``, and the
Procfile's ``web`` role as ``catalyst run --roles api``): besides the app's own
edge (:mod:`api.edge`) it installs the connection-level one
(:mod:`api.edge_protocol`: request-head deadline, connections per address), trusts
forwarded headers only from ``api.trusted_proxies``, and keeps secrets out of the
log (:func:`install_log_redaction`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import Any, Literal, cast

import uvicorn
from fastapi import FastAPI

from api.edge_protocol import EdgeGuard, protocol_factory
from api.fastsend import FanoutProtocol
from api.uvicorn_internals import EmbeddedServer
from api.ws import CLOSE_GOING_AWAY, ConnectionManager

log = logging.getLogger(__name__)

#: How often start() looks whether uvicorn is up (``Server.started`` is a plain flag).
STARTED_POLL = 0.005
BACKLOG = 4096

#: Seconds between uvicorn's protocol pings (its default); their pong deadline is
#: ``api.heartbeat_timeout_seconds`` (see :mod:`api.fastsend`).
WS_PING_INTERVAL = 20.0

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Query parameters that carry credentials: ?token=, &api_key=, access_token=, ...
    (
        re.compile(
            r"((?:token|api[_-]?key|key|secret|password|passwd|jwt|auth|authorization)=)"
            r"[^&\s\"'#;]+",
            re.IGNORECASE,
        ),
        r"\1***",
    ),
    # JSON or repr fields: {"type": "auth", "token": "..."} in a logged WebSocket frame.
    (
        re.compile(
            r"""(["'](?:[a-z_]*token|api[_-]?key|key|secret|password|jwt|authorization)["']"""
            r"""\s*:\s*["'])[^"']*""",
            re.IGNORECASE,
        ),
        r"\1***",
    ),
    # API keys and JWTs wherever they appear (a path, another parameter, a repr).
    (re.compile(r"catalyst_[A-Za-z0-9_\-]{12,}"), "catalyst_***"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), "***"),
    (re.compile(r"(bearer\s+)[^\s\"',]+", re.IGNORECASE), r"\1***"),
)


def redact(text: str) -> str:
    """``text`` without credentials (query values, API keys, JWTs, bearer tokens)."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1")
        cleaned = redact(text)
        return value if cleaned == text else cleaned
    return value


class RedactTokens(logging.Filter):
    """Hides credentials in log records: uvicorn logs paths with their query string,
    and a client may put its key anywhere. String arguments are cleaned in place,
    so formatters that unpack ``record.args`` (uvicorn's access log) still work; a
    message that still shows one after that is replaced by its cleaned text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # a broken format: let the handler report it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets")


def install_log_redaction() -> None:
    """Put :class:`RedactTokens` on uvicorn's loggers and on every handler of the root
    and uvicorn loggers (records from any logger pass through one of those). Call it
    after logging is configured; it is idempotent."""
    targets: list[logging.Filterer] = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    targets.extend(logging.getLogger().handlers)
    for target in targets:
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(RedactTokens())


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
        http: Literal["auto", "h11", "httptools"] = "auto",
    ) -> None:
        """``fast_fanout`` installs :class:`~api.fastsend.FanoutProtocol` (broadcasts
        write pre-built frames); False uses uvicorn's plain sans-I/O protocol. ``http``
        picks the HTTP parser the edge protocol extends."""
        self.app = app
        self.host = host
        self.port = port
        api = app.state.ctx.settings.api
        max_bytes = api.max_message_bytes
        trusted = list(api.trusted_proxies)
        #: Connection limits of this server (see :mod:`api.edge_protocol`).
        self.guard = EdgeGuard(
            header_timeout=api.header_timeout_seconds,
            max_per_ip=api.max_open_connections_per_ip,
            trusted_proxies=trusted,
        )
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=cast(Any, protocol_factory(self.guard, http)),
            # X-Forwarded-For / -Proto only from the configured proxies (uvicorn's own
            # default trusts 127.0.0.1, so anything on the host could pose as anyone).
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            ws=FanoutProtocol if fast_fanout else "websockets-sansio",
            # Frames above max_message_bytes get an error message from the app; far
            # larger ones are cut off by the protocol (close 1009).
            ws_max_size=max(16 * max_bytes, 1 << 20),
            # One compressor per connection would cost a deflate per client per signal.
            ws_per_message_deflate=False,
            # Protocol pings keep idle connections open through proxies; the app's
            # heartbeat decides liveness, so a pong may be as late as that allows
            # (uvicorn's 20 s dropped healthy clients with 1011 in a connect storm).
            ws_ping_interval=WS_PING_INTERVAL,
            ws_ping_timeout=api.heartbeat_timeout_seconds,
            lifespan="on",
            log_config=None,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=5,
            backlog=BACKLOG,
        )
        self._server = EmbeddedServer(self._config)
        self._main: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None

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
        try:
            sockets = _bind(self.host, self.port)
        except OSError as exc:
            raise RuntimeError(
                f"the API could not start on {self.host}:{self.port}: {exc}"
            ) from None
        self.port = sockets[0].getsockname()[1]
        server = self._server
        self._failed = None
        main = self._main = asyncio.create_task(self._serve(sockets), name="api-server")
        try:
            while not server.started:
                if main.done():
                    cause = self._failed or (None if main.cancelled() else main.exception())
                    raise RuntimeError(
                        f"the API could not start on {self.host}:{self.port}"
                    ) from cause
                await asyncio.sleep(STARTED_POLL)
        except BaseException:
            self._main = None
            main.cancel()
            for sock in sockets:
                sock.close()
            raise
        log.info("API listening on %s", self.url)

    async def _serve(self, sockets: list[socket.socket]) -> None:
        try:
            await self._server.serve(sockets=sockets)
        except SystemExit as exc:  # uvicorn's way of saying the startup failed
            self._failed = exc

    async def stop(self) -> None:
        """Close WebSocket clients with 1001, then stop uvicorn gracefully."""
        if self._main is None:
            return
        await self.manager.stop(CLOSE_GOING_AWAY)
        self._server.should_exit = True
        await self._main
        self._main = None


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to (as asyncio's
    ``create_server`` would bind them); with port 0 they all share the first one's port."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            if port == 0:
                port = sock.getsockname()[1]
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
