"""REST read benchmark: ``GET /api/v1/signals?limit=50``, the hub against the design
document's in-memory server, same load generator, one run.

    flock /tmp/catalyst-bench.lock .venv/bin/python bench/rest_read.py
    flock /tmp/catalyst-bench.lock .venv/bin/python bench/rest_read.py --duration 10 --rounds 2
    ... bench/rest_read.py --database-url postgresql://postgres@127.0.0.1:5432/bench

The hub runs as ``catalyst run --roles api`` (a subprocess, as the Procfile's web
role) on a temporary SQLite database (or ``--database-url``) pre-filled with
``--signals`` signals, a user and a read key; the REST rate limit is lifted so the
bench measures serving, not 429s. ``bench/design_server.py`` runs beside it with
the same signals (same content) in memory. Both get the same load from a separate
load-generator process: a raw-socket HTTP/1.1 keep-alive client on asyncio (uvloop
when installed), ``--connections`` concurrent connections for ``--duration``
seconds, then one connection for the same time; phases alternate between the two
servers, ``--rounds`` times, after a warm-up. Printed per server: requests/s and
p50/p99 latency per phase, and the ratio hub / design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))
PATH = "/api/v1/signals?limit=50"
JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


# ----------------------------------------------------------------------------- load generator


async def _one_connection(
    port: int, request: bytes, deadline: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


async def _load(port: int, key: str, connections: int, duration: float) -> dict[str, Any]:
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(_one_connection(port, request, deadline, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors[:5], "error_count": len(errors), "s": elapsed}


def worker_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(args.port, args.key, args.connections, args.duration))
    # To a file, not stdout: a large result on a pipe once arrived with a stray
    # newline at 128 KiB, and the phase's figures were lost.
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


def load(port: int, key: str, connections: int, duration: float) -> dict[str, Any]:
    """One phase, from a separate process (the generator never shares a core's loop
    with a server)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--worker",
                "--out",
                str(out),
                "--port",
                str(port),
                "--key",
                key,
                "--connections",
                str(connections),
                "--duration",
                str(duration),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, key: str, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{PATH}", headers={"Authorization": f"Bearer {key}"}
            )
            with urllib.request.urlopen(req, timeout=2) as response:
                body = json.loads(response.read())
                if response.status == 200 and len(body) == 50:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} did not answer within 60 s")


async def prefill(url: str, count: int) -> str:
    """Migrate, publish ``count`` signals (the design server's content), and return
    a read key of a new user."""
    from bench.design_server import sample_signal
    from core.settings import Settings
    from hub.build import build_context, prepare_database

    settings = Settings(database={"url": url}, auth={"jwt_secret": JWT_SECRET})
    ctx = build_context(settings)
    try:
        await prepare_database(ctx, force=True)
        run = datetime.now(UTC).strftime("%H%M%S%f")
        now = datetime.now(UTC).replace(tzinfo=None)
        for i in range(count):
            data = sample_signal(i, now)
            data["signal_id"] = f"{data['signal_id']}-{run}"
            data["timestamp"] = (now - timedelta(seconds=10_000 - i)).replace(tzinfo=UTC)
            await ctx.publisher.publish(data)
        user = await ctx.services.accounts.create_user(f"bench-{run}")
        key, _info = await ctx.auth.create_key(user.id, ("read",))
        return key
    finally:
        await ctx.dispatcher.stop()
        await ctx.db.dispose()


def summarize(result: dict[str, Any]) -> dict[str, float]:
    lat = sorted(result["latencies"])
    if not lat:
        return {"rps": 0.0, "p50": 0.0, "p99": 0.0, "n": 0, "errors": result["error_count"]}
    return {
        "rps": len(lat) / result["s"],
        "p50": statistics.median(lat) * 1000,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "n": len(lat),
        "errors": result["error_count"],
    }


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "latencies": [x for r in results for x in r["latencies"]],
        "s": sum(r["s"] for r in results),
        "error_count": sum(r["error_count"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    folder = Path(tempfile.mkdtemp(prefix="rest-read-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'hub.db'}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(
            f"pre-filling {args.signals} signals ({'PostgreSQL' if args.database_url else 'SQLite'})"
        )
        key = asyncio.run(prefill(url, args.signals))
        hub_port, design_port = free_port(), free_port()
        env = {
            **os.environ,
            "CATALYST_DATABASE__URL": url,
            "CATALYST_AUTH__JWT_SECRET": JWT_SECRET,
            "CATALYST_LIMITS__REST_REQUESTS_PER_MINUTE": str(10**9),
            "CATALYST_LOGGING__LEVEL": "WARNING",
        }
        env.pop("CATALYST_CONFIG", None)  # only these settings (cwd has no config.toml)
        catalyst = shutil.which("catalyst", path=str(Path(sys.executable).parent)) or "catalyst"
        hub = subprocess.Popen(
            [catalyst, "run", "--roles", "api", "--host", "127.0.0.1", "--port", str(hub_port)],
            env=env,
            cwd=folder,
        )
        procs.append(hub)
        design = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "design_server.py"),
                "--port",
                str(design_port),
                "--signals",
                str(args.signals),
                "--api-key",
                key,
            ],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        procs.append(design)
        wait_ready(hub_port, key, hub, "the hub")
        wait_ready(design_port, key, design, "the design server")
        servers = {"design": design_port, "hub": hub_port}
        for port in servers.values():  # warm-up
            load(port, key, args.connections, 1.0)
        phases: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_no in range(args.rounds):
            order = list(servers.items())
            if round_no % 2:
                order.reverse()
            for conns in (args.connections, 1):
                for name, port in order:
                    result = load(port, key, conns, args.duration)
                    phases.setdefault((name, conns), []).append(result)
                    s = summarize(result)
                    print(
                        f"  round {round_no + 1} {name:6} {conns:2} conn: {s['rps']:8.0f} req/s  "
                        f"p50 {s['p50']:6.2f} ms  p99 {s['p99']:6.2f} ms  errors {s['errors']}"
                    )
        print()
        print(f"GET {PATH}, {args.signals} signals, {args.rounds} x {args.duration:g} s per phase")
        for conns in (args.connections, 1):
            rows = {name: summarize(merge(phases[(name, conns)])) for name in servers}
            for name, s in rows.items():
                print(
                    f"{name:6} {conns:2} conn: {s['rps']:8.0f} req/s  p50 {s['p50']:6.2f} ms  "
                    f"p99 {s['p99']:6.2f} ms  ({s['n']} requests, {s['errors']} errors)"
                )
            ratio = rows["hub"]["rps"] / rows["design"]["rps"] if rows["design"]["rps"] else 0
            print(f"ratio hub/design at {conns} connection(s): {ratio:.2f}x")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
