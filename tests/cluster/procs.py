"""Helpers for multi-process tests: hub role processes on one PostgreSQL database.

* :func:`hub_env` builds a child environment (no inherited ``CATALYST_*``) for a database.
* :class:`Proc` runs one process, collects its output on a thread (so an async test
  never blocks its event loop reading pipes) and stops it with SIGTERM, then SIGKILL.
* :class:`Cluster` starts role processes and CLI commands and stops everything it
  started when the test ends, whatever happens.
* :class:`WsFollower` is a WebSocket client that keeps every signal it gets and,
  when asked, reconnects with ``?after_seq=<last seq>`` after the server closes it.
* :class:`SlowBotApi` is the fake Telegram Bot API with a ``sendMessage`` delay and
  a count of overlapping ``getUpdates`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from aiohttp import web

from tests.telegram import fake_bot_api as fake_api
from tests.telegram.fake_bot_api import FakeBotApi, SentMessage

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: catalyst, uvicorn, honcho
JWT_SECRET = "cluster-test-secret-0123456789-abcdefghijklmnopq"  # 48 characters
assert len(JWT_SECRET) == 48


def hub_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment for a hub process on ``db_url``: scheduler and console off,
    quick leader checks, migrations already applied (run ``db upgrade`` first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.pop("PORT", None)
    env.update(
        PYTHONPATH=str(ROOT),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        CATALYST_DATABASE__URL=db_url,
        CATALYST_DATABASE__AUTO_MIGRATE="false",
        CATALYST_AUTH__JWT_SECRET=JWT_SECRET,
        CATALYST_SCHEDULER__ENABLED="false",
        CATALYST_CONSOLE__ENABLED="false",
        CATALYST_CLUSTER__LOCK_CHECK_SECONDS="0.5",
        CATALYST_CLUSTER__STANDBY_RETRY_SECONDS="0.5",
        CATALYST_DISPATCHER__POLL_SECONDS="0.2",
    )
    env.update(extra)
    return env


def telegram_env(fake: FakeBotApi) -> dict[str, str]:
    return {
        "CATALYST_TELEGRAM__ENABLED": "true",
        "CATALYST_TELEGRAM__TOKEN": fake.token,
        "CATALYST_TELEGRAM__BASE_URL": fake.base_url,
        "CATALYST_TELEGRAM__BASE_FILE_URL": fake.base_file_url,
    }


def free_port(consecutive: int = 1) -> int:
    """A port with ``consecutive`` free ports from it (bound and released, so
    another process could still take one: good enough on a test machine)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + consecutive > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + consecutive):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {consecutive} consecutive free ports found")


class Proc:
    """One child process with its combined stdout/stderr collected line by line."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.args = args
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: SIGKILL reaches its children
        )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def report(self, tail: int = 300) -> str:
        with self._cond:
            lines = self.lines[-tail:]
        state = self.popen.poll()
        return f"----- {self.name} (pid {self.pid}, exit {state}) -----\n" + "\n".join(lines) + "\n"

    def count(self, pattern: str) -> int:
        with self._cond:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def find(self, pattern: str) -> list[re.Match[str]]:
        with self._cond:
            return [m for line in self.lines if (m := re.search(pattern, line))]

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Block until a line matches ``pattern`` (a regex); fail if the process ends first."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while True:
                while index < len(self.lines):
                    match = re.search(pattern, self.lines[index])
                    index += 1
                    if match:
                        return match
                if self.popen.poll() is not None and not self._reader.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        raise AssertionError(f"{self.name}: no line matching {pattern!r}\n{self.report()}")

    async def await_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """:meth:`wait_line` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_line, pattern, timeout)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL (to the whole process group) after ``timeout``."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                # Still alive, so its group id is still ours: take its children too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._reader.join(5)
        code = self.popen.returncode
        assert code is not None
        return code

    async def astop(self, timeout: float = 15.0) -> int:
        """:meth:`stop` without blocking the event loop (where the fakes it talks to run)."""
        return await asyncio.to_thread(self.stop, timeout)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class Cluster:
    """Starts hub processes for one test; :meth:`close` stops every one of them."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        return hub_env(self.db_url, **extra)

    def start(self, name: str, args: list[str], **env: str) -> Proc:
        proc = Proc(name, args, self.env(**env), self.workdir)
        self.procs.append(proc)
        return proc

    def start_role(self, name: str, roles: str, **env: str) -> Proc:
        return self.start(name, [sys.executable, "-m", "hub.cli", "run", "--roles", roles], **env)

    def start_api(self, name: str = "api", **env: str) -> Proc:
        return self.start_role(name, "api", CATALYST_API__PORT="0", **env)

    @staticmethod
    def api_port(proc: Proc, timeout: float = 30.0) -> int:
        match = proc.wait_line(r"API listening on http://[\d.]+:(\d+)", timeout)
        return int(match.group(1))

    def cli(self, *args: str, timeout: float = 60.0, **env: str) -> str:
        """Run ``python -m hub.cli ARGS`` to completion; its stdout (fails on exit != 0)."""
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", *args],
            cwd=self.workdir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"hub.cli {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def upgrade(self) -> None:
        self.cli("db", "upgrade")

    def api_key(self, user: str = "cluster", scope: str = "read,feedback,publish") -> str:
        self.cli("user", "create", user)
        key = self.cli("key", "create", user, "--scope", scope).strip().splitlines()[-1]
        assert key.startswith("catalyst_"), key
        return key

    def report(self) -> str:
        return "\n".join(p.report() for p in self.procs)

    def leaks(self, *secrets: str) -> list[str]:
        """Output lines, of any process started, that show one of ``secrets``
        (ARCHITECTURE: no secret reaches any log in any role)."""
        return [
            f"{proc.name}: {line}"
            for proc in self.procs
            for line in proc.output.splitlines()
            if any(secret and secret in line for secret in secrets)
        ]

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=10)


# --- database --------------------------------------------------------------------


async def query(db_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def deliveries(db_url: str) -> dict[tuple[int, str], str]:
    """(chat id, signal_id) -> delivery status, for every Telegram delivery."""
    rows = await query(
        db_url,
        "SELECT s.destination, g.signal_id, d.status FROM deliveries d "
        "JOIN subscriptions s ON s.id = d.subscription_id "
        "JOIN signals g ON g.seq = d.signal_seq WHERE d.platform = 'telegram'",
    )
    return {(int(r["destination"]), r["signal_id"]): r["status"] for r in rows}


# --- the fake Telegram Bot API ----------------------------------------------------


class SlowBotApi(FakeBotApi):
    """:class:`FakeBotApi` plus ``send_delay`` (seconds each ``sendMessage`` takes
    before it is answered and recorded) and ``max_polls``, the most ``getUpdates``
    calls ever in flight at once."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.send_delay = 0.0
        self.polls_in_flight = 0
        self.max_polls = 0

    async def _handle(self, request: web.Request) -> web.Response:
        polling = request.match_info.get("method", "").lower() == "getupdates"
        if polling:
            self.polls_in_flight += 1
            self.max_polls = max(self.max_polls, self.polls_in_flight)
        try:
            return await super()._handle(request)
        finally:
            if polling:
                self.polls_in_flight -= 1

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        if self.send_delay:
            await asyncio.sleep(self.send_delay)
        return await super()._m_sendmessage(params)

    def send_calls(self) -> list[dict[str, Any]]:
        return [params for method, params in self.calls if method.lower() == "sendmessage"]


def alerts_for(fake: FakeBotApi, signal_id: str, chat_id: int | None = None) -> list[SentMessage]:
    """Alert messages (not command replies) carrying ``signal_id``."""
    marker = f"ID: <code>{signal_id}</code>"
    return [m for m in fake.sent if marker in m.text and (chat_id is None or m.chat_id == chat_id)]


def alert_pairs(fake: FakeBotApi) -> list[tuple[int, str]]:
    """(chat id, signal_id) of every alert the fake recorded, in arrival order."""
    out = []
    for message in fake.sent:
        match = re.search(r"ID: <code>([^<]+)</code>", message.text)
        if match:
            out.append((int(message.chat_id), match.group(1)))
    return out


async def subscribe_chats(
    fake: FakeBotApi, chat_ids: Iterable[int], report: Callable[[], str], within: float = 30.0
) -> None:
    """Send ``/subscribe`` from each chat (as Telegram would, via getUpdates) and wait
    for every bot's "Subscribed" reply: the subscription is then stored."""
    chat_ids = list(chat_ids)
    for chat_id in chat_ids:
        fake.push_update(fake_api.command("/subscribe", chat_id=chat_id))

    def done() -> bool:
        return all(
            any("Subscribed" in m.text for m in fake.sent_to(chat_id)) for chat_id in chat_ids
        )

    try:
        await fake.wait_for(done, within)
    except TimeoutError:
        raise AssertionError(
            f"not every chat of {chat_ids} got a Subscribed reply; fake sent "
            f"{[(m.chat_id, m.text[:60]) for m in fake.sent]}\n{report()}"
        ) from None


# --- REST and WebSocket ------------------------------------------------------------


def signal_data(signal_id: str, ticker: str = "CLST", confidence: float = 0.8) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "ticker": ticker,
        "signal_type": "BUY",
        "confidence": confidence,
        "catalyst_type": "FDA",
        "headline": f"cluster test {signal_id}",
    }


def write_jsonl(path: Path, items: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


async def wait_healthy(port: int, proc: Proc, within: float = 45.0) -> None:
    """Wait until ``GET /health`` on ``port`` answers 200 (``proc`` must stay up)."""
    deadline = time.monotonic() + within
    last = ""
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            assert proc.returncode is None, f"{proc.name} ended\n{proc.report()}"
            try:
                response = await http.get(f"http://127.0.0.1:{port}/health")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{exc.__class__.__name__}: {exc}"
            await asyncio.sleep(0.25)
    raise AssertionError(f"port {port} not healthy within {within}s ({last})\n{proc.report()}")


async def post_signal(
    http: httpx.AsyncClient, key: str, data: dict[str, Any], attempts: int = 5
) -> tuple[int, list[str]]:
    """POST a signal, retrying on a 5xx or a transport error; (final status, history)."""
    history: list[str] = []
    status = 0
    for attempt in range(attempts):
        try:
            response = await http.post(
                "/api/v1/signals", json=data, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as exc:
            history.append(f"{exc.__class__.__name__}: {exc}")
            await asyncio.sleep(0.5 * (attempt + 1))
            continue
        status = response.status_code
        history.append(f"{status} {response.text[:200]}")
        if status < 500:
            return status, history
        await asyncio.sleep(0.5 * (attempt + 1))
    return status, history


class WsFollower:
    """Follows ``/ws`` and keeps every signal it gets, in arrival order.

    With ``reconnect=True`` a connection the server closes (or that fails) is
    reopened with ``?after_seq=<last seq seen>`` (examples/README.md), so a client
    that follows the protocol misses nothing and sees nothing twice."""

    def __init__(
        self,
        port: int,
        token: str,
        *,
        reconnect: bool = False,
        filters: dict[str, Any] | None = None,
    ) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws?token={token}"
        self.reconnect = reconnect
        self.filters = filters  #: sent as a ``subscribe`` on the first connection
        self.signals: list[dict[str, Any]] = []
        self.events: list[str] = []  #: connects, closes and errors, for failure messages
        self.connections = 0
        self._welcomed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.finished = False

    @property
    def last_seq(self) -> int | None:
        return self.signals[-1]["seq"] if self.signals else None

    @property
    def signal_ids(self) -> list[str]:
        return [s["signal_id"] for s in self.signals]

    async def start(self, within: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-follower")
        try:
            await asyncio.wait_for(self._welcomed.wait(), within)
        except TimeoutError:
            raise AssertionError(f"no WebSocket welcome from {self.url}: {self.events}") from None
        self._note("ready")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> bool:
        deadline = asyncio.get_running_loop().time() + within
        while not predicate():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or (self.finished and not predicate()):
                return predicate()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True

    def _note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {event}")
        self._changed.set()

    async def _run(self) -> None:
        try:
            while True:
                url = self.url
                if self.connections and self.last_seq is not None:
                    url += f"&after_seq={self.last_seq}"
                try:
                    await self._follow(url)
                except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                    self._note(f"connection failed: {exc.__class__.__name__}: {exc}")
                if not self.reconnect:
                    return
                await asyncio.sleep(0.3)
        finally:
            self.finished = True
            self._changed.set()

    async def _follow(self, url: str) -> None:
        async with websockets.connect(url, open_timeout=10, max_queue=None) as ws:
            self.connections += 1
            resume = url.partition("&after_seq=")[2] or "none"
            self._note(f"connected (after_seq={resume})")
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "signal":
                        self.signals.append(message["data"])
                        self._changed.set()
                    elif kind == "heartbeat":
                        await ws.send(json.dumps({"type": "pong"}))
                    elif kind == "welcome":
                        if self.filters is not None and not self._welcomed.is_set():
                            await ws.send(
                                json.dumps({"type": "subscribe", "filters": self.filters})
                            )
                        else:
                            self._welcomed.set()
                    elif kind == "subscribed":
                        self._welcomed.set()
                    else:
                        self._note(f"message {message}")
            finally:
                self._note(f"closed: code={ws.close_code} reason={ws.close_reason!r}")
