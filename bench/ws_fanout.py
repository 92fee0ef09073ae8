"""WebSocket fan-out benchmark: publish-to-last-client latency for N clients.

    .venv/bin/python bench/ws_fanout.py                 # N = 1000 and 5000
    .venv/bin/python bench/ws_fanout.py --clients 200 --rounds 10

The hub and its API server run in this process (uvicorn in the event loop, as
``catalyst run`` does). The N WebSocket clients run in a separate process that
also publishes: for each round it records t0, POSTs a signal to
``/api/v1/signals``, and records when each client received it (one monotonic
clock, shared by both processes' measurements). The figure per round is the
time from t0 until the last of the N clients has the signal.

Each N runs twice: with the manager's concurrent broadcast (serialize once,
per-client queues and sender tasks), then with the sequential baseline
(``ConnectionManager.sequential_broadcast``: serialize per client and await each
send in turn, as the design document's sketch does). The ratio of the p50s is
printed.

The client process uses a small hand-written WebSocket client (an asyncio
Protocol that parses server frames in place) so that the measuring side costs
a few microseconds per message and the figures describe the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
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


async def open_clients(
    port: int, key: str, count: int, arrivals: dict[str, list[int]]
) -> list[BenchClient]:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    clients: list[BenchClient] = []
    gate = asyncio.Semaphore(64)

    async def one() -> None:
        async with gate:
            _transport, client = await loop.create_connection(
                lambda: BenchClient(f"/ws?token={key}", host, arrivals), "127.0.0.1", port
            )
            await asyncio.wait_for(client.welcomed, 60)
            clients.append(client)

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
    result = {"connect_seconds": round(connect_s, 2), "closed_early": closed_early, **records}
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


async def bench(sizes: list[int], rounds: int | None) -> None:
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
        api={"heartbeat_seconds": 3600, "heartbeat_timeout_seconds": 7200},
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
    print(f"server on 127.0.0.1:{server.port}; RLIMIT_NOFILE {limit}; {os.cpu_count()} CPUs")
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
                f"N={count}: {n_rounds} signals per mode, clients connected in "
                f"{result['connect_seconds']} s, closed early: {result['closed_early']}"
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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.clients = args.clients[0]
        asyncio.run(worker(args))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(bench(args.clients or [1000, 5000], args.rounds))


if __name__ == "__main__":
    main()
