"""WebSocket fan-out benchmark: publish-to-last-client latency for N clients.

    .venv/bin/python bench/ws_fanout.py                 # N = 1000 and 5000
    .venv/bin/python bench/ws_fanout.py --clients 200 --rounds 10
    .venv/bin/python bench/ws_fanout.py --busy-poll     # receiver never sleeps (see below)
    .venv/bin/python bench/ws_fanout.py --asyncio-client  # the older, heavier receiver

The hub and its API server run in this process (uvicorn in the event loop, as
``catalyst run`` does). The N WebSocket clients run in a separate process that
also publishes: for each round it records t0, POSTs a signal to
``/api/v1/signals``, and records when each client received it (one monotonic
clock, shared by both processes' measurements). The figure per round is the
time from t0 until the last of the N clients has the signal.

Three modes run interleaved, one signal each per round (so noise from other
processes hits all of them alike): the manager's concurrent broadcast
(serialize once, write pre-built frames, per-client queues), the sequential
baseline (``ConnectionManager.sequential_broadcast``: serialize per client and
await each send in turn, as the design document's sketch does), and a "bare
socket" floor (this process writes the same frame to N plain asyncio
transports: no framework at all). The ratio of the p50s is printed.

Why the receiving side is a ``selectors`` loop
    The clients connect with asyncio (handshake and token auth as a real client
    does), but then the worker duplicates each socket's file descriptor, leaves
    the asyncio transports paused, and receives with one plain ``selectors``
    loop over the raw non-blocking sockets: ``recv``, find the frame boundaries
    (server frames are unmasked), look for the signal id in text frames, stamp
    ``time.monotonic_ns()``. The stdin handshake with this process and the
    publishing POST (a raw keep-alive HTTP/1.1 request) go through the same
    loop, so nothing else runs in the worker while it measures.

    The earlier receiver (an ``asyncio.Protocol`` per client, kept behind
    ``--asyncio-client``) costs about 50 us per message in the event loop's
    callback machinery: 1000 clients take about 50 ms to *read* one signal,
    which is more than the server needs to write it, so that client measured
    itself (all three modes landed within a few ms of each other at N=1000).
    The selector loop costs a few us per message, close to what a C receiver
    would add, so the figures describe the server: with it, the hub's
    synchronous broadcast loop (``ConnectionManager._broadcast``) takes as long
    as "hub publish -> last client", i.e. the last client has the signal as
    soon as the server has written it. A frame is stamped when the ``select``
    call that reported its socket returned.

    ``--busy-poll`` makes that loop call ``select(0)`` instead of sleeping. On
    loopback the kernel delivers each write in the writer's own ``send`` call,
    including waking a receiver that sleeps in ``epoll_wait``; a receiver that
    never sleeps takes that cost off the server (about a third of the time at
    N=5000 on a 2-CPU machine, little at N=1000). Remote clients would not
    charge their wake-ups to the server, so the busy-polling figures are the
    closer ones to a real deployment; the default is the plain sleeping loop.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
BENCH_SIGNAL: dict[str, Any] = {
    "ticker": "ABCD",
    "signal_type": "BUY",
    "confidence": 0.85,
    "catalyst_type": "FDA",
    "source": "bench",
    "price": 12.5,
    "rvol": 2.3,
    "sector": "Healthcare",
    "headline": "ABCD receives FDA approval for its lead candidate",
}


SIGNAL_ID = re.compile(rb'"signal_id":"(bench-[^"]+)"')


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# =============================================================================
# Client process
# =============================================================================


class BenchClient(asyncio.Protocol):
    """One WebSocket client: handshake, then unmasked server frames parsed in place."""

    def __init__(self, path: str, host: str, arrivals: dict[str, list[int]]) -> None:
        self.path = path
        self.host = host
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.upgraded = False
        self.welcomed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before welcome"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if not self.welcomed.done():
                    self.welcomed.set_exception(ConnectionError(bytes(buf[:80]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            del buf[: pos + length]
            if opcode == 0x1:
                self.on_text(payload, now)
            elif opcode == 0x9 and self.transport is not None:  # ping -> masked pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                self.closed = True

    def on_text(self, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"type":"signal"'):
            match = SIGNAL_ID.search(payload)
            if match:
                self.arrivals.setdefault(match.group(1).decode(), []).append(now)
        elif payload.startswith(b'{"type":"welcome"') and not self.welcomed.done():
            self.welcomed.set_result(None)


#: Connection attempts that failed and were retried (the hub's SQLite can answer a
#: burst of handshakes with "database is locked" and close the socket).
CONNECT_RETRIES = 0


async def open_clients(
    port: int, key: str, count: int, arrivals: dict[str, list[int]]
) -> list[BenchClient]:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    clients: list[BenchClient] = []
    gate = asyncio.Semaphore(32)

    async def one() -> None:
        global CONNECT_RETRIES
        for attempt in range(6):
            async with gate:
                transport, client = await loop.create_connection(
                    lambda: BenchClient(f"/ws?token={key}", host, arrivals), "127.0.0.1", port
                )
                try:
                    await asyncio.wait_for(client.welcomed, 60)
                except ConnectionError:
                    transport.close()
                    if attempt == 5:
                        raise
                    CONNECT_RETRIES += 1
                else:
                    clients.append(client)
                    return
            await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


async def wait_for_all(signal_id: str, count: int, arrivals: dict[str, list[int]]) -> list[int]:
    deadline = time.monotonic() + 30
    while len(arrivals.get(signal_id, ())) < count:
        if time.monotonic() > deadline:
            got = len(arrivals.get(signal_id, ()))
            raise RuntimeError(f"{signal_id}: only {got} of {count} clients received it")
        await asyncio.sleep(0.0005)
    return arrivals[signal_id]


async def worker(args: argparse.Namespace) -> None:
    """Open the clients, then per round measure every mode once (interleaved, so
    noise from other processes on the machine hits all modes alike)."""
    import httpx

    raise_nofile(2 * args.clients + 1000)
    arrivals: dict[str, list[int]] = {}
    started = time.monotonic()
    clients = await open_clients(args.port, args.key, args.clients, arrivals)
    connect_s = time.monotonic() - started
    floor_clients: list[BenchClient] = []
    modes = ["concurrent", "sequential"]
    if args.floor_port:
        floor_clients = await open_clients(args.floor_port, args.key, args.clients, arrivals)
        modes.append("floor")
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    records: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    headers = {"Authorization": f"Bearer {args.key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}", timeout=30) as http:
        for r in range(-2, args.rounds):  # two warm-up rounds
            for mode in modes:
                signal_id = f"bench-{args.clients}-{mode}-{r}"
                print(json.dumps({"event": "mode", "mode": mode, "id": signal_id}), flush=True)
                if (await reader.readline()).strip() != b"ok":
                    raise RuntimeError("the server process did not answer")
                t0 = t_post = 0
                if mode != "floor":
                    t0 = time.monotonic_ns()
                    response = await http.post(
                        "/api/v1/signals",
                        json={"signal_id": signal_id, **BENCH_SIGNAL},
                        headers=headers,
                    )
                    t_post = time.monotonic_ns()
                    if response.status_code != 201:
                        raise RuntimeError(f"publish failed: {response.status_code}")
                times = await wait_for_all(signal_id, args.clients, arrivals)
                if r >= 0:
                    records[mode].append(
                        {"id": signal_id, "t0": t0, "t_post": t_post, "t_last": max(times)}
                    )
                await asyncio.sleep(0.02)
    closed_early = sum(1 for c in clients if c.closed)
    for client in clients + floor_clients:
        if client.transport is not None:
            client.transport.close()
    result = {
        "connect_seconds": round(connect_s, 2),
        "connect_retries": CONNECT_RETRIES,
        "closed_early": closed_early,
        **records,
    }
    print(json.dumps({"event": "result", **result}), flush=True)


# ---- the lean receiver (default) ---------------------------------------------


class RawConn:
    """One detached client socket: its fd (a dup of the asyncio transport's), and
    the bytes of a frame that is not complete yet."""

    __slots__ = ("buf", "closed", "sock")

    def __init__(self, sock: socket.socket, buf: bytes) -> None:
        self.sock = sock
        self.buf = buf
        self.closed = False


STDIN = object()
HTTP = object()


def detach(clients: list[BenchClient]) -> list[RawConn]:
    """Stop asyncio reading each client's socket and hand over a duplicate fd.

    The transports are then aborted: that closes their fd only (no shutdown), and
    closing one fd of a dup pair sends nothing to the peer, so the connection
    lives on in the duplicate (and the process holds one fd per client)."""
    conns: list[RawConn] = []
    for client in clients:
        transport = client.transport
        assert transport is not None
        transport.pause_reading()
        fd = os.dup(transport.get_extra_info("socket").fileno())
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        conns.append(RawConn(sock, bytes(client.buffer)))
        client.buffer.clear()
        transport.abort()
    return conns


async def connect_for_lean(args: argparse.Namespace) -> tuple[list[RawConn], list[RawConn], float]:
    unused: dict[str, list[int]] = {}
    started = time.monotonic()
    clients = await open_clients(args.port, args.key, args.clients, unused)
    connect_s = time.monotonic() - started
    floor_clients: list[BenchClient] = []
    if args.floor_port:
        floor_clients = await open_clients(args.floor_port, args.key, args.clients, unused)
    conns = detach(clients)
    for _ in range(3):  # let the aborted transports close their fds before the next batch
        await asyncio.sleep(0)
    floor_conns = detach(floor_clients)
    for _ in range(3):
        await asyncio.sleep(0)
    return conns, floor_conns, connect_s


class RawHttp:
    """A keep-alive HTTP/1.1 connection for the publishing POST (no client library)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.sock: socket.socket | None = None
        self.buf = b""

    def ensure(self) -> socket.socket:
        sock = self.sock
        if sock is not None:
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":  # the server closed it (idle)
                    sock.close()
                    sock = None
            except BlockingIOError:
                pass
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.sock = sock
        self.buf = b""
        return sock

    def request(self, signal_id: str) -> bytes:
        body = json.dumps({"signal_id": signal_id, **BENCH_SIGNAL}).encode()
        return (
            f"POST /api/v1/signals HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def feed(self) -> int | None:
        """Read what arrived; the status code once the whole response is in."""
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the API server closed the publishing connection")
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return None
        if any(line.lower().startswith("connection: close") for line in head[1:]):
            self.sock.close()
            self.sock = None
        return int(head[0].split()[1])


def lean_round(
    sel: selectors.BaseSelector,
    mode: str,
    signal_id: str,
    count: int,
    http: RawHttp,
    stdin_fd: int,
    poll_timeout: float = 1.0,
) -> dict[str, Any]:
    """One signal: tell the server process the mode, publish on its "ok", and
    receive until ``count`` clients have the signal. Single thread, no asyncio."""
    marker = b'"signal_id":"' + signal_id.encode() + b'"'
    times: list[int] = []
    got = times.append
    print(json.dumps({"event": "mode", "mode": mode, "id": signal_id}), flush=True)
    stdin_buf = b""
    ok = False
    t0 = t_post = 0
    need_post = mode != "floor"
    http_sock: socket.socket | None = None
    deadline = time.monotonic() + 30
    recv = socket.socket.recv
    select = sel.select
    while not ok or len(times) < count or (need_post and not t_post):
        events = select(poll_timeout)
        now = time.monotonic_ns()
        for key, _mask in events:
            conn = key.data
            if conn is STDIN:
                chunk = os.read(stdin_fd, 4096)
                if not chunk:
                    raise RuntimeError("the server process went away")
                stdin_buf += chunk
                if b"\n" in stdin_buf:
                    if stdin_buf.strip() != b"ok":
                        raise RuntimeError(f"the server process said {stdin_buf!r}")
                    ok = True
                    if need_post:
                        http_sock = http.ensure()
                        request = http.request(signal_id)
                        sel.register(http_sock, selectors.EVENT_READ, HTTP)
                        t0 = time.monotonic_ns()
                        http_sock.sendall(request)
                continue
            if conn is HTTP:
                status = http.feed()
                if status is not None:
                    t_post = time.monotonic_ns()
                    sel.unregister(http_sock)  # type: ignore[arg-type]
                    if status != 201:
                        raise RuntimeError(f"publish failed: {status}")
                continue
            try:
                data = recv(conn.sock, 65536)
            except BlockingIOError:
                continue
            if not data:
                conn.closed = True
                sel.unregister(conn.sock)
                continue
            if conn.buf:
                data = conn.buf + data
            pos = 0
            size = len(data)
            while size - pos >= 2:
                length = data[pos + 1] & 0x7F
                start = pos + 2
                if length == 126:
                    if size - pos < 4:
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    start = pos + 4
                elif length == 127:
                    if size - pos < 10:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    start = pos + 10
                end = start + length
                if end > size:
                    break
                opcode = data[pos] & 0x0F
                if opcode == 0x1:
                    if data.find(marker, start, end) >= 0:
                        got(now)
                elif opcode == 0x9:  # uvicorn's protocol ping: answer with a masked pong
                    payload = data[start:end]
                    conn.sock.send(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
                elif opcode == 0x8:
                    conn.closed = True
                pos = end
            conn.buf = data[pos:] if pos < size else b""
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{signal_id}: only {len(times)} of {count} clients received it "
                f"(ok={ok}, answered={bool(t_post)})"
            )
    return {"id": signal_id, "t0": t0, "t_post": t_post, "t_last": max(times)}


def lean_worker(args: argparse.Namespace) -> None:
    """Connect with asyncio, then measure with one selector loop (see the docstring)."""
    raise_nofile(3 * args.clients + 1000)  # while detaching, N duplicates are open too
    conns, floor_conns, connect_s = asyncio.run(connect_for_lean(args))
    modes = ["concurrent", "sequential"] + (["floor"] if floor_conns else [])
    sel = selectors.DefaultSelector()
    for conn in conns + floor_conns:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_READ, STDIN)
    http = RawHttp(args.port, args.key)
    records: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for r in range(-2, args.rounds):  # two warm-up rounds
        for mode in modes:
            signal_id = f"bench-{args.clients}-{mode}-{r}"
            record = lean_round(
                sel, mode, signal_id, args.clients, http, stdin_fd, 0 if args.busy_poll else 1.0
            )
            if r >= 0:
                records[mode].append(record)
            time.sleep(0.02)
    closed_early = sum(1 for c in conns if c.closed)
    sel.close()
    for conn in conns + floor_conns:
        conn.sock.close()
    result = {
        "connect_seconds": round(connect_s, 2),
        "connect_retries": CONNECT_RETRIES,
        "closed_early": closed_early,
        **records,
    }
    print(json.dumps({"event": "result", **result}), flush=True)


# =============================================================================
# Server process (this one)
# =============================================================================


def text_frame(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes([0x81, length]) + payload
    if length < 1 << 16:
        return bytes([0x81, 126]) + length.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + length.to_bytes(8, "big") + payload


def floor_message(signal_id: str) -> str:
    """The very text the hub sends for a bench signal (same size), for the floor."""
    from api.ws import signal_message
    from core.signals import Signal

    return signal_message(Signal(signal_id=signal_id, **BENCH_SIGNAL).with_seq(1))


class FloorPeer(asyncio.Protocol):
    """A bare-socket stand-in for the hub: answers the handshake, then only writes."""

    def __init__(self, peers: list[asyncio.Transport]) -> None:
        self.peers = peers
        self.transport: asyncio.Transport | None = None
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.upgraded or b"\r\n\r\n" not in data or self.transport is None:
            return
        self.upgraded = True
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n" + text_frame(b'{"type":"welcome"}')
        )
        self.peers.append(self.transport)


async def bench(
    sizes: list[int], rounds: int | None, asyncio_client: bool = False, busy_poll: bool = False
) -> None:
    sys.path.insert(0, str(ROOT))
    from api import ApiServer, create_app
    from core.settings import Settings
    from hub.build import build_context, prepare_database

    limit = raise_nofile(max(sizes) * 2 + 2000)
    folder = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{folder / 'bench.db'}"},
        auth={"jwt_secret": "bench-secret-" + "x" * 40},
        console={"enabled": False, "auto_subscribe": False},
        scheduler={"enabled": False},
        api={
            "heartbeat_seconds": 3600,
            "heartbeat_timeout_seconds": 7200,
            # Every bench client comes from 127.0.0.1.
            "max_open_connections_per_ip": max(sizes) + 100,
        },
        limits={
            "max_connections_per_ip": max(sizes) + 100,
            "rest_requests_per_minute": 1_000_000,
        },
    )
    ctx = build_context(settings)
    await prepare_database(ctx, force=True)
    user = await ctx.services.accounts.create_user("bench")
    key, _ = await ctx.auth.create_key(user.id, ("read", "publish"))
    principal = await ctx.auth.authenticate_key(key)
    assert principal is not None
    # A JWT: authenticating it only reads, so connecting thousands of clients is quicker.
    token, _ttl = ctx.auth.issue_token(principal)
    floor_peers: list[asyncio.Transport] = []
    floor_server = await asyncio.get_running_loop().create_server(
        lambda: FloorPeer(floor_peers), "127.0.0.1", 0, backlog=4096
    )
    floor_port = floor_server.sockets[0].getsockname()[1]
    published_at: dict[str, int] = {}

    def stamp(signal: Any) -> None:
        published_at[signal.signal_id] = time.monotonic_ns()

    ctx.bus.subscribe(stamp)  # before the manager's listener: the instant the hub publishes
    server = ApiServer(create_app(ctx), "127.0.0.1", 0)
    await server.start()
    manager = server.manager
    receiver = "asyncio.Protocol client" if asyncio_client else "selectors-loop client"
    if busy_poll and not asyncio_client:
        receiver += ", busy-polling"
    print(
        f"server on 127.0.0.1:{server.port}; RLIMIT_NOFILE {limit}; {os.cpu_count()} CPUs; "
        f"receiver: {receiver}"
    )
    summary: list[str] = []
    try:
        for count in sizes:
            n_rounds = rounds or (40 if count <= 1000 else 20)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--worker",
                "--port",
                str(server.port),
                "--key",
                token,
                "--floor-port",
                str(floor_port),
                "--clients",
                str(count),
                "--rounds",
                str(n_rounds),
                *(["--asyncio-client"] if asyncio_client else []),
                *(["--busy-poll"] if busy_poll else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=str(ROOT),
            )
            assert proc.stdout is not None and proc.stdin is not None
            result: dict[str, Any] = {}
            floor_t0: dict[str, int] = {}
            floor_peers.clear()
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                event = json.loads(line)
                if event["event"] == "mode":
                    if event["mode"] == "floor":
                        frame = text_frame(floor_message(event["id"]).encode())
                        floor_t0[event["id"]] = time.monotonic_ns()
                        for peer in floor_peers:
                            peer.write(frame)
                    else:
                        manager.sequential_broadcast = event["mode"] == "sequential"
                    proc.stdin.write(b"ok\n")
                    await proc.stdin.drain()
                elif event["event"] == "result":
                    result = event
            await proc.wait()
            manager.sequential_broadcast = False
            if not result:
                raise RuntimeError(f"the client process failed (exit {proc.returncode})")
            lines = [
                f"N={count} ({receiver}): {n_rounds} signals per mode, clients connected in "
                f"{result['connect_seconds']} s ({result.get('connect_retries', 0)} retried), "
                f"closed early: {result['closed_early']}"
            ]
            p50s: dict[str, tuple[float, float]] = {}
            for mode in ("concurrent", "sequential"):
                records = result[mode]
                e2e = [(r["t_last"] - r["t0"]) / 1e6 for r in records]
                fan = [(r["t_last"] - published_at[r["id"]]) / 1e6 for r in records]
                post = [(r["t_post"] - r["t0"]) / 1e6 for r in records]
                p50s[mode] = (statistics.median(e2e), statistics.median(fan))
                lines.append(
                    f"  {mode:<10}  POST sent -> last client: p50 {percentile(e2e, 50):6.1f} ms"
                    f"  p90 {percentile(e2e, 90):6.1f} ms | hub publish -> last client: "
                    f"p50 {percentile(fan, 50):6.1f} ms  p90 {percentile(fan, 90):6.1f} ms"
                    f" | POST answered p50 {percentile(post, 50):5.1f} ms"
                )
            if result.get("floor"):
                floor = [(r["t_last"] - floor_t0[r["id"]]) / 1e6 for r in result["floor"]]
                lines.append(
                    f"  {'bare socket':<10}  (no framework: this machine's floor)      "
                    f"| first write -> last client:  p50 {percentile(floor, 50):6.1f} ms  "
                    f"p90 {percentile(floor, 90):6.1f} ms"
                )
            lines.append(
                "  sequential / concurrent p50 ratio: "
                f"{p50s['sequential'][0] / p50s['concurrent'][0]:.2f}x end to end, "
                f"{p50s['sequential'][1] / p50s['concurrent'][1]:.2f}x fan-out"
            )
            print("\n".join(lines), flush=True)
            summary.extend(lines)
            for _ in range(500):
                if manager.connection_count == 0:
                    break
                await asyncio.sleep(0.02)
    finally:
        floor_server.close()
        await server.stop()
        await ctx.db.dispose()
    print("\nsummary (publish-to-last-client):")
    print("\n".join(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, action="append", help="N (repeatable)")
    parser.add_argument("--rounds", type=int, default=None, help="signals per mode")
    parser.add_argument(
        "--asyncio-client",
        action="store_true",
        help="receive with the older asyncio.Protocol client (about 50 us per message) "
        "instead of the selectors loop, to compare",
    )
    parser.add_argument(
        "--busy-poll",
        action="store_true",
        help="the selectors-loop receiver polls without sleeping (select(0)), so the "
        "server's writes never have to wake it up",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.clients = args.clients[0]
        if args.asyncio_client:
            asyncio.run(worker(args))
        else:
            lean_worker(args)
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(
        bench(args.clients or [1000, 5000], args.rounds, args.asyncio_client, args.busy_poll)
    )


if __name__ == "__main__":
    main()
