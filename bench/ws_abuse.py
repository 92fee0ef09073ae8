"""One abusive WebSocket client against N normal ones: does it move their latency?

    .venv/bin/python bench/ws_abuse.py                       # 50 clients, every abuse
    .venv/bin/python bench/ws_abuse.py --clients 200 --cycles 5 --abuse resume,reconnect
    .venv/bin/python bench/ws_abuse.py --database-url postgresql://postgres@127.0.0.1:5432/test

The hub runs in this process as ``catalyst run --roles api`` does (uvicorn in the
hub's event loop, the live tail started) on a fresh SQLite database (or the given
PostgreSQL one: its ``public`` schema is dropped first) holding ``--backlog``
stored signals. N normal clients connect from a second process and stamp each
signal frame as it arrives (``time.monotonic_ns``, one clock for every process on
Linux). This process publishes signals one by one (``ctx.publisher.publish``:
store, route, announce) and stamps each just before; the figure is publish ->
receive, over every (client, signal) pair, and publish -> last client per signal.

Phases alternate in the same run, ``--cycles`` times: *quiet* (only the normal
clients); *busy neighbour*, a control: a third process that only spins a CPU (on
a 2-CPU machine any busy process costs the hub and the clients some latency; this
is that floor); and *abuse*, during which that third process is one abusive
client running every attack of ``--abuse`` at once, each on its own connection,
reconnecting whenever the hub closes it:

* ``resume``: ``resume`` requests back to the start of the backlog, in a loop;
* ``reconnect``: connect with ``?after_seq=`` far back, take the replay, hang up,
  again (a resume loop that per-connection limits cannot see);
* ``subscribe``: bursts of 400 ``subscribe`` frames, hanging up after each burst;
* ``pong``: 60 KB pongs, as fast as the socket takes them;
* ``deep``: 60 KB frames of nested JSON arrays, as fast as the socket takes them.

Also printed: the hub's event-loop lag (how late a 10 ms sleep wakes up) per
phase, and what happened to the abuser (connections, close codes, frames sent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
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
ABUSES = ("resume", "reconnect", "subscribe", "pong", "deep")
SIGNAL_ID = re.compile(rb'"signal_id":"([^"]+)"')


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ---- the normal clients (a process of their own) --------------------------------------


async def clients_main(args: argparse.Namespace) -> None:
    import websockets

    url = f"ws://127.0.0.1:{args.port}/ws?token={args.key}"
    arrivals: list[dict[str, int]] = [{} for _ in range(args.clients)]
    done = asyncio.Event()
    finished = 0

    async def run(index: int, ws: Any) -> None:
        nonlocal finished
        seen = arrivals[index]
        async for raw in ws:
            now = time.monotonic_ns()
            data = raw.encode() if isinstance(raw, str) else raw
            match = SIGNAL_ID.search(data)
            if match is None:
                continue
            sid = match.group(1).decode()
            seen[sid] = now
            if sid == "end":
                finished += 1
                if finished == args.clients:
                    done.set()
                return

    sockets = []
    for _ in range(args.clients):
        ws = await websockets.connect(url, max_size=None, open_timeout=30)
        json.loads(await ws.recv())  # welcome
        sockets.append(ws)
    tasks = [asyncio.create_task(run(i, ws)) for i, ws in enumerate(sockets)]
    print(json.dumps({"event": "ready"}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), args.seconds)
    for task in tasks:
        task.cancel()
    for ws in sockets:
        with contextlib.suppress(Exception):
            await ws.close()
    print(json.dumps({"event": "result", "arrivals": arrivals}), flush=True)


# ---- the abusive client (a process of its own) -------------------------------------------


async def abuser_main(args: argparse.Namespace) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed

    base = f"ws://127.0.0.1:{args.port}/ws?token={args.key}"
    far_back = max(0, args.newest - args.reach + 1)
    stats: Counter[str] = Counter()
    deadline = time.monotonic() + args.seconds
    big_pong = json.dumps({"type": "pong", "pad": "x" * 60_000})
    deep = "[" * 30_000 + "]" * 30_000
    burst = [json.dumps({"type": "subscribe", "filters": {"tickers": ["ABUSE"]}})] * 400

    async def drain(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                stats["frames received"] += 1

    async def session(kind: str) -> None:
        url = base + (f"&after_seq={far_back}" if kind == "reconnect" else "")
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            stats["connections"] += 1
            if kind == "reconnect":
                async for raw in ws:  # the replay, up to "resumed" (or an error)
                    stats["frames received"] += 1
                    if '"type":"resumed"' in raw or '"type":"error"' in raw:
                        return
                return
            reader = asyncio.create_task(drain(ws))
            try:
                while time.monotonic() < deadline and not reader.done():
                    if kind == "resume":
                        await ws.send(json.dumps({"type": "resume", "after_seq": far_back}))
                        stats["frames sent"] += 1
                        await asyncio.sleep(0.02)
                    elif kind == "subscribe":
                        for frame in burst:
                            await ws.send(frame)
                        stats["frames sent"] += len(burst)
                        return  # hang up right after the burst
                    else:
                        await ws.send(big_pong if kind == "pong" else deep)
                        stats["frames sent"] += 1
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                if ws.close_code is not None:
                    stats[f"closed by the hub {ws.close_code}"] += 1

    async def loop(kind: str) -> None:
        while time.monotonic() < deadline:
            try:
                await session(kind)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                stats[f"closed {code}"] += 1
            except Exception as exc:
                stats[f"error {type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)

    print(json.dumps({"event": "started"}), flush=True)
    if args.abuse == "spin":  # the control: a busy process that leaves the hub alone
        while time.monotonic() < deadline:
            sum(range(10_000))
            stats["spins"] += 1
        print(json.dumps({"event": "result", "stats": {}}), flush=True)
        return
    await asyncio.gather(*(loop(kind) for kind in args.abuse.split(",")))
    print(json.dumps({"event": "result", "stats": dict(stats)}), flush=True)


# ---- the hub and the measurement ------------------------------------------------------------


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=str(ROOT),
        limit=1 << 26,  # the clients' result is one long JSON line
    )


async def expect(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a bench process exited early (waiting for {event!r})")
        data: dict[str, Any] = json.loads(line)
        if data.get("event") == event:
            return data


async def reset_postgres(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from core.settings import Settings

    engine = create_async_engine(Settings(database={"url": url}).database.url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def bench(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from core.settings import Settings
    from hub.runtime import Hub

    folder = Path(tempfile.mkdtemp(prefix="ws-abuse-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    if args.database_url:
        await reset_postgres(args.database_url)
    settings = Settings(
        database={"url": url},
        auth={"jwt_secret": "bench-secret-" + "x" * 40},
        console={"enabled": False, "auto_subscribe": False},
        scheduler={"enabled": False},
        dispatcher={"enabled": False},
        api={"port": 0, "heartbeat_seconds": 3600, "heartbeat_timeout_seconds": 7200},
        limits={
            "max_connections_per_ip": args.clients + 100,
            "rest_requests_per_minute": 1_000_000,
        },
    )
    hub = Hub(settings, frozenset({"api"}))
    ctx = await hub.start()
    port = hub.api_server.port
    normal_user = await ctx.services.accounts.create_user("trader")
    normal_key, _ = await ctx.auth.create_key(normal_user.id, ("read",))
    bad_user = await ctx.services.accounts.create_user("abuser")
    bad_key, _ = await ctx.auth.create_key(bad_user.id, ("read", "feedback"))

    started = time.monotonic()
    for i in range(args.backlog):
        await ctx.publisher.publish(
            {
                "signal_id": f"backlog-{i}",
                "ticker": "ABCD",
                "confidence": 0.7,
                "headline": "H" * 200,
                "metadata": {"i": i, "note": "x" * 300},
            }
        )
    newest = await ctx.services.signals.latest_seq()
    backlog_s = time.monotonic() - started

    lags: list[float] = []

    async def watch_loop() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - t - 0.01) * 1000)

    watcher = asyncio.create_task(watch_loop())
    phase_seconds = args.signals * args.interval
    clients = await spawn(
        "--role",
        "clients",
        "--port",
        str(port),
        "--key",
        normal_key,
        "--clients",
        str(args.clients),
        "--seconds",
        str(args.cycles * 3 * (phase_seconds + 5) + 60),
    )
    await expect(clients, "ready")
    sent: dict[str, tuple[str, int]] = {}
    phases = ("quiet", "busy", "abuse")
    lag_by_phase: dict[str, list[float]] = {phase: [] for phase in phases}
    #: How long ``publish`` itself took (store, route, commit, announce).
    commit: dict[str, list[float]] = {phase: [] for phase in phases}
    abuser_stats: Counter[str] = Counter()
    try:
        for cycle in range(args.cycles):
            for phase in phases:
                abuser = None
                if phase != "quiet":
                    abuser = await spawn(
                        "--role",
                        "abuser",
                        "--port",
                        str(port),
                        "--key",
                        bad_key,
                        "--newest",
                        str(newest),
                        "--reach",
                        str(args.reach),
                        "--abuse",
                        args.abuse if phase == "abuse" else "spin",
                        "--seconds",
                        str(phase_seconds + args.warmup + 0.5),
                    )
                    await expect(abuser, "started")
                    await asyncio.sleep(args.warmup)
                del lags[:]
                for k in range(args.signals):
                    sid = f"{phase}-{cycle}-{k}"
                    t0 = time.monotonic_ns()
                    sent[sid] = (phase, t0)
                    await ctx.publisher.publish(
                        {"signal_id": sid, "ticker": "ABCD", "confidence": 0.8}
                    )
                    commit[phase].append((time.monotonic_ns() - t0) / 1e6)
                    await asyncio.sleep(args.interval)
                lag_by_phase[phase].extend(lags)
                if abuser is not None:
                    result = await expect(abuser, "result")
                    abuser_stats.update(result["stats"])
                    await abuser.wait()
                await asyncio.sleep(0.5)
        await ctx.publisher.publish({"signal_id": "end", "ticker": "ABCD", "confidence": 0.8})
        arrivals = (await expect(clients, "result"))["arrivals"]
        await clients.wait()
    finally:
        watcher.cancel()
        if clients.returncode is None:
            clients.kill()
        await hub.stop()

    pairs: dict[str, list[float]] = {phase: [] for phase in phases}
    last: dict[str, list[float]] = {phase: [] for phase in phases}
    missing = Counter[str]()
    for sid, (phase, t0) in sent.items():
        times = [seen[sid] for seen in arrivals if sid in seen]
        missing[phase] += args.clients - len(times)
        pairs[phase].extend((t - t0) / 1e6 for t in times)
        if times:
            last[phase].append((max(times) - t0) / 1e6)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"ws_abuse: {args.clients} clients, {args.signals} signals per phase x {args.cycles} "
        f"cycles, every {args.interval * 1000:.0f} ms; {database} with {args.backlog} stored "
        f"signals (loaded in {backlog_s:.0f} s); abuser: {args.abuse}; {os.cpu_count()} CPUs"
    )
    print(
        f"  {'':<24} {'publish -> receive (each client)':<36} "
        f"{'publish -> last client':<28} loop lag p99   publish() p50/p99"
    )
    rows = {}
    labels = {
        "quiet": "quiet (no abuser)",
        "busy": "busy neighbour (control)",
        "abuse": "abusive client running",
    }
    for phase, label in labels.items():
        p = pairs[phase]
        lst = last[phase]
        lag = lag_by_phase[phase]
        rows[phase] = (percentile(p, 50), percentile(p, 99), percentile(lst, 50))
        print(
            f"  {label:<24} p50 {percentile(p, 50):7.1f} ms  p99 {percentile(p, 99):7.1f} ms   "
            f"p50 {percentile(lst, 50):7.1f} ms  p99 {percentile(lst, 99):7.1f} ms   "
            f"{percentile(lag, 99):6.1f} ms   {percentile(commit[phase], 50):5.1f}/"
            f"{percentile(commit[phase], 99):.1f} ms   (missed {missing[phase]})"
        )
    quiet, busy, abuse = rows["quiet"], rows["busy"], rows["abuse"]
    for name, base in (("quiet", quiet), ("busy neighbour", busy)):
        print(
            f"  abuse - {name}: p50 {abuse[0] - base[0]:+.1f} ms, p99 {abuse[1] - base[1]:+.1f} ms,"
            f" last-client p50 {abuse[2] - base[2]:+.1f} ms"
        )
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(abuser_stats.items()))
    print(f"  abuser: {shown}")
    if lag_by_phase["abuse"]:
        print(
            f"  loop lag during abuse: p50 {statistics.median(lag_by_phase['abuse']):.1f} ms, "
            f"max {max(lag_by_phase['abuse']):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="normal clients (default 50)")
    parser.add_argument("--signals", type=int, default=40, help="signals per phase")
    parser.add_argument("--cycles", type=int, default=3, help="quiet/abuse phase pairs")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between signals")
    parser.add_argument("--backlog", type=int, default=5000, help="signals stored beforehand")
    parser.add_argument(
        "--reach", type=int, default=5000, help="how far back the abuser resumes, in signals"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="abuse before measuring, s")
    parser.add_argument(
        "--abuse", default=",".join(ABUSES), help=f"comma-separated, of {','.join(ABUSES)}"
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (schema dropped!)")
    parser.add_argument("--role", default="hub", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--newest", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.abuse.split(",")) - {*ABUSES, "spin"}
    if unknown:
        parser.error(f"unknown abuse {', '.join(sorted(unknown))}; use {', '.join(ABUSES)}")
    if args.role == "clients":
        asyncio.run(clients_main(args))
    elif args.role == "abuser":
        asyncio.run(abuser_main(args))
    else:
        import logging

        logging.basicConfig(level=logging.WARNING)
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
