"""The WebSocket connection manager: every open stream connection of this process.

It keeps the registry of clients (by id, by user) and admits them (connections
per address, the flood penalty), and composes one module per concept:

* :mod:`api.ws_client`: a connection's bounded send queue and its close;
* :mod:`api.ws_fanout`: live signals to every matching client, never awaiting;
* :mod:`api.ws_resume`: replay after a ``seq``, then live, no gap, no duplicate;
* :mod:`api.ws_heartbeat`: heartbeats out, pongs in, silence closes 4000;
* :mod:`api.ws_credentials`: a connection lives as long as its credential (4001);
* :mod:`api.ws_messages`: the close codes and the server's message shapes;
* :mod:`api.ws_gc`: no full garbage collection while a connect storm pours in.

What a client sends is read and handled by :mod:`api.ws_session` (frames checked by
:mod:`api.ws_frames`, messages answered by :mod:`api.ws_handlers`), for the route
in :mod:`api.routes_ws`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Hashable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from api import ws_heartbeat
from api.ratelimit import KeyedRateLimiter
from api.ws_client import Client, ClientGone, hook_up
from api.ws_credentials import CredentialCache, CredentialWatch
from api.ws_fanout import Fanout
from api.ws_gc import StormGC
from api.ws_heartbeat import Heartbeats
from api.ws_messages import (
    CLOSE_AUTH,
    CLOSE_GOING_AWAY,
    CLOSE_HEARTBEAT,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    dumps,
    error,
)
from api.ws_resume import Replay
from core.auth import Principal
from domain.filters import SignalFilter
from domain.signals import Signal

if TYPE_CHECKING:
    from core.context import HubContext

log = logging.getLogger(__name__)

#: After a client is closed for flooding, its credential's new connections are refused
#: (1008) for this long: reconnecting at once to flood again gains nothing.
FLOOD_PENALTY_SECONDS = 5.0


class ConnectionManager:
    """Every open stream connection of this process."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._api = ctx.settings.api
        self._limits = ctx.settings.limits
        self._metrics = ctx.metrics
        self._clients: dict[str, Client] = {}
        self._by_user: dict[int, set[Client]] = {}
        self._by_ip: Counter[str] = Counter()
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._filter_locks: dict[int, asyncio.Lock] = {}
        self._penalties: dict[Hashable, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.fanout = Fanout(ctx, self._clients)
        #: The bus listeners (``ctx.bus`` calls them once per published signal, and
        #: once per correction or retraction of one).
        self.on_signal: Callable[[Signal], None] = self.fanout.on_signal
        self.on_update: Callable[[Signal], None] = self.fanout.on_update
        self.replay = Replay(ctx)
        self.heartbeats = Heartbeats(
            self._clients,
            interval=self._api.heartbeat_seconds,
            timeout=self._api.heartbeat_timeout_seconds,
            metrics=self._metrics,
            spawn=self._spawn,
        )
        self.credential_watch = CredentialWatch(
            ctx.auth,
            self._clients,
            cache_seconds=self._limits.credential_cache_seconds,
            check_seconds=self._limits.credential_check_seconds,
            metrics=self._metrics,
            end=self.end_client,
        )
        self.credentials = self.credential_watch.cache
        #: Resumes per user, all of its connections together (reconnecting to resume
        #: again must not dodge the limit).
        self.resume_limiter = KeyedRateLimiter(self._limits.ws_resumes_per_minute, 60.0)
        #: Stream-filter writes (``subscribe``) per user per second, likewise.
        self.filter_write_limiter = KeyedRateLimiter(
            self._limits.max_messages_per_client_per_sec, 1.0
        )
        #: Postpones full garbage collections during connect storms (api.ws_gc).
        self.storm_gc = StormGC()
        self.stopping = False

    # ---- lifecycle ------------------------------------------------------
    @property
    def connection_count(self) -> int:
        return len(self._clients)

    def clients(self) -> list[Client]:
        """The open connections, registered order."""
        return list(self._clients.values())

    @property
    def started(self) -> bool:
        return self._unsubscribe is not None

    def start(self) -> None:
        if self._unsubscribe is not None:
            return
        self.stopping = False
        bus = self._ctx.bus
        unsubscribers = (bus.subscribe(self.on_signal), bus.subscribe_updates(self.on_update))

        def _unsubscribe() -> None:
            for unsubscribe in unsubscribers:
                unsubscribe()

        self._unsubscribe = _unsubscribe
        self._heartbeat = asyncio.create_task(self.heartbeats.run(), name="ws-heartbeat")
        self._checker = asyncio.create_task(self.credential_watch.run(), name="ws-credentials")

    async def stop(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Stop taking signals and close every client with ``code`` (1001: going away)."""
        self.stopping = True
        self.storm_gc.restore()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in (self._heartbeat, self._checker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._heartbeat = self._checker = None
        clients = list(self._clients.values())
        if clients:
            await asyncio.gather(
                *(c.close(code, "server shutting down") for c in clients), return_exceptions=True
            )
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- admission ------------------------------------------------------
    def reserve_ip(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False when it is at its limit."""
        if self._by_ip[ip] >= self._limits.max_connections_per_ip:
            return False
        self._by_ip[ip] += 1
        return True

    def release_ip(self, ip: str) -> None:
        self._by_ip[ip] -= 1
        if self._by_ip[ip] <= 0:
            del self._by_ip[ip]

    def penalty_left(self, principal: Principal) -> float:
        """Seconds until ``principal``'s credential may connect again after a flood."""
        until = self._penalties.get(CredentialCache.key(principal))
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._penalties[CredentialCache.key(principal)]
            return 0.0
        return left

    def new_client(
        self, websocket: WebSocket, principal: Principal, ip: str, flt: SignalFilter
    ) -> Client:
        return Client(
            websocket,
            principal,
            ip,
            flt,
            capacity=self._api.client_queue_size,
            on_ready=self.fanout.ready,
            on_overflow=self._overflow,
        )

    def register(self, client: Client, *, welcome: str, resume_buffering: bool = False) -> None:
        """Start streaming to ``client``: the welcome goes first, live signals follow.

        With ``resume_buffering`` live signals are buffered from this instant, for a
        :meth:`resume` the caller runs next."""
        client.enqueue(welcome)
        if resume_buffering:
            client.side_buffer = deque()
        self._clients[client.id] = client
        self._by_user.setdefault(client.user_id, set()).add(client)
        self.credential_watch.watch(client)
        self._metrics.ws_connections.inc()
        self._metrics.ws_messages_sent.labels(type="welcome").inc()
        self.storm_gc.connected()

    async def unregister(self, client: Client) -> None:
        self._forget(client)
        self.credential_watch.unwatch(client)
        client.abandon()
        await client.stop_sender()

    def _forget(self, client: Client) -> None:
        """Stop counting and streaming to ``client`` (its session ends on its own)."""
        if self._clients.pop(client.id, None) is not None:
            users = self._by_user.get(client.user_id)
            if users is not None:
                users.discard(client)
                if not users:
                    del self._by_user[client.user_id]
                    lock = self._filter_locks.get(client.user_id)
                    if lock is not None and not lock.locked():
                        del self._filter_locks[client.user_id]
            self._metrics.ws_connections.dec()

    def filter_lock(self, user_id: int) -> asyncio.Lock:
        """Serializes a user's stream-filter writes from this process's connections."""
        lock = self._filter_locks.get(user_id)
        if lock is None:
            lock = self._filter_locks[user_id] = asyncio.Lock()
        return lock

    # ---- ending connections ---------------------------------------------------
    def end_client(self, client: Client, code: int, message: str, *, hang_up: bool = False) -> None:
        """Close ``client`` with ``code`` after an error saying why (in a task)."""
        if not client.closing:
            final = dumps(error(message))
            self._spawn(client.close(code, message[:120], final, hang_up=hang_up))

    def flooded(self, client: Client, message: str) -> None:
        """``client`` sent too much: close it (1008) reading nothing more, and refuse its
        credential's new connections for FLOOD_PENALTY_SECONDS."""
        now = time.monotonic()
        if len(self._penalties) >= 10_000:
            for key in [k for k, until in self._penalties.items() if until <= now]:
                del self._penalties[key]
        self._penalties[CredentialCache.key(client.principal)] = now + FLOOD_PENALTY_SECONDS
        log.info("closing WebSocket client %s (user %s): %s", client.id, client.user_id, message)
        self._metrics.ws_messages_sent.labels(type="flood_closed").inc()
        self.end_client(client, CLOSE_TOO_SLOW, message, hang_up=True)

    def _overflow(self, client: Client) -> None:
        if client.closing or client.dropped:
            return
        client.dropped = True
        log.warning(
            "dropping slow WebSocket client %s (user %s): queue of %d full",
            client.id,
            client.user_id,
            client.capacity,
        )
        self._metrics.ws_messages_sent.labels(type="dropped_client").inc()
        # Forgotten at once: the close below may wait CLOSE_TIMEOUT for a peer that
        # does not read, and nothing more is sent to it meanwhile.
        self._forget(client)
        self._spawn(client.close(CLOSE_TOO_SLOW, "client too slow: send queue overflowed"))

    # ---- credentials (api.ws_credentials) ---------------------------------------
    def revoke(self, client: Client, message: str) -> None:
        """``client``'s credential ended: accept nothing more from it, close it (4001)."""
        self.credential_watch.revoke(client, message)

    async def credential_ok(self, client: Client) -> bool:
        """Whether ``client``'s credential still stands (asked before each message)."""
        return await self.credential_watch.credential_ok(client)

    async def check_credentials(self) -> None:
        """Re-check every open connection's credential in one batched query."""
        await self.credential_watch.check_all()

    # ---- sending, resume, pongs -------------------------------------------------
    def send(self, client: Client, payload: dict[str, Any]) -> None:
        """Queue a control message (subscribed, error, ...) to one client."""
        if client.enqueue(dumps(payload)):
            self._metrics.ws_messages_sent.labels(type=str(payload.get("type", "other"))).inc()

    async def resume(self, client: Client, after_seq: int) -> tuple[int, int]:
        """Replay what ``client`` missed after ``after_seq``, then go live (api.ws_resume)."""
        return await self.replay.resume(client, after_seq)

    @staticmethod
    def pong(client: Client) -> None:
        ws_heartbeat.pong(client)


__all__ = [
    "CLOSE_AUTH",
    "CLOSE_GOING_AWAY",
    "CLOSE_HEARTBEAT",
    "CLOSE_TOO_MANY",
    "CLOSE_TOO_SLOW",
    "Client",
    "ClientGone",
    "ConnectionManager",
    "CredentialCache",
    "hook_up",
]
