"""``catalyst run`` on the embedded defaults: demo signals reach the console channel,
and SIGINT/SIGTERM stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    full_env.update(PYTHONPATH=str(ROOT), CATALYST_API__PORT="0", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run"],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not seen; output:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_embedded_defaults_deliver_demo_signals_and_stop_cleanly(tmp_path: Path, sig: int) -> None:
    proc = _start(tmp_path)
    try:
        output = _read_until(proc, "ALERT -> stdout")
        assert "catalyst hub running" in output
        assert "published" in output
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "catalyst hub stopped" in rest
    assert "Traceback" not in output + rest
    assert (tmp_path / "catalyst.db").exists()


def test_bad_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    proc = _start(tmp_path, CATALYST_SCHEDULER__INTERVAL_SECONDS="soon")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "scheduler.interval_seconds" in out and "Traceback" not in out


def test_procfile_roles_split_across_processes(tmp_path: Path) -> None:
    """The scheduler process publishes; a separate worker process delivers."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--roles", "dispatcher,bots"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")},
            "PYTHONPATH": str(ROOT),
            "CATALYST_SCHEDULER__ENABLED": "false",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _read_until(worker, "catalyst hub running (roles: bots,dispatcher")
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--roles", "scheduler"],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")},
                "PYTHONPATH": str(ROOT),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            published = _read_until(scheduler, "catalyst job: 3 published")
            assert "ALERT" not in published  # this process does not deliver
            delivered = _read_until(worker, "ALERT -> stdout")
            assert "ALERT -> stdout" in delivered
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.communicate(timeout=30)
        assert scheduler.returncode == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert worker.returncode == 0


def test_stopping_with_websocket_clients_connected_is_traceback_free(tmp_path: Path) -> None:
    """Issue 11 saw a pool-reset traceback once at shutdown with WebSocket clients
    connected. Clients busy (pongs, credential re-checks every 0.2 s, the job every
    0.3 s) when SIGTERM arrives: the stop is clean."""
    import asyncio
    import json
    import re

    import websockets

    proc = _start(
        tmp_path,
        CATALYST_SCHEDULER__INTERVAL_SECONDS="0.3",
        CATALYST_LIMITS__CREDENTIAL_CHECK_SECONDS="0.2",
        CATALYST_API__HEARTBEAT_SECONDS="0.2",
    )
    try:
        output = _read_until(proc, "API listening on")
        port = re.findall(r"API listening on http://[\d.]+:(\d+)", output)[-1]
        key_proc = subprocess.run(
            [sys.executable, "-m", "hub.cli", "key", "create", "console"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        key = key_proc.stdout.strip().splitlines()[-1]

        async def clients() -> None:
            url = f"ws://127.0.0.1:{port}/ws?token={key}"
            sockets = [await websockets.connect(url) for _ in range(20)]

            async def answer(ws: websockets.ClientConnection) -> None:
                try:
                    async for raw in ws:
                        if json.loads(raw).get("type") == "heartbeat":
                            await ws.send('{"type":"pong"}')
                except websockets.ConnectionClosed:
                    pass

            readers = [asyncio.create_task(answer(ws)) for ws in sockets]
            await asyncio.sleep(1.5)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait(readers, timeout=20)

        asyncio.run(clients())
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "catalyst hub stopped" in rest
    assert "Traceback" not in output + rest and "ERROR" not in output + rest, rest
