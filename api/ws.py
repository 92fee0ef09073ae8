"""The WebSocket connection manager: live fan-out, per-client queues, heartbeats, resume.

Fan-out
    ``ctx.bus`` calls :meth:`ConnectionManager.on_signal` once per published signal,
    in ``seq`` order. The signal is serialized once and framed once. Each client
    whose compiled filter matches gets it: written straight to its socket when
    nothing is queued ahead and the socket takes it (``api.fastsend``), else
    appended to the client's bounded queue. Nothing in the broadcast awaits, so no
    client can delay another.

Per-client sending
    Queued messages are written by :meth:`Client.flush` on the next loop turn; a
    write that must wait (the peer is not reading) moves to a task of that
    client's own, and messages keep their order. A client whose queue is full
    when a message arrives is too slow: it is closed (1008) and forgotten.

Resume
    :meth:`ConnectionManager.resume` switches the client's live feed into a side
    buffer first, replays the missed signals from the database, then drains the
    buffer skipping everything at or below the last replayed ``seq``: no gap, no
    duplicate. Signals the client already got live are skipped too. The replay reads
    bounded pages (REPLAY_PAGE rows, at most REPLAY_READERS pages read at once in
    the process) and yields to the loop as it goes, so a replay never holds up the
    live broadcast; it reaches at most ``limits.ws_resume_max_signals`` back.

Credentials
    A connection lives as long as its credential: a JWT's ``exp`` is scheduled to
    the second, and every ``limits.credential_check_seconds`` one batched query
    re-checks the API keys (revoked, moved to another user) and users of all open
    connections. A connection whose credential ended gets an error and close 4001;
    :meth:`ConnectionManager.credential_ok` (a short-TTL cache) is also asked
    before each client message is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Hashable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from api.fastsend import EXTENSION as FRAME_EXTENSION
from api.fastsend import HANG_UP_EXTENSION, text_frame
from api.ratelimit import KeyedRateLimiter
from core.auth import AuthService, Principal
from domain.errors import InvalidInput
from domain.filters import CompiledFilter, SignalFilter
from domain.signals import Signal

if TYPE_CHECKING:
    from core.context import HubContext

log = logging.getLogger(__name__)

#: Close codes used by the stream.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1008
CLOSE_HEARTBEAT = 4000
CLOSE_AUTH = 4001
CLOSE_TOO_MANY = 4029

#: Rows a resume reads per page; pages read at once in the process; messages a
#: replay queues between yields to the event loop.
REPLAY_PAGE = 200
REPLAY_READERS = 1
REPLAY_YIELD_EVERY = 50
CLOSE_TIMEOUT = 2.0
#: Seqs a client got live, remembered so a later ``resume`` does not send them twice.
RECENT_LIVE = 4096
REVOKED_MESSAGE = "API key revoked (or no longer yours); reconnect with a valid key"
#: After a client is closed for flooding, its credential's new connections are refused
#: (1008) for this long: reconnecting at once to flood again gains nothing.
FLOOD_PENALTY_SECONDS = 5.0


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signal_message(signal: Signal) -> str:
    return dumps({"type": "signal", "data": signal.to_public()})


def hook_up(websocket: WebSocket) -> None:
    """Ask the server protocol to read nothing after this connection's close frame."""
    hang_up = (websocket.scope.get("extensions") or {}).get(HANG_UP_EXTENSION)
    if hang_up is not None:
        hang_up()


class ClientGone(Exception):
    """The client closed (or was closed) while something waited on it."""


async def _finish_send(coro: Coroutine[Any, Any, None], awaiting: Any) -> None:
    """Run a send coroutine that was started by hand and suspended, to completion."""
    while True:
        if awaiting is None:
            await asyncio.sleep(0)
        else:
            # What a Task does with a future its coroutine yields: take it over.
            awaiting._asyncio_future_blocking = False
            try:
                await awaiting
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    coro.close()
                    raise
            except Exception:
                pass  # the coroutine sees the outcome when resumed
        try:
            awaiting = coro.send(None)
        except StopIteration:
            return


class Client:
    """One authenticated WebSocket connection and its bounded outgoing queue.

    Sending: queued texts are written by :meth:`flush`, which the manager calls
    once per event-loop turn for every client that has something queued. A write
    that completes without waiting (the usual case: the socket takes it) costs
    no task switch. A write that has to wait (the peer is not reading) moves to a
    task of this client's own, which drains the rest of the queue; meanwhile new
    messages only queue up, so a slow client never holds anyone else up, and a
    full queue drops it.
    """

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        ip: str,
        flt: SignalFilter,
        *,
        capacity: int,
        on_ready: Callable[[Client], None],
        on_overflow: Callable[[Client], None],
    ) -> None:
        self.id = secrets.token_hex(8)
        self.websocket = websocket
        self.principal = principal
        self.user_id = principal.user.id
        self.ip = ip
        self.capacity = capacity
        self.last_pong = time.monotonic()
        self.filter = flt
        self.matcher: CompiledFilter | None = None if flt.is_empty() else flt.compile()
        #: While a resume runs, live signals wait here as (seq, text).
        self.side_buffer: deque[tuple[int, str]] | None = None
        self.recent_live: deque[int] = deque(maxlen=RECENT_LIVE)
        self.closing = False
        #: Set when the queue overflowed; the close follows in a task.
        self.dropped = False
        #: Set when the credential ended (revoked, expired): nothing more is accepted.
        self.revoked = False
        self._close_started = False
        self.expiry: asyncio.TimerHandle | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._pending: deque[str] = deque()
        self._space = asyncio.Event()
        self._on_ready = on_ready
        self._on_overflow = on_overflow
        self._scheduled = False
        self._sender: asyncio.Task[None] | None = None
        extensions = websocket.scope.get("extensions") or {}
        self._write_frame: Callable[[bytes], bool] | None = extensions.get(FRAME_EXTENSION)

    @property
    def fast_path(self) -> bool:
        """Whether broadcasts may write pre-built frames to this client (api.fastsend)."""
        return self._write_frame is not None

    # ---- filter ---------------------------------------------------------
    def set_filter(self, flt: SignalFilter) -> None:
        self.filter = flt
        self.matcher = None if flt.is_empty() else flt.compile()

    def wants(self, signal: Signal) -> bool:
        return self.matcher is None or self.matcher(signal)

    # ---- queue ------------------------------------------------------------
    def enqueue(self, text: str) -> bool:
        """Queue ``text`` without waiting; a full queue drops the client."""
        if self.closing or self.dropped:
            return False
        if len(self._pending) >= self.capacity:
            self._on_overflow(self)
            return False
        self._pending.append(text)
        if not self._scheduled and self._sender is None:
            self._scheduled = True
            self._on_ready(self)
        return True

    def offer(self, text: str, frame: bytes) -> bool:
        """A broadcast message: written at once as the pre-built ``frame`` when nothing
        is queued ahead of it and the socket takes it, else queued as ``text``."""
        if (
            self._write_frame is not None
            and not self._pending
            and self._sender is None
            and not self.closing
            and not self.dropped
        ):
            try:
                if self._write_frame(frame):
                    return True
            except Exception:
                self._mark_closed()
                return False
        return self.enqueue(text)

    def buffer_live(self, seq: int, text: str) -> None:
        buffer = self.side_buffer
        assert buffer is not None
        if self.dropped:
            return
        if len(buffer) >= self.capacity:
            self._on_overflow(self)
            return
        buffer.append((seq, text))

    async def put(self, text: str) -> None:
        """Queue ``text``, waiting for room (replays); raises ClientGone when closed.

        It waits while the queue is half full, so heartbeats and answers queued by
        :meth:`enqueue` during a long replay always fit."""
        while len(self._pending) >= max(1, self.capacity // 2):
            if self.closing:
                raise ClientGone
            self._space.clear()
            await self._space.wait()
        if self.closing or not self.enqueue(text):
            raise ClientGone

    @property
    def queued(self) -> int:
        return len(self._pending)

    # ---- sending ------------------------------------------------------------
    def flush(self) -> None:
        """Write what is queued; hand over to a task at the first write that must wait."""
        self._scheduled = False
        if self._sender is not None or self.closing:
            return
        pending = self._pending
        send = self.websocket.send
        while pending:
            text = pending.popleft()
            if not self._space.is_set():
                self._space.set()
            coro = send({"type": "websocket.send", "text": text})
            try:
                awaiting = coro.send(None)
            except StopIteration:
                continue
            except Exception:
                self._mark_closed()
                return
            self._sender = asyncio.create_task(
                self._drain(coro, awaiting), name=f"ws-send-{self.id}"
            )
            return

    async def _drain(self, coro: Coroutine[Any, Any, None], awaiting: Any) -> None:
        try:
            await _finish_send(coro, awaiting)
            pending = self._pending
            send = self.websocket.send
            while pending and not self.closing:
                text = pending.popleft()
                if not self._space.is_set():
                    self._space.set()
                await send({"type": "websocket.send", "text": text})
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away mid-send; the receive side notices and unregisters.
            self._mark_closed()
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    def _mark_closed(self) -> None:
        self.closing = True
        self._pending.clear()
        self._space.set()
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(
        self, code: int, reason: str = "", final: str | None = None, *, hang_up: bool = False
    ) -> None:
        """Stop sending and close the socket with ``code`` (bounded wait for a stuck peer),
        after sending the ``final`` message (an error saying why) when given. With
        ``hang_up`` nothing more is read from the peer (see api.fastsend)."""
        if self._close_started:
            return
        self._close_started = True
        self.closing = True
        self._pending.clear()
        self._space.set()
        await self.stop_sender()
        if hang_up:
            hook_up(self.websocket)
        try:
            if final is not None:
                await asyncio.wait_for(
                    self.websocket.send({"type": "websocket.send", "text": final}),
                    CLOSE_TIMEOUT,
                )
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_TIMEOUT)
        except Exception:
            log.debug("closing client %s with %d did not complete", self.id, code)
        self._mark_closed()

    @property
    def close_started(self) -> bool:
        return self._close_started

    def abandon(self) -> None:
        """The session is over: stop sending and wake anything waiting for queue room."""
        self.closing = True
        self._pending.clear()
        self._space.set()

    async def stop_sender(self) -> None:
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


class CredentialCache:
    """Whether a credential still stands, asked of the database at most once per
    ``ttl`` seconds per credential (concurrent askers share one query)."""

    def __init__(self, auth: AuthService, ttl: float) -> None:
        self._auth = auth
        self._ttl = ttl
        self._known: dict[Hashable, tuple[float, bool]] = {}
        self._asking: dict[Hashable, asyncio.Future[bool]] = {}
        self._failing = False

    @staticmethod
    def key(principal: Principal) -> Hashable:
        return (principal.key_id, principal.user.id, "admin" in principal.scopes)

    def record(self, principal: Principal, ok: bool, now: float) -> None:
        self._known[self.key(principal)] = (now, ok)

    def forget_except(self, keep: set[Hashable]) -> None:
        for key in [k for k in self._known if k not in keep]:
            del self._known[key]

    async def check(self, principal: Principal) -> bool:
        key = self.key(principal)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and (not known[1] or now - known[0] < self._ttl):
            return known[1]  # an ended credential never comes back
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        ok = known[1] if known is not None else True
        try:
            (ok,) = await self._auth.still_valid([principal])
            self._failing = False
        except Exception as exc:
            # The database is unavailable: keep the last answer (revoking needs it too).
            if not self._failing:
                log.warning("could not re-check a WebSocket credential: %s", type(exc).__name__)
            self._failing = True
        finally:
            del self._asking[key]
            future.set_result(ok)  # also when this task is cancelled: the others go on
        self._known[key] = (now, ok)
        return ok


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
        self.credentials = CredentialCache(ctx.auth, self._limits.credential_cache_seconds)
        self._filter_locks: dict[int, asyncio.Lock] = {}
        self._penalties: dict[Hashable, float] = {}
        #: Resumes per user, all of its connections together (reconnecting to resume
        #: again must not dodge the limit).
        self.resume_limiter = KeyedRateLimiter(self._limits.ws_resumes_per_minute, 60.0)
        #: Stream-filter writes (``subscribe``) per user per second, likewise.
        self.filter_write_limiter = KeyedRateLimiter(
            self._limits.max_messages_per_client_per_sec, 1.0
        )
        self._replay_readers: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat_text = dumps({"type": "heartbeat"})
        #: Benchmark baseline only: broadcast by awaiting each client in turn.
        self.sequential_broadcast = False
        self._ready_clients: list[Client] = []
        self._broadcasts: list[Signal] = []
        self._flush_scheduled = False
        self._sequential_lock: asyncio.Lock | None = None
        self.stopping = False

    # ---- lifecycle ------------------------------------------------------
    @property
    def connection_count(self) -> int:
        return len(self._clients)

    @property
    def started(self) -> bool:
        return self._unsubscribe is not None

    def start(self) -> None:
        if self._unsubscribe is not None:
            return
        self.stopping = False
        self._unsubscribe = self._ctx.bus.subscribe(self.on_signal)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ws-heartbeat")
        self._checker = asyncio.create_task(self._credential_loop(), name="ws-credentials")

    async def stop(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Stop taking signals and close every client with ``code`` (1001: going away)."""
        self.stopping = True
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

    def _spawn(self, coro: Any) -> None:
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

    def new_client(
        self, websocket: WebSocket, principal: Principal, ip: str, flt: SignalFilter
    ) -> Client:
        return Client(
            websocket,
            principal,
            ip,
            flt,
            capacity=self._api.client_queue_size,
            on_ready=self._ready,
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
        expires_at = client.principal.expires_at
        if expires_at is not None:
            # A JWT ends at its exp, to the second: no need to wait for the next check.
            client.expiry = asyncio.get_running_loop().call_later(
                max(expires_at - time.time(), 0.0), self._expire, client
            )
        self._metrics.ws_connections.inc()
        self._metrics.ws_messages_sent.labels(type="welcome").inc()

    async def unregister(self, client: Client) -> None:
        self._forget(client)
        if client.expiry is not None:
            client.expiry.cancel()
            client.expiry = None
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

    # ---- credentials ------------------------------------------------------
    def end_client(self, client: Client, code: int, message: str, *, hang_up: bool = False) -> None:
        """Close ``client`` with ``code`` after an error saying why (in a task)."""
        if not client.closing:
            final = dumps({"type": "error", "message": message})
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

    def revoke(self, client: Client, message: str) -> None:
        """``client``'s credential ended: accept nothing more from it, close it (4001)."""
        if client.revoked:
            return
        client.revoked = True
        log.info("closing WebSocket client %s (user %s): %s", client.id, client.user_id, message)
        self._metrics.ws_messages_sent.labels(type="credential_ended").inc()
        self.end_client(client, CLOSE_AUTH, message)

    def _expire(self, client: Client) -> None:
        client.expiry = None
        self.revoke(client, "token expired; get a new one (POST /api/v1/auth/token) and reconnect")

    async def credential_ok(self, client: Client) -> bool:
        """Whether ``client``'s credential still stands (asked before each message)."""
        if client.revoked:
            return False
        if client.principal.expired():
            self._expire(client)
            return False
        if not await self.credentials.check(client.principal):
            self.revoke(client, REVOKED_MESSAGE)
            return False
        return True

    async def check_credentials(self) -> None:
        """Re-check every open connection's credential in one batched query."""
        clients = [c for c in self._clients.values() if not c.closing and not c.revoked]
        principals: dict[Hashable, Principal] = {}
        for client in clients:
            principals.setdefault(CredentialCache.key(client.principal), client.principal)
        self.credentials.forget_except(set(principals))
        if not principals:
            return
        keys = list(principals)
        results = await self._ctx.auth.still_valid([principals[k] for k in keys])
        now = time.monotonic()
        valid = {}
        for key, ok in zip(keys, results, strict=True):
            valid[key] = ok
            self.credentials.record(principals[key], ok, now)
        for client in clients:
            if client.principal.expired():
                self._expire(client)
            elif not valid.get(CredentialCache.key(client.principal), True):
                self.revoke(client, REVOKED_MESSAGE)

    async def _credential_loop(self) -> None:
        interval = self._limits.credential_check_seconds
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_credentials()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning(
                        "could not re-check WebSocket credentials (retrying every %.0f s): %s",
                        interval,
                        type(exc).__name__,
                    )
                failing = True

    def _ready(self, client: Client) -> None:
        """``client`` has something queued: write it on this loop turn's flush."""
        self._ready_clients.append(client)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Fan out the signals published since the last turn, then write queued messages."""
        try:
            while self._broadcasts or self._ready_clients:
                broadcasts, self._broadcasts = self._broadcasts, []
                for signal in broadcasts:
                    self._broadcast(signal)
                ready, self._ready_clients = self._ready_clients, []
                for client in ready:
                    client.flush()
        finally:
            self._flush_scheduled = False

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

    # ---- sending ----------------------------------------------------------
    def send(self, client: Client, payload: dict[str, Any]) -> None:
        """Queue a control message (subscribed, error, ...) to one client."""
        if client.enqueue(dumps(payload)):
            self._metrics.ws_messages_sent.labels(type=str(payload.get("type", "other"))).inc()

    def on_signal(self, signal: Signal) -> None:
        """Bus listener: note the signal; it is fanned out on this loop turn's flush,
        so the publisher (an ingest request, the scheduler) never waits for clients."""
        if not self._clients:
            return
        if self.sequential_broadcast:
            self._spawn(self._broadcast_sequentially(signal))
            return
        self._broadcasts.append(signal)
        self._schedule_flush()

    def _broadcast(self, signal: Signal) -> None:
        """Serialize and frame once; write or queue to every matching client. Never awaits."""
        text = signal_message(signal)
        frame = text_frame(text.encode())
        seq = signal.seq or 0
        sent = 0
        note = self._ctx.receipts.note
        for client in self._clients.values():
            matcher = client.matcher
            if matcher is not None and not matcher(signal):
                continue
            if client.side_buffer is not None:
                client.buffer_live(seq, text)
                note(client.user_id, seq)
            elif client.offer(text, frame):
                client.recent_live.append(seq)
                note(client.user_id, seq)
                sent += 1
        if sent:
            self._metrics.ws_messages_sent.labels(type="signal").inc(sent)

    async def _broadcast_sequentially(self, signal: Signal) -> None:
        """The design document's broadcast, kept as the benchmark's baseline: serialize
        per client and await each send in turn."""
        if self._sequential_lock is None:
            self._sequential_lock = asyncio.Lock()
        async with self._sequential_lock:
            data = signal.to_public()
            for client in list(self._clients.values()):
                if client.closing or not client.wants(signal):
                    continue
                try:
                    await client.websocket.send_json({"type": "signal", "data": data})
                except Exception:
                    continue

    # ---- resume -------------------------------------------------------------
    async def resume(self, client: Client, after_seq: int) -> tuple[int, int]:
        """Replay what ``client`` missed after ``after_seq``, then go live.

        Returns (replayed, last_seq). The caller may already have switched the
        client to buffering (``register(..., resume_buffering=True)``). A cursor more
        than ``limits.ws_resume_max_signals`` back replays nothing: the client goes
        live and InvalidInput says how to catch up over REST."""
        if client.side_buffer is None:
            client.side_buffer = deque()
        already_live = {s for s in client.recent_live if s > after_seq}
        last = after_seq
        replayed = 0
        signals = self._ctx.services.signals
        if self._replay_readers is None:
            self._replay_readers = asyncio.Semaphore(REPLAY_READERS)
        too_far: str | None = None
        try:
            newest = await signals.latest_seq()
            reach = self._limits.ws_resume_max_signals
            if newest - after_seq > reach:
                too_far = (
                    f"resume: after_seq {after_seq} is more than {reach} signals back (the "
                    f"newest seq is {newest}); page through GET /api/v1/signals?after_seq="
                    f"{after_seq} first, then resume from the last seq you got"
                )
            while too_far is None:
                async with self._replay_readers:
                    page = await signals.query(limit=REPLAY_PAGE, after_seq=last, ascending=True)
                queued = 0
                for signal in page:
                    seq = signal.seq or 0
                    last = max(last, seq)
                    if seq in already_live or not client.wants(signal):
                        continue
                    await client.put(signal_message(signal))
                    self._ctx.receipts.note(client.user_id, seq)
                    replayed += 1
                    queued += 1
                    if queued % REPLAY_YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the live broadcast and others run
                if len(page) < REPLAY_PAGE:
                    break
                await asyncio.sleep(0)
            buffer = client.side_buffer
            while buffer:
                seq, text = buffer.popleft()
                if seq <= last or seq in already_live:
                    continue
                await client.put(text)
                last = seq
            # Nothing awaited between the empty check above and this line: no gap.
            client.side_buffer = None
        except BaseException:
            client.side_buffer = None
            raise
        if replayed:
            self._metrics.ws_messages_sent.labels(type="signal").inc(replayed)
        if too_far is not None:
            raise InvalidInput(too_far, field="after_seq")
        return replayed, last

    # ---- heartbeats -------------------------------------------------------------
    def pong(self, client: Client) -> None:
        client.last_pong = time.monotonic()

    async def _heartbeat_loop(self) -> None:
        interval = self._api.heartbeat_seconds
        timeout = self._api.heartbeat_timeout_seconds
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
                    if client.enqueue(self._heartbeat_text):
                        count += 1
                if count:
                    self._metrics.ws_messages_sent.labels(type="heartbeat").inc(count)


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
]
