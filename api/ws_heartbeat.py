"""Heartbeats: the app's own liveness check of every stream connection.

Every ``api.heartbeat_seconds`` each client is sent ``{"type":"heartbeat"}``; a
client that has not answered with a pong for ``api.heartbeat_timeout_seconds`` is
closed with 4000. (uvicorn's protocol pings only keep idle connections open
through proxies: see :mod:`api.fastsend`.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from api.ws_client import Client
from api.ws_messages import CLOSE_HEARTBEAT, HEARTBEAT
from core.metrics import Metrics

log = logging.getLogger(__name__)


def pong(client: Client) -> None:
    """``client`` answered: it is alive now."""
    client.last_pong = time.monotonic()


class Heartbeats:
    """Sends the heartbeats and closes the clients that stopped answering them."""

    def __init__(
        self,
        clients: Mapping[str, Client],
        *,
        interval: float,
        timeout: float,
        metrics: Metrics,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._clients = clients
        self._interval = interval
        self._timeout = timeout
        self._metrics = metrics
        self._spawn = spawn

    async def run(self) -> None:
        interval = self._interval
        timeout = self._timeout
        tick = min(interval, timeout, 1.0) / 2
        next_beat = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for client in list(self._clients.values()):
                if not client.closing and now - client.last_pong > timeout:
                    log.info("closing WebSocket client %s: no pong in %.0f s", client.id, timeout)
                    self._spawn(client.close(CLOSE_HEARTBEAT, "heartbeat timeout: no pong"))
            if now >= next_beat:
                next_beat = now + interval
                count = 0
                for client in list(self._clients.values()):
                    if client.enqueue(HEARTBEAT):
                        count += 1
                if count:
                    self._metrics.ws_messages_sent.labels(type="heartbeat").inc(count)
