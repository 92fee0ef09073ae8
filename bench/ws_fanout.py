"""WebSocket fan-out benchmark: publish-to-last-client latency for N clients.

    .venv/bin/python bench/ws_fanout.py                 # N = 1000 and 5000
    .venv/bin/python bench/ws_fanout.py --clients 200 --rounds 10
    .venv/bin/python bench/ws_fanout.py --busy-poll     # receiver never sleeps (see below)
    .venv/bin/python bench/ws_fanout.py --asyncio-client  # the older, heavier receiver
    .venv/bin/python bench/ws_fanout.py --storm 2000 --storm 5000 --clients 2000 --clients 5000
    .venv/bin/python bench/ws_fanout.py --web-role [uvicorn] --storm 2000 ...

Storm and design-document baseline (``--storm N``, ``--vs-design``, ``--web-role``):
the hub runs as ``catalyst run`` (or the Procfile's ``web`` command, or with
``--web-role uvicorn`` the bare ``uvicorn --factory hub.web:create_app``) and
``bench/design_server.py`` beside it, each in its own process. A storm is N
clients connecting through 32 parallel connectors (``--connectors``), timed to
the last welcome, then held ``--hold`` seconds answering the server's pings;
every client the server closes meanwhile is counted with its code and reason.
Fan-out then measures POST sent -> last of N clients for the hub, the design
server (one key per connection: it keys connections by user) and the bare-socket
floor, interleaved per round. ``--py-spy FILE`` records the hub process (with
``--py-spy-native`` also native frames, such as the garbage collector's).

The hub and its API server run in this process (uvicorn in the event loop, as
``catalyst run`` does). The N WebSocket clients run in a separate process that
also publishes: for each round it records t0, POSTs a signal to
``/api/v1/signals``, and records when each client received it (one monotonic
clock, shared by both processes' measurements). The figure per round is the
time from t0 until the last of the N clients has the signal.

Three modes run interleaved, one signal each per round (so noise from other
processes hits all of them alike): the manager's concurrent broadcast
(serialize once, write pre-built frames, per-client queues), the sequential
baseline (:class:`SequentialBaseline`, installed as the manager's bus listener:
serialize per client and await each send in turn, as the design document's sketch
does), and a "bare socket" floor (this process writes the same frame to N plain
asyncio transports: no framework at all). The ratio of the p50s is printed.

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
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
        elif b'"welcome"' in payload[:40] and not self.welcomed.done():
            self.welcomed.set_result(None)


#: Connection attempts that failed and were retried (the hub's SQLite can answer a
#: burst of handshakes with "database is locked" and close the socket).
CONNECT_RETRIES = 0


def client_key(key: str, index: int, per_client: bool) -> str:
    """The design server keys connections by user: one key each (``{key}-{i}``, see
    ``bench/design_server.py --users``), ``key`` itself for the first."""
    return f"{key}-{index}" if per_client and index else key


async def open_clients(
    port: int,
    key: str,
    count: int,
    arrivals: dict[str, list[int]],
    *,
    per_client_keys: bool = False,
) -> list[BenchClient]:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    clients: list[BenchClient] = []
    gate = asyncio.Semaphore(32)

    async def one(index: int) -> None:
        global CONNECT_RETRIES
        path = f"/ws?token={client_key(key, index, per_client_keys)}"
        for attempt in range(6):
            async with gate:
                transport, client = await loop.create_connection(
                    lambda: BenchClient(path, host, arrivals), "127.0.0.1", port
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

    await asyncio.gather(*(one(i) for i in range(count)))
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


async def connect_for_lean(
    args: argparse.Namespace,
) -> tuple[list[RawConn], list[RawConn], list[RawConn], float, float]:
    """Connect the hub's clients, then the floor's and the design server's (if any);
    returns the detached sockets and the hub's and design server's connect times."""
    unused: dict[str, list[int]] = {}
    started = time.monotonic()
    clients = await open_clients(args.port, args.key, args.clients, unused)
    connect_s = time.monotonic() - started
    floor_clients: list[BenchClient] = []
    if args.floor_port:
        floor_clients = await open_clients(args.floor_port, args.key, args.clients, unused)
    design_clients: list[BenchClient] = []
    design_s = 0.0
    if args.design_port:
        started = time.monotonic()
        design_clients = await open_clients(
            args.design_port, args.design_key, args.clients, unused, per_client_keys=True
        )
        design_s = time.monotonic() - started
    batches = []
    for batch in (clients, floor_clients, design_clients):
        conns: list[RawConn] = []
        for start in range(0, len(batch), 500):  # at most 500 duplicates open at a time
            conns.extend(detach(batch[start : start + 500]))
            for _ in range(3):  # let the aborted transports close their fds
                await asyncio.sleep(0)
        batches.append(conns)
    return batches[0], batches[1], batches[2], connect_s, design_s


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
    marker = b'"' + signal_id.encode() + b'"'  # '"signal_id":"x"' or '"signal_id": "x"'
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
                    if status not in (200, 201):  # the design server answers 200
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
    """Connect with asyncio, then measure with one selector loop (see the docstring).

    With ``--design-port`` the modes are ``hub`` and ``design`` (each publishes to its
    own server), else the in-process hub's ``concurrent`` and ``sequential``."""
    targets = 3 if args.design_port else 2
    raise_nofile(targets * args.clients + 1500)  # while detaching, 500 duplicates too
    conns, floor_conns, design_conns, connect_s, design_s = asyncio.run(connect_for_lean(args))
    modes = ["hub", "design"] if design_conns else ["concurrent", "sequential"]
    if floor_conns:
        modes.append("floor")
    sel = selectors.DefaultSelector()
    for conn in conns + floor_conns + design_conns:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_READ, STDIN)
    http = RawHttp(args.port, args.key)
    https = {mode: http for mode in modes}
    if design_conns:
        https["design"] = RawHttp(args.design_port, args.design_key)
    records: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for r in range(-2, args.rounds):  # two warm-up rounds
        for mode in modes:
            signal_id = f"bench-{args.clients}-{mode}-{r}"
            record = lean_round(
                sel,
                mode,
                signal_id,
                args.clients,
                https[mode],
                stdin_fd,
                0 if args.busy_poll else 1.0,
            )
            if r >= 0:
                records[mode].append(record)
            time.sleep(0.02)
    closed_early = sum(1 for c in conns if c.closed)
    sel.close()
    for conn in conns + floor_conns + design_conns:
        conn.sock.close()
    result = {
        "connect_seconds": round(connect_s, 2),
        "design_connect_seconds": round(design_s, 2),
        "connect_retries": CONNECT_RETRIES,
        "closed_early": closed_early,
        "design_closed_early": sum(1 for c in design_conns if c.closed),
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
    from api.ws_messages import signal_message
    from domain.signals import Signal

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


class SequentialBaseline:
    """The design document's broadcast, the benchmark's baseline: serialize per client
    and await each send in turn. Installed as the manager's bus listener before it
    starts; while ``active`` it replaces the manager's fan-out, else passes through."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.fanout = manager.on_signal
        self.active = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_signal(self, signal: Any) -> None:
        if not self.active:
            self.fanout(signal)
        elif self.manager.connection_count:
            task = asyncio.create_task(self._broadcast(signal))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _broadcast(self, signal: Any) -> None:
        async with self._lock:
            data = signal.to_public()
            for client in self.manager.clients():
                if client.closing or not client.wants(signal):
                    continue
                try:
                    await client.websocket.send_json({"type": "signal", "data": data})
                except Exception:
                    continue


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
    manager = server.manager
    baseline = SequentialBaseline(manager)
    manager.on_signal = baseline.on_signal  # before start() subscribes it to the bus
    await server.start()
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
                        baseline.active = event["mode"] == "sequential"
                    proc.stdin.write(b"ok\n")
                    await proc.stdin.drain()
                elif event["event"] == "result":
                    result = event
            await proc.wait()
            baseline.active = False
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


# =============================================================================
# Storm and the design document's baseline: every server in a process of its own
# =============================================================================

BIN = Path(sys.executable).parent
JWT_SECRET = "bench-secret-" + "x" * 40
DESIGN_KEY = "design_bench_key"


class StormClient(asyncio.Protocol):
    """A client of the connect storm: handshake, the welcome, then only answers the
    server's protocol pings and notes how (and whether) the server closes it."""

    def __init__(self, path: str, host: str) -> None:
        self.path = path
        self.host = host
        self.buffer = bytearray()
        self.upgraded = False
        self.welcomed = asyncio.get_running_loop().create_future()
        self.welcomed_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed: str | None = None
        self.pings = 0

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
        if self.closed is None:
            self.closed = "connection lost without a close frame"
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(self.closed))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.closed = "handshake refused: " + bytes(buf[:40]).decode("latin-1")
                if not self.welcomed.done():
                    self.welcomed.set_exception(ConnectionError(self.closed))
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
                if b'"welcome"' in payload[:40] and not self.welcomed.done():
                    self.welcomed_at = time.monotonic()
                    self.welcomed.set_result(None)
            elif opcode == 0x9 and self.transport is not None:  # ping -> masked pong
                self.pings += 1
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 0x8 and self.closed is None:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.closed = f"{code} {payload[2:].decode('utf-8', 'replace')}".strip()
                if not self.welcomed.done():
                    self.welcomed.set_exception(ConnectionError(self.closed))


async def storm_worker(args: argparse.Namespace) -> None:
    """N clients connect at once through ``--connectors`` parallel connectors (each
    opens its next connection when its last one was welcomed); the figure is the
    time until the last welcome. Then every client stays ``--hold`` seconds,
    answering the server's pings; a client the server closes in that time (or
    before its welcome) is counted with its close code and reason."""
    raise_nofile(args.clients + 1000)
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{args.port}"
    clients: list[StormClient] = []
    failed: Counter[str] = Counter()
    gate = asyncio.Semaphore(args.connectors)
    latencies: list[float] = []

    async def one(index: int) -> None:
        path = f"/ws?token={client_key(args.key, index, args.per_client_keys)}"
        async with gate:
            started = time.monotonic()
            try:
                _transport, client = await loop.create_connection(
                    lambda: StormClient(path, host), "127.0.0.1", args.port
                )
            except OSError as exc:
                failed[f"connect failed: {type(exc).__name__}"] += 1
                return
            clients.append(client)
            try:
                await asyncio.wait_for(client.welcomed, 60)
            except (ConnectionError, TimeoutError) as exc:
                failed[f"not welcomed: {str(exc) or 'timeout'}"[:100]] += 1
                return
            latencies.append(client.welcomed_at - started)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.clients)))
    welcomed = [c for c in clients if c.welcomed.done() and not c.welcomed.exception()]
    last = max((c.welcomed_at for c in welcomed), default=started) - started
    hold_until = time.monotonic() + args.hold
    while time.monotonic() < hold_until:
        await asyncio.sleep(0.25)
    dropped = Counter(c.closed for c in welcomed if c.closed is not None)
    pings = sum(c.pings for c in welcomed)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.5)
    result = {
        "event": "result",
        "clients": args.clients,
        "welcomed": len(welcomed),
        "last_welcome_s": round(last, 3),
        "welcome_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "welcome_p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "failed": dict(failed),
        "dropped": {str(k): v for k, v in dropped.items()},
        "pings_answered": pings,
        "hold_s": args.hold,
    }
    print(json.dumps(result), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def procfile_web(port: int) -> list[str]:
    """The Procfile's ``web`` command, on ``port``."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.split(":", 1)[1].strip()
            command = command.replace("${PORT:-8000}", str(port)).replace("$PORT", str(port))
            argv = shlex.split(command)
            if (BIN / argv[0]).exists():
                argv[0] = str(BIN / argv[0])
            return argv
    raise RuntimeError("the Procfile has no web role")


def hub_command(role: str, port: int) -> list[str]:
    if role == "procfile":
        return procfile_web(port)
    if role == "uvicorn":  # the bare way documented in hub/web.py
        return [
            str(BIN / "uvicorn"),
            "--factory",
            "hub.web:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-proxy-headers",
            "--log-level",
            "warning",
        ]
    return [str(BIN / "catalyst"), "run", "--host", "127.0.0.1", "--port", str(port)]


def hub_env(folder: Path, max_clients: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.pop("PORT", None)
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        CATALYST_DATABASE__URL=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        CATALYST_AUTH__JWT_SECRET=JWT_SECRET,
        CATALYST_SCHEDULER__ENABLED="false",
        CATALYST_CONSOLE__ENABLED="false",
        CATALYST_CONSOLE__AUTO_SUBSCRIBE="false",
        CATALYST_LOGGING__LEVEL="WARNING",
        CATALYST_LIMITS__REST_REQUESTS_PER_MINUTE="1000000",
        # Every bench client comes from 127.0.0.1.
        CATALYST_LIMITS__MAX_CONNECTIONS_PER_IP=str(max_clients + 100),
        CATALYST_API__MAX_OPEN_CONNECTIONS_PER_IP=str(max_clients + 200),
    )
    return env


def catalyst_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(BIN / "catalyst"), *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"catalyst {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


async def wait_listening(port: int, proc: asyncio.subprocess.Process, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = await asyncio.wait_for(reader.read(12), 5)
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} not up after {limit:.0f} s")
        await asyncio.sleep(0.2)


async def connected(port: int) -> int:
    """The server's open WebSocket count, from its /health."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    match = re.search(rb'"connected_clients":\s*(\d+)', body)
    return int(match.group(1)) if match else -1


async def settle(port: int) -> None:
    """Wait until the server has let go of the last run's clients."""
    for _ in range(300):
        if await connected(port) <= 0:
            return
        await asyncio.sleep(0.1)


async def run_child(argv: list[str], on_mode: Any = None) -> dict[str, Any]:
    """A client process of this script; answers its "mode" events; returns its result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None and proc.stdin is not None
    result: dict[str, Any] = {}
    while True:
        line = await proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event["event"] == "mode":
            if on_mode is not None:
                on_mode(event)
            proc.stdin.write(b"ok\n")
            await proc.stdin.drain()
        elif event["event"] == "result":
            result = event
    await proc.wait()
    if not result:
        raise RuntimeError(f"the client process failed (exit {proc.returncode})")
    return result


def storm_line(name: str, r: dict[str, Any]) -> str:
    dropped = ", ".join(f"{v} x {k}" for k, v in r["dropped"].items()) or "none"
    failed = ", ".join(f"{v} x {k}" for k, v in r["failed"].items()) or "none"
    return (
        f"  {name:<8} welcomed {r['welcomed']}/{r['clients']}, last welcome after "
        f"{r['last_welcome_s']:6.2f} s (per connect p50 {r['welcome_p50_ms']} ms, p99 "
        f"{r['welcome_p99_ms']} ms) | closed by the server in the next {r['hold_s']:.0f} s: "
        f"{dropped} | not welcomed: {failed} | pings answered: {r['pings_answered']}"
    )


async def process_bench(args: argparse.Namespace) -> None:
    """The hub as ``catalyst run`` (or the Procfile's web role with ``--web-role``)
    and the design document's server (``bench/design_server.py``), each in its own
    process, measured by the same client processes in one run."""
    role = args.web_role or "run"
    storm_sizes: list[int] = args.storm or []
    fan_sizes: list[int] = args.clients or ([] if storm_sizes else [2000, 5000])
    biggest = max(storm_sizes + fan_sizes)
    limit = raise_nofile(biggest * 2 + 2000)
    folder = Path(tempfile.mkdtemp(prefix="ws-storm-"))
    env = hub_env(folder, biggest)
    catalyst_cli(["db", "upgrade"], env, folder)
    catalyst_cli(["user", "create", "bench"], env, folder)
    out = catalyst_cli(["key", "create", "bench", "--scope", "read,publish"], env, folder)
    key = out.strip().splitlines()[-1].strip()
    hub_port, design_port = free_port(), free_port()
    command = hub_command(role, hub_port)
    hub = await asyncio.create_subprocess_exec(*command, env=env, cwd=folder)
    spy = None
    spy_out = str(Path.cwd() / args.py_spy) if args.py_spy else ""
    if args.py_spy:  # collapsed stacks of the hub process, for flamegraph.pl or a grep
        spy = await asyncio.create_subprocess_exec(
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(hub.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            # Native frames need the process stopped for each sample.
            *(["--native"] if args.py_spy_native else ["--nonblocking"]),
            "--output",
            spy_out,
            stdout=subprocess.DEVNULL,
        )
    design = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "design_server.py"),
        "--port",
        str(design_port),
        "--signals",
        "100",
        "--users",
        str(biggest),
        "--api-key",
        DESIGN_KEY,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
    )
    floor_peers: list[asyncio.Transport] = []
    floor_server = await asyncio.get_running_loop().create_server(
        lambda: FloorPeer(floor_peers), "127.0.0.1", 0, backlog=4096
    )
    floor_port = floor_server.sockets[0].getsockname()[1]
    floor_t0: dict[str, int] = {}
    summary: list[str] = []
    print(
        f"hub: {' '.join([Path(command[0]).name, *command[1:]])}"
        f" (port {hub_port}); design document's server: bench/design_server.py (port "
        f"{design_port}); RLIMIT_NOFILE {limit}; {os.cpu_count()} CPUs",
        flush=True,
    )
    try:
        await wait_listening(hub_port, hub)
        await wait_listening(design_port, design)
        for count in storm_sizes:
            lines = [
                f"storm N={count}: {args.connectors} parallel connectors, then {args.hold:.0f} s "
                "held (pings answered)"
            ]
            results = {}
            for name, port, k, per_client in (
                ("hub", hub_port, key, False),
                ("design", design_port, DESIGN_KEY, True),
            ):
                await settle(port)
                results[name] = await run_child(
                    [
                        "--storm-worker",
                        "--port",
                        str(port),
                        "--key",
                        k,
                        "--clients",
                        str(count),
                        "--connectors",
                        str(args.connectors),
                        "--hold",
                        str(args.hold),
                        *(["--per-client-keys"] if per_client else []),
                    ]
                )
                lines.append(storm_line(name, results[name]))
            hub_s = results["hub"]["last_welcome_s"]
            design_s = results["design"]["last_welcome_s"]
            lines.append(
                f"  last welcome, design / hub: {design_s / max(hub_s, 1e-9):.2f}x "
                "(above 1: the hub is faster)"
            )
            print("\n".join(lines), flush=True)
            summary.extend(lines)
        for count in fan_sizes:
            await settle(hub_port)
            await settle(design_port)
            n_rounds = args.rounds or (20 if count <= 2000 else 12)
            floor_t0.clear()
            floor_peers.clear()

            def on_mode(event: dict[str, Any]) -> None:
                if event["mode"] == "floor":
                    frame = text_frame(floor_message(event["id"]).encode())
                    floor_t0[event["id"]] = time.monotonic_ns()
                    for peer in floor_peers:
                        peer.write(frame)

            result = await run_child(
                [
                    "--worker",
                    "--port",
                    str(hub_port),
                    "--key",
                    key,
                    "--design-port",
                    str(design_port),
                    "--design-key",
                    DESIGN_KEY,
                    "--floor-port",
                    str(floor_port),
                    "--clients",
                    str(count),
                    "--rounds",
                    str(n_rounds),
                    *(["--busy-poll"] if args.busy_poll else []),
                ],
                on_mode,
            )
            lines = [
                f"fan-out N={count} ({role}): {n_rounds} signals each; connected in "
                f"{result['connect_seconds']} s (hub), {result['design_connect_seconds']} s "
                f"(design); closed early: hub {result['closed_early']}, design "
                f"{result['design_closed_early']}"
            ]
            p50s = {}
            for mode in ("hub", "design"):
                e2e = [(r["t_last"] - r["t0"]) / 1e6 for r in result[mode]]
                post = [(r["t_post"] - r["t0"]) / 1e6 for r in result[mode]]
                p50s[mode] = statistics.median(e2e)
                lines.append(
                    f"  {mode:<10}  POST sent -> last client: p50 {percentile(e2e, 50):7.1f} ms"
                    f"  p99 {percentile(e2e, 99):7.1f} ms | POST answered p50 "
                    f"{percentile(post, 50):6.1f} ms"
                )
            floor = [(r["t_last"] - floor_t0[r["id"]]) / 1e6 for r in result["floor"]]
            lines.append(
                f"  {'bare socket':<10}  first write -> last client: p50 "
                f"{percentile(floor, 50):7.1f} ms  p99 {percentile(floor, 99):7.1f} ms "
                "(no framework: this machine's floor)"
            )
            lines.append(
                f"  design / hub p50: {p50s['design'] / p50s['hub']:.2f}x (goal: 3x); "
                f"design / floor: {p50s['design'] / statistics.median(floor):.2f}x"
            )
            print("\n".join(lines), flush=True)
            summary.extend(lines)
    finally:
        floor_server.close()
        if spy is not None and spy.returncode is None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        for proc in (hub, design):
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print("\nsummary:")
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
    parser.add_argument(
        "--storm",
        type=int,
        action="append",
        metavar="N",
        help="connect storm of N clients (repeatable), against the hub and the design "
        "document's server (bench/design_server.py), each in its own process",
    )
    parser.add_argument(
        "--vs-design",
        action="store_true",
        help="fan-out against the hub in its own process (catalyst run, or --web-role) and "
        "the design document's server, same run (N from --clients, default 2000 and 5000)",
    )
    parser.add_argument(
        "--web-role",
        nargs="?",
        const="procfile",
        choices=["procfile", "uvicorn"],
        help="run the hub as the Procfile's web command (default), or as the bare "
        "`uvicorn --factory hub.web:create_app` of hub/web.py, instead of `catalyst run`",
    )
    parser.add_argument("--connectors", type=int, default=32, help="storm: parallel connectors")
    parser.add_argument(
        "--hold", type=float, default=30.0, help="storm: seconds the clients stay, pinged"
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="record the hub process with py-spy (collapsed stacks) into FILE",
    )
    parser.add_argument(
        "--py-spy-native",
        action="store_true",
        help="with --py-spy: include native frames (the garbage collector, C calls)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storm-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--per-client-keys", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--design-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--design-key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.storm_worker:
        args.clients = args.clients[0]
        asyncio.run(storm_worker(args))
        return
    if args.worker:
        args.clients = args.clients[0]
        if args.asyncio_client:
            asyncio.run(worker(args))
        else:
            lean_worker(args)
        return
    if args.storm or args.vs_design or args.web_role:
        asyncio.run(process_bench(args))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(
        bench(args.clients or [1000, 5000], args.rounds, args.asyncio_client, args.busy_poll)
    )


if __name__ == "__main__":
    main()
