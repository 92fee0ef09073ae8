"""No secret in any log of any role: real subprocesses of the Procfile's web role as
it stands (``uvicorn --factory hub.web:create_app``, at uvicorn's most verbose
level) and as recommended (``catalyst run --roles api --host --port``), each sent
an API key in ``?token=`` on /ws, in query parameters and a path on REST, and a JWT
in ``?token=``. The ``catalyst run`` one also shows the connection-level edge is
installed there (a request head that never ends is closed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import websockets

from tests.security.edge_support import close_raw, closed_within, open_raw

ROOT = Path(__file__).resolve().parents[2]
BAD_KEY = "catalyst_" + "B" * 43


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "hub.db"}"\n'
        '[auth]\njwt_secret = "edge-logs-secret-0123456789abcdefghijklmnop"\n'
        "[scheduler]\nenabled = false\n"
        "[console]\nauto_subscribe = false\n"
        '[logging]\nlevel = "DEBUG"\n',
        encoding="utf-8",
    )
    return cfg


def _env(cfg: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.update(CATALYST_CONFIG=str(cfg), NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _create_key(cfg: Path) -> str:
    for args in (["user", "create", "alice"], ["key", "create", "alice", "--scope", "read"]):
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "--config", str(cfg), *args],
            cwd=ROOT,
            env=_env(cfg),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.split() if line.startswith("catalyst_"))


@contextmanager
def _serving(command: list[str], env: dict[str, str], out: Path) -> Iterator[list[str]]:
    """Run ``command``; on exit stop it (SIGTERM) and put its whole output in the list."""
    output: list[str] = []
    with out.open("w+", encoding="utf-8") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield output
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            sink.seek(0)
            output.append(sink.read())


async def _wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(300):
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{base} never became healthy")


async def _probe(port: int, key: str) -> str:
    """Send the key everywhere a client might put it; the JWT it was exchanged for."""
    base = f"http://127.0.0.1:{port}"
    ws = f"ws://127.0.0.1:{port}/ws"
    await _wait_ready(base)
    async with websockets.connect(f"{ws}?token={key}", open_timeout=10) as conn:
        assert json.loads(await conn.recv())["type"] == "welcome"
    async with websockets.connect(f"{ws}?token={BAD_KEY}", open_timeout=10) as conn:
        assert json.loads(await conn.recv())["type"] == "error"
    async with websockets.connect(ws, open_timeout=10) as conn:
        await conn.send(json.dumps({"type": "auth", "token": key}))
        assert json.loads(await conn.recv())["type"] == "welcome"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        bearer = {"Authorization": f"Bearer {key}"}
        assert (await client.get(f"/api/v1/signals?limit=1&api_key={key}")).status_code == 401
        assert (await client.get(f"/api/v1/signals?note={key}")).status_code == 401
        assert (await client.get(f"/api/v1/signals?token={BAD_KEY}")).status_code == 401
        assert (await client.get(f"/files/{key}")).status_code == 404
        assert (await client.get("/api/v1/signals", headers=bearer)).status_code == 200
        token = (await client.post("/api/v1/auth/token", headers=bearer)).json()["access_token"]
        assert (await client.get(f"/api/v1/signals?limit=1&access_token={token}")).status_code
        async with websockets.connect(f"{ws}?token={token}", open_timeout=10) as conn:
            assert json.loads(await conn.recv())["type"] == "welcome"
    return str(token)


def _assert_clean(output: str, *secrets: str) -> None:
    """No secret, nor any 16-character piece of its random part (libraries truncate
    long values in the middle), nor a traceback."""
    for secret in secrets:
        random_part = secret.rsplit(".", 1)[-1].removeprefix("catalyst_")  # a JWT's signature
        pieces = [random_part[i : i + 16] for i in range(len(random_part) - 15)]
        leaked = [p for p in [secret, *pieces] if p in output]
        assert not leaked, f"a secret reached the log ({leaked[0]!r}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]


async def test_web_role_uvicorn_factory_logs_no_secret(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    key = _create_key(cfg)
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "hub.web:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "trace",
    ]  # fmt: skip
    with _serving(command, _env(cfg), tmp_path / "web.log") as output:
        token = await _probe(port, key)
    text = output[0]
    assert "GET /api/v1/signals?limit=1&api_key=***" in text, text[-4000:]  # the access log
    assert "/ws?token=***" in text
    _assert_clean(text, key, BAD_KEY, token)


async def test_catalyst_run_api_role_logs_no_secret_and_has_the_edge(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    key = _create_key(cfg)
    port = _free_port()
    command = [
        sys.executable, "-m", "hub.cli", "--config", str(cfg),
        "run", "--roles", "api", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = _env(cfg, CATALYST_API__HEADER_TIMEOUT_SECONDS="1")
    with _serving(command, env, tmp_path / "run.log") as output:
        token = await _probe(port, key)
        reader, writer = await open_raw(port, b"GET /hea")
        try:
            assert await closed_within(reader, 4) is not None, "slowloris under catalyst run"
        finally:
            close_raw(writer)
    text = output[0]
    assert f"API listening on http://127.0.0.1:{port}" in text, text[-4000:]
    _assert_clean(text, key, BAD_KEY, token)
