"""Cross-node live latency: a signal POSTed to web node 1 -> a WebSocket frame on web node 2.

    .venv/bin/python bench/cross_node.py                    # 200 signals, 20 ms apart
    .venv/bin/python bench/cross_node.py --signals 500 --spacing-ms 10
    .venv/bin/python bench/cross_node.py --pg-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/cross_node.py --logs             # the web nodes' whole logs too

Two web processes, exactly the Procfile's ``web`` role (``catalyst run --roles
api`` on two ports), share one scratch PostgreSQL database,
created on the server of ``--pg-url`` (migrated with ``catalyst db upgrade``,
dropped at the end). A WebSocket client is connected to node 2; this process
POSTs the signals to node 1 (``POST /api/v1/signals``, one keep-alive
connection, a new signal every ``--spacing-ms``) and the client stamps the
frame carrying each one. Node 2 learns of a signal only through the database:
with ``live.listen = true`` a LISTEN/NOTIFY wake (then it reads the row), with
``live.listen = false`` its poll of the signal table (``live.poll_seconds``,
0.5 s here: the old baseline). Both run in the same invocation, one after the
other, on new web processes each time, and the ratio of their p50s is printed.

What is measured. The commit happens inside node 1 somewhere between the
moment this process sends the POST (t0) and the moment the 201 is back (t1), so
for a frame stamped at t2:

* ``POST sent -> frame`` (t2 - t0) is an upper bound of commit -> frame: it
  also counts node 1 parsing, authenticating and storing the request;
* ``201 back -> frame`` (t2 - t1) is a lower bound: it leaves out whatever of
  the POST's round trip came after the commit (it is negative when the frame
  overtakes the 201);
* ``POST round trip`` (t1 - t0) is given separately.

All three processes read the same CLOCK_MONOTONIC. The first ``--warmup``
signals of each mode (connections and caches warming up) are not counted.

Why the client is the ``websockets`` library's (sync) client, in its own process
    ``bench/ws_fanout.py`` needs its lean ``selectors`` receiver because it
    measures thousands of clients per signal, where ~50 us of client overhead
    per message adds up to more than the server's own work. Here one client
    gets one small frame every 20 ms: the library's per-message cost (a reader
    thread, a queue hand-off: tens of microseconds) is under 1% of the 20 ms
    target, and in exchange the handshake, framing, control frames and the
    hub's heartbeat are handled by a conforming implementation rather than by
    the bench. It runs in a process of its own, blocking in ``recv()``, so
    nothing else (this process's publishing loop) can delay the stamp.

Every child process (the web nodes, the client) is stopped, and the scratch
database dropped, on the way out, also after Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

from bench.scratch_db import ScratchDatabase

BIN = Path(sys.executable).parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
POLL_SECONDS = 0.5
#: Log lines of the web nodes worth showing (an access log line with a 4xx or 5xx too).
ODD_LINE = re.compile(r'WARNING|ERROR|CRITICAL|Traceback|Exception|HTTP/1\.1" [45]\d\d')
SIGNAL: dict[str, Any] = {
    "ticker": "XNOD",
    "signal_type": "BUY",
    "confidence": 0.8,
    "catalyst_type": "FDA",
    "source": "bench",
    "price": 12.5,
    "headline": "cross-node latency probe",
}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# =============================================================================
# The WebSocket client (its own process: --receiver)
# =============================================================================


def receiver(url: str) -> None:
    """Print ``{"event": "ready"}`` after the welcome, then one line per signal frame
    with the monotonic time (ns) at which ``recv()`` returned it."""
    from websockets.sync.client import connect

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops this process
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out = sys.stdout
    with connect(url, open_timeout=30, max_size=2**20, compression=None) as ws:
        for raw in ws:
            now = time.monotonic_ns()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "signal":
                data = message["data"]
                line = {"event": "signal", "id": data["signal_id"], "seq": data["seq"], "t": now}
                out.write(json.dumps(line) + "\n")
                out.flush()
            elif kind == "heartbeat":
                ws.send(json.dumps({"type": "pong"}))
            elif kind == "welcome":
                out.write(json.dumps({"event": "ready"}) + "\n")
                out.flush()
            elif kind == "error":
                out.write(json.dumps({"event": "error", "message": message}) + "\n")
                out.flush()


# =============================================================================
# Processes and the scratch database
# =============================================================================


class Resources:
    """Everything the bench starts, so that every exit path stops it."""

    def __init__(self) -> None:
        self.procs: list[Any] = []  # tests.cluster.procs.Proc: the web nodes
        self.clients: list[asyncio.subprocess.Process] = []
        self.db: ScratchDatabase | None = None
        self.folder: str | None = None

    async def stop_clients(self) -> None:
        for client in self.clients:
            if client.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    client.terminate()
                try:
                    await asyncio.wait_for(client.wait(), 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        client.kill()
                    await client.wait()
        self.clients.clear()

    async def stop_nodes(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(proc.stop, 20.0)

    async def close(self) -> None:
        await self.stop_clients()
        await self.stop_nodes()
        if self.db is not None:
            try:
                await self.db.drop()
            except Exception as exc:
                print(f"warning: could not drop database {self.db.name}: {exc}", file=sys.stderr)

    def last_resort(self) -> None:
        """After the event loop is gone (a second Ctrl-C, a crash): kill and drop."""
        for client in self.clients:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(client.pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    proc.popen.wait(10)
        if self.db is not None and self.db.created:
            try:
                asyncio.run(self.db.drop())
            except Exception as exc:
                print(f"warning: could not drop database {self.db.name}: {exc}", file=sys.stderr)
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def base_env(db_url: str) -> dict[str, str]:
    """A hub process's environment: no inherited CATALYST_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.pop("PORT", None)
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        CATALYST_DATABASE__URL=db_url,
        CATALYST_DATABASE__AUTO_MIGRATE="false",  # `catalyst db upgrade` ran first
        CATALYST_AUTH__JWT_SECRET=JWT_SECRET,
        CATALYST_SCHEDULER__ENABLED="false",
        CATALYST_CONSOLE__ENABLED="false",
        CATALYST_LOGGING__LEVEL="INFO",
        # One key publishes every signal: lift the per-key REST limit (600/min).
        CATALYST_LIMITS__REST_REQUESTS_PER_MINUTE="1000000",
    )
    return env


def catalyst(args: list[str], env: dict[str, str], cwd: str) -> str:
    command = (
        [str(BIN / "catalyst")]
        if (BIN / "catalyst").exists()
        else [sys.executable, "-m", "hub.cli"]
    )
    done = subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"catalyst {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def wait_healthy(http: Any, port: int, proc: Any, limit: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + limit
    while True:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited\n{proc.report(60)}")
        with contextlib.suppress(httpx.HTTPError):
            response = await http.get(f"http://127.0.0.1:{port}/health", timeout=5)
            if response.status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} is not healthy after {limit:.0f} s\n{proc.report(60)}")
        await asyncio.sleep(0.1)


# =============================================================================
# One mode
# =============================================================================


async def measure(
    res: Resources,
    mode: str,
    live_env: dict[str, str],
    args: argparse.Namespace,
    db_url: str,
    key: str,
) -> dict[str, Any]:
    """Start node 1 and node 2 with ``live_env``, connect the client to node 2, publish
    to node 1, and return the timings (ns) per signal."""
    import httpx

    from tests.cluster.procs import Proc

    assert res.folder is not None
    env = {**base_env(db_url), **live_env}
    ports = free_ports(2)
    nodes = []
    for n, port in enumerate(ports, 1):
        command = [
            str(BIN / "catalyst"),
            "run",
            "--roles",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        proc = Proc(f"{mode} node {n}", command, env, Path(res.folder))
        res.procs.append(proc)
        nodes.append(proc)
    records: dict[str, dict[str, int]] = {}
    frames: list[tuple[str, int, int]] = []  # (signal id, seq, t) in arrival order
    errors: list[Any] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for proc, port in zip(nodes, ports, strict=True):
            await wait_healthy(http, port, proc)
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--receiver",
            f"ws://127.0.0.1:{ports[1]}/ws?token={key}",
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        res.clients.append(client)
        assert client.stdout is not None
        stdout = client.stdout
        line = await asyncio.wait_for(stdout.readline(), 30)
        if json.loads(line or b"{}").get("event") != "ready":
            raise RuntimeError(f"the WebSocket client on node 2 did not get a welcome: {line!r}")

        async def read_frames() -> None:
            while True:
                raw = await stdout.readline()
                if not raw:
                    return
                event = json.loads(raw)
                if event["event"] == "signal":
                    frames.append((event["id"], event["seq"], event["t"]))
                else:
                    errors.append(event)

        reader = asyncio.create_task(read_frames())
        publish = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports[0]}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        total = args.warmup + args.signals
        run_id = uuid.uuid4().hex[:6]
        try:
            spacing = args.spacing_ms / 1000
            start = time.monotonic() + 0.05
            for i in range(total):
                slot = start + i * spacing
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                signal_id = f"xn-{run_id}-{mode}-{i:04d}"
                t0 = time.monotonic_ns()
                response = await publish.post(
                    "/api/v1/signals", json={"signal_id": signal_id, **SIGNAL}
                )
                t1 = time.monotonic_ns()
                if response.status_code != 201:
                    raise RuntimeError(f"POST {signal_id}: {response.status_code} {response.text}")
                if i >= args.warmup:
                    records[signal_id] = {"t0": t0, "t1": t1, "seq": response.json()["seq"]}
            deadline = time.monotonic() + 30
            wanted = set(records)
            while time.monotonic() < deadline:
                if wanted <= {f[0] for f in frames}:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # let a duplicate show up, if any
        finally:
            await publish.aclose()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await res.stop_clients()
    await res.stop_nodes()
    return {"records": records, "frames": frames, "errors": errors, "nodes": nodes, "ports": ports}


def summarise(title: str, result: dict[str, Any]) -> dict[str, float]:
    records: dict[str, dict[str, int]] = result["records"]
    frames: list[tuple[str, int, int]] = result["frames"]
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for signal_id, _seq, t in frames:
        if signal_id in records:
            counts[signal_id] = counts.get(signal_id, 0) + 1
            first.setdefault(signal_id, t)
    upper = [(first[s] - r["t0"]) / 1e6 for s, r in records.items() if s in first]
    lower = [(first[s] - r["t1"]) / 1e6 for s, r in records.items() if s in first]
    post = [(r["t1"] - r["t0"]) / 1e6 for r in records.values()]
    seqs = [seq for _s, seq, _t in frames]
    in_order = all(a < b for a, b in itertools.pairwise(seqs))
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\n== {title}")
    print(
        f"   received        {len(first)}/{len(records)} on node 2, duplicates {duplicates}, "
        f"in seq order: {'yes' if in_order else 'NO'}"
    )
    if not upper:
        print("   (no frame arrived)")
        return {}

    def row(label: str, values: list[float], note: str) -> None:
        print(
            f"   {label:<22} p50 {percentile(values, 50):7.1f} ms   p90 "
            f"{percentile(values, 90):7.1f} ms   max {max(values):7.1f} ms   {note}"
        )

    row("POST sent -> frame", upper, "(upper bound of commit -> frame)")
    row("201 back -> frame", lower, "(lower bound: the commit precedes the 201)")
    row("POST round trip", post, "(node 1: request -> 201)")
    if result["errors"]:
        print(f"   client errors   {result['errors'][:3]}")
    return {"upper": percentile(upper, 50), "lower": percentile(lower, 50)}


def print_node_oddities(procs: list[Any], limit: int = 30) -> None:
    print("\nweb node logs: warnings, errors, tracebacks, 4xx/5xx answers")
    shown = 0
    for proc in procs:
        odd = [line for line in proc.lines if ODD_LINE.search(line)]
        code = proc.popen.poll()
        print(f"   {proc.name} (exit {code}): {len(odd)} line(s) of {len(proc.lines)}")
        for line in odd:
            if shown >= limit:
                break
            print(f"     {line[:240]}")
            shown += 1


async def bench(args: argparse.Namespace, res: Resources) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        res.db = db = ScratchDatabase(args.pg_url, "catalyst_bench_xn")
        await db.create()
        res.folder = folder = tempfile.mkdtemp(prefix="cross-node-")
        env = base_env(db.url)
        await asyncio.to_thread(catalyst, ["db", "upgrade"], env, folder)
        await asyncio.to_thread(catalyst, ["user", "create", "bench"], env, folder)
        out = await asyncio.to_thread(
            catalyst, ["key", "create", "bench", "--scope", "read,feedback,publish"], env, folder
        )
        key = out.strip().splitlines()[-1]
        print(
            f"{os.cpu_count()} CPUs; PostgreSQL database {db.name}; two web nodes "
            "(catalyst run --roles api); POST /api/v1/signals to node 1, "
            "a WebSocket client (websockets sync client, own process) on node 2"
        )
        print(
            f"{args.signals} signals per mode, one every {args.spacing_ms:g} ms "
            f"(+{args.warmup} warm-up, not counted); t0 = POST sent, t1 = 201 back, "
            "t2 = frame received on node 2; the commit lies between t0 and t1"
        )
        modes = [
            (
                "listen",
                "LISTEN/NOTIFY (CATALYST_LIVE__LISTEN=true)",
                {"CATALYST_LIVE__LISTEN": "true"},
            ),
            (
                "poll",
                f"polling (CATALYST_LIVE__LISTEN=false CATALYST_LIVE__POLL_SECONDS={POLL_SECONDS:g})",
                {
                    "CATALYST_LIVE__LISTEN": "false",
                    "CATALYST_LIVE__POLL_SECONDS": str(POLL_SECONDS),
                },
            ),
        ]
        p50s: dict[str, dict[str, float]] = {}
        for mode, title, live_env in modes:
            result = await measure(res, mode, live_env, args, db.url, key)
            p50s[mode] = summarise(title, result)
        listen, poll = p50s.get("listen"), p50s.get("poll")
        if listen and poll:
            print(
                f"\npolling / LISTEN p50 ratio: {poll['upper'] / listen['upper']:.1f}x "
                f"(POST sent -> frame: {poll['upper']:.1f} ms vs {listen['upper']:.1f} ms); "
                f"201 back -> frame: {poll['lower']:.1f} ms vs {listen['lower']:.1f} ms"
            )
            goal = "met" if listen["upper"] <= 20 else "NOT met"
            print(f"goal p50 <= 20 ms with LISTEN/NOTIFY (upper bound): {goal}")
    finally:
        await res.close()
        if res.procs:
            print_node_oddities(res.procs)
        if args.logs:
            for proc in res.procs:
                print(f"\n{proc.report(10_000)}", end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--signals", type=int, default=200, help="signals per mode (200)")
    parser.add_argument("--spacing-ms", type=float, default=20.0, help="between POSTs (20)")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted first signals (5)")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help=f"the scratch database is created on this URL's server (default {DEFAULT_PG_URL})",
    )
    parser.add_argument("--logs", action="store_true", help="print the web nodes' whole logs")
    parser.add_argument("--receiver", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver(args.receiver)
        return
    if args.signals < 1 or args.spacing_ms < 0 or args.warmup < 0:
        parser.error("--signals must be positive, --spacing-ms and --warmup not negative")
    res = Resources()
    try:
        asyncio.run(bench(args, res))
    except KeyboardInterrupt:
        print("\ninterrupted; child processes stopped, scratch database dropped", file=sys.stderr)
        raise SystemExit(130) from None
    except asyncio.CancelledError:  # SIGTERM
        print("\nterminated; child processes stopped, scratch database dropped", file=sys.stderr)
        raise SystemExit(143) from None
    finally:
        res.last_resort()


if __name__ == "__main__":
    main()
