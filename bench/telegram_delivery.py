"""Telegram delivery benchmark: the real dispatcher and TelegramChannel against a fake
Bot API that enforces Telegram's limits (30 msg/s per bot, 1 msg/s per chat,
20 msg/min per group) and answers 429 with ``retry_after`` when one is exceeded.

One process (the default, ``--workers 1``), on SQLite:

1. One signal to 600 private chats (floor: 600 / 30 per s = 20 s).
2. Twenty signals to one group (floor: 20 / 1 per s = 20 s; 20 per minute allows them).

Then, for comparison, the same 600 sends straight through python-telegram-bot: with its
``AIORateLimiter`` and with no limiter at all.

Several processes (``--workers N``, N >= 2), on PostgreSQL: a scratch database is
created on the server of ``--pg-url`` (and dropped at the end), migrated with
``catalyst db upgrade``, and N real worker processes run ``catalyst run --roles
dispatcher,bots`` with Telegram pointed at the fake (in its own process, limits
enforced). This process subscribes ``--chats`` private chats (default 300) and
publishes one signal through the hub's publisher; the figure is the time from
just before the publish until the last chat has it, against the floor
(chats / 30 per s), with the 429s, the fake's 409 Conflicts (two ``getUpdates``
pollers overlapping), duplicates and losses. Exactly one worker may send (and
one poll) at a time, elected by advisory locks, so the target is no 429, no 409
and <= 1.10x the floor.

``--kill-one`` adds a phase: a second signal, and when half of the chats have it
the sending worker is SIGKILLed. The table gives the takeover time (kill -> the
survivor leads ``sender-telegram``, and kill -> its first send), the time until
the last chat has the signal (the dead worker's claimed deliveries wait for
their lease, ``dispatcher.lease_seconds``, to end), and the duplicates, whose
bound is the sends in flight at the kill: alerts the fake had received that
the database did not yet record as sent.

Prints figures only. Run:

    .venv/bin/python bench/telegram_delivery.py [--skip-compare] [--chats N]
    .venv/bin/python bench/telegram_delivery.py --workers 2 [--kill-one] [--chats 300]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--lease-seconds S] [--logs]

After a ``--workers`` run the workers' warnings, errors, tracebacks and 409s are
listed (``--logs``: their whole logs).

Every child process is stopped (SIGTERM, then SIGKILL) and the scratch database
dropped on the way out, also after Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

from telegram import Bot
from telegram.error import RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from bench.scratch_db import ScratchDatabase
from bots.telegram import TelegramBot
from core.context import HubContext
from core.settings import Settings, TelegramSettings
from hub.build import build_context, prepare_database
from tests.telegram.fake_bot_api import FakeBotApi, SentMessage

PRIVATE_CHATS = 600
CLUSTER_CHATS = 300
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
GROUP_SIGNALS = 20
GROUP_ID = -1001234567890
GLOBAL_RATE = 30.0
CHAT_RATE = 1.0


def _serve_fake(conn: Connection) -> None:
    """Child process: the fake Bot API with limits enforced, in its own event loop."""

    # Ctrl-C reaches the whole foreground process group: the parent stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def serve() -> None:
        fake = FakeBotApi(enforce_limits=True)
        await fake.start()
        conn.send((fake.token, fake.port))
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send(
                {
                    "sent": [(m.chat_id, m.text, m.at) for m in fake.sent],
                    "rate_limited": fake.rate_limited,
                    "refused_by": dict(fake.refused_by),
                    "conflicts": fake.conflicts,
                }
            )
        await fake.stop()

    asyncio.run(serve())


class FakeProcess:
    """The fake Bot API in a separate process, as Telegram is not in the hub's event loop.

    Both processes read the same CLOCK_MONOTONIC, so arrival times compare with ours.
    """

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_fake, args=(child,), daemon=True)
        self.token = ""
        self.port = 0
        self.refused_by: dict[str, int] = {}
        #: getUpdates calls the fake ended with 409 Conflict (as of the last snapshot).
        self.conflicts = 0

    async def start(self) -> None:
        self._process.start()
        self.token, self.port = await asyncio.to_thread(self._conn.recv)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def snapshot(self) -> tuple[list[SentMessage], int]:
        self._conn.send("snapshot")
        data: dict[str, Any] = await asyncio.to_thread(self._conn.recv)
        sent = [
            SentMessage(message_id=0, chat_id=c, text=t, parse_mode=None, reply_markup=None, at=a)
            for c, t, a in data["sent"]
        ]
        self.refused_by = data["refused_by"]
        self.conflicts = int(data["conflicts"])
        return sent, int(data["rate_limited"])

    async def wait_for(self, count: int, limit: float) -> tuple[list[SentMessage], int]:
        deadline = time.monotonic() + limit
        while True:
            sent, limited = await self.snapshot()
            if len(sent) >= count or time.monotonic() > deadline:
                return sent, limited
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send("stop")
            await asyncio.to_thread(self._process.join, 10)
        self.kill()

    def kill(self) -> None:
        """Make sure the process is gone (the last resort of a clean-up)."""
        if self._process.pid is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)


def settings_in(folder: Path) -> Settings:
    return Settings(
        database={"url": f"sqlite+aiosqlite:///{folder / 'bench.db'}"},
        auth={"jwt_secret": "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"},
        console={"enabled": False, "auto_subscribe": False},
        scheduler={"enabled": False},
    )


async def wait_until(check: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def report(
    title: str,
    started: float,
    messages: list[SentMessage],
    expected: int,
    floor: float,
    rate_limited: int,
    key: Callable[[SentMessage], object],
    refused_by: dict[str, int] | None = None,
    conflicts: int | None = None,
) -> None:
    counts = Counter(key(m) for m in messages)
    duplicates = sum(n - 1 for n in counts.values())
    losses = max(0, expected - len(counts))
    elapsed = (max(m.at for m in messages) - started) if messages else float("nan")
    print(f"\n== {title}")
    print(f"   delivered       {len(counts)}/{expected}")
    print(f"   elapsed         {elapsed:.2f} s (publish -> last arrival)")
    print(f"   floor           {floor:.2f} s")
    print(f"   ratio           {elapsed / floor:.3f}x floor")
    print(f"   429s            {rate_limited}")
    if conflicts is not None:
        print(f"   409s            {conflicts} (getUpdates conflicts at the fake)")
    print(f"   duplicates      {duplicates}")
    print(f"   losses          {losses}")
    if refused_by:
        print(f"   429s by limit   {refused_by}")


class InProcessFake:
    """The fake in the hub's own event loop (``--same-loop``): its request handling and
    the hub's share one loop, so arrival times carry the hub's scheduling jitter."""

    def __init__(self) -> None:
        self._fake = FakeBotApi(enforce_limits=True)

    @property
    def token(self) -> str:
        return self._fake.token

    @property
    def base_url(self) -> str:
        return self._fake.base_url

    async def start(self) -> None:
        await self._fake.start()

    @property
    def refused_by(self) -> dict[str, int]:
        return dict(self._fake.refused_by)

    async def snapshot(self) -> tuple[list[SentMessage], int]:
        return list(self._fake.sent), self._fake.rate_limited

    async def wait_for(self, count: int, limit: float) -> tuple[list[SentMessage], int]:
        await wait_until(lambda: len(self._fake.sent) >= count, limit)
        return await self.snapshot()

    async def stop(self) -> None:
        await self._fake.stop()


Fake = FakeProcess | InProcessFake


async def hub_run(
    folder: Path,
    fake: Fake,
    batch_size: int | None,
    concurrency: int | None,
    chats: int = PRIVATE_CHATS,
) -> None:
    await fake.start()
    settings = settings_in(folder)
    if batch_size is not None:
        settings.dispatcher.batch_size = batch_size
    if concurrency is not None:
        settings.dispatcher.concurrency = concurrency
    ctx: HubContext = build_context(settings)
    await prepare_database(ctx, force=True)
    telegram = TelegramBot(
        TelegramSettings(enabled=True, token=fake.token, base_url=fake.base_url), ctx
    )
    try:
        await telegram.start()
        owner = await ctx.services.accounts.ensure_user("bench")
        for chat in range(1, chats + 1):
            destination = str(1_000_000 + chat)
            await ctx.services.subscriptions.subscribe("telegram", destination, owner.id)
            await ctx.services.subscriptions.set_field("telegram", destination, "tickers", "PRIV")
        ctx.dispatcher.register(telegram.channel)
        await ctx.dispatcher.start()
        print(
            f"dispatcher: batch_size={settings.dispatcher.batch_size} "
            f"concurrency={settings.dispatcher.concurrency}"
        )

        # 1. one signal to the private chats (600)
        started = time.monotonic()
        result = await ctx.publisher.publish(
            {"signal_id": "fanout-1", "ticker": "PRIV", "confidence": 0.9, "headline": "Fan-out"}
        )
        assert result.deliveries == chats
        await fake.wait_for(chats, 120)
        await asyncio.sleep(0.5)  # let a duplicate show up, if any
        sent, limited = await fake.snapshot()
        report(
            f"hub dispatcher + TelegramChannel: 1 signal -> {chats} private chats",
            started,
            sent,
            chats,
            chats / GLOBAL_RATE,
            limited,
            key=lambda m: m.chat_id,
            refused_by=fake.refused_by,
        )
        refused_before = dict(fake.refused_by)

        # 2. twenty signals to one group
        await ctx.services.subscriptions.subscribe("telegram", str(GROUP_ID), owner.id)
        await ctx.services.subscriptions.set_field("telegram", str(GROUP_ID), "tickers", "GRP")
        before = len(sent)
        started = time.monotonic()
        for n in range(GROUP_SIGNALS):
            await ctx.publisher.publish(
                {"signal_id": f"group-{n}", "ticker": "GRP", "confidence": 0.9}
            )
        await fake.wait_for(before + GROUP_SIGNALS, 120)
        await asyncio.sleep(1.0)
        sent, limited_after = await fake.snapshot()
        group = [m for m in sent[before:] if m.chat_id == GROUP_ID]
        order = [m.text.split("ID: <code>")[1].split("<")[0] for m in group]
        report(
            f"hub dispatcher + TelegramChannel: {GROUP_SIGNALS} signals -> 1 group",
            started,
            group,
            GROUP_SIGNALS,
            GROUP_SIGNALS / CHAT_RATE,
            limited_after - limited,
            key=lambda m: m.text,
            refused_by={
                k: v - refused_before.get(k, 0)
                for k, v in fake.refused_by.items()
                if v > refused_before.get(k, 0)
            },
        )
        print(f"   in order        {order == [f'group-{n}' for n in range(GROUP_SIGNALS)]}")
    finally:
        await ctx.dispatcher.stop()
        await telegram.stop()
        await ctx.db.dispose()
        await fake.stop()


async def direct_run(
    title: str, fake: Fake, make_bot: Callable[[Fake], Bot], chats: int = PRIVATE_CHATS
) -> None:
    """The ``chats`` sends (600) issued at once straight through python-telegram-bot."""
    await fake.start()
    bot = make_bot(fake)
    failures: Counter[str] = Counter()
    try:
        await bot.initialize()

        async def send(chat: int) -> None:
            try:
                await bot.send_message(chat, f"alert for {chat}")
            except RetryAfter:
                failures["429 not retried"] += 1
            except TelegramError as exc:
                failures[exc.__class__.__name__] += 1

        started = time.monotonic()
        await asyncio.gather(*(send(1_000_000 + n) for n in range(1, chats + 1)))
        sent, limited = await fake.snapshot()
        report(
            title,
            started,
            sent,
            chats,
            chats / GLOBAL_RATE,
            limited,
            key=lambda m: m.chat_id,
            refused_by=fake.refused_by,
        )
        if failures:
            print(f"   send errors     {dict(failures)}")
    finally:
        await bot.shutdown()
        await fake.stop()


def _request() -> HTTPXRequest:
    return HTTPXRequest(connection_pool_size=256, pool_timeout=60, read_timeout=60)


def with_aio_rate_limiter(fake: Fake) -> Bot:
    return ExtBot(
        fake.token,
        base_url=fake.base_url,
        request=_request(),
        rate_limiter=AIORateLimiter(max_retries=5),
    )


def without_limiter(fake: Fake) -> Bot:
    return Bot(fake.token, base_url=fake.base_url, request=_request())


# =============================================================================
# Several worker processes on PostgreSQL (--workers N)
# =============================================================================

BIN = Path(sys.executable).parent
CATALYST = (
    [str(BIN / "catalyst")] if (BIN / "catalyst").exists() else [sys.executable, "-m", "hub.cli"]
)
#: Worker log lines worth showing after the run.
#: (Not the ",409" of a log timestamp's milliseconds.)
ODD_LINE = re.compile(
    r"WARNING|ERROR|CRITICAL|Traceback|Exception|(?<![,.:\d])409(?!\d)|[Cc]onflict"
)


class Resources:
    """Everything the cluster run starts, so that every exit path can stop it."""

    def __init__(self) -> None:
        self.procs: list[Any] = []  # tests.cluster.procs.Proc
        self.fake: FakeProcess | None = None
        self.db: ScratchDatabase | None = None
        self.ctx: HubContext | None = None
        self.folder: str | None = None

    async def close(self) -> None:
        """The orderly way out: SIGTERM the workers (graceful stop), then the rest."""
        for proc in self.procs:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(proc.stop, 20.0)
        if self.fake is not None:
            with contextlib.suppress(Exception):
                await self.fake.stop()
        if self.ctx is not None:
            with contextlib.suppress(Exception):
                await self.ctx.db.dispose()
            self.ctx = None
        if self.db is not None:
            try:
                await self.db.drop()
            except Exception as exc:
                print(f"warning: could not drop database {self.db.name}: {exc}", file=sys.stderr)

    def last_resort(self) -> None:
        """After the event loop is gone (a second Ctrl-C, a crash): kill and drop."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    proc.popen.wait(10)
        if self.fake is not None:
            self.fake.kill()
        if self.db is not None and self.db.created:
            try:
                asyncio.run(self.db.drop())
            except Exception as exc:
                print(f"warning: could not drop database {self.db.name}: {exc}", file=sys.stderr)
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def worker_env(db_url: str, fake: FakeProcess, lease_seconds: float | None) -> dict[str, str]:
    """A worker's environment: no inherited CATALYST_* variables, Telegram at the fake."""
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
        CATALYST_TELEGRAM__ENABLED="true",
        CATALYST_TELEGRAM__TOKEN=fake.token,
        CATALYST_TELEGRAM__BASE_URL=fake.base_url,
        CATALYST_TELEGRAM__BASE_FILE_URL=f"http://127.0.0.1:{fake.port}/file/bot",
        CATALYST_LOGGING__LEVEL="INFO",
    )
    if lease_seconds is not None:
        env["CATALYST_DISPATCHER__LEASE_SECONDS"] = str(lease_seconds)
    return env


def leaders(procs: list[Any], role: str) -> list[Any]:
    """The live processes whose latest word on ``role`` is that they lead it."""
    out = []
    for proc in procs:
        if proc.popen.poll() is not None:
            continue
        said = proc.find(rf"{role}: (this process leads|lock lost|another process leads)")
        if said and said[-1].group(1) == "this process leads":
            out.append(proc)
    return out


async def wait_for_leader(procs: list[Any], role: str, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while True:
        found = leaders(procs, role)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no worker leads {role} after {limit:.0f} s")
        await asyncio.sleep(0.01)


def alerts(sent: list[SentMessage], signal_id: str) -> list[SentMessage]:
    marker = f"ID: <code>{signal_id}</code>"
    return [m for m in sent if marker in m.text]


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}


async def wait_chats(
    fake: FakeProcess, signal_id: str, chats: int, limit: float, *, at_least: int | None = None
) -> list[SentMessage]:
    """Poll the fake until ``at_least`` (default: all) chats have ``signal_id``."""
    wanted = chats if at_least is None else at_least
    deadline = time.monotonic() + limit
    while True:
        sent, _ = await fake.snapshot()
        mine = alerts(sent, signal_id)
        if len({m.chat_id for m in mine}) >= wanted or time.monotonic() > deadline:
            return mine
        await asyncio.sleep(0.02)


async def db_counts(ctx: HubContext, seq: int) -> tuple[int, int]:
    """(deliveries recorded sent, open deliveries under a live claim) for one signal."""
    from sqlalchemy import text

    async with ctx.db.session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status = 'sent'), "
                    "count(*) FILTER (WHERE status IN ('pending', 'failed') "
                    "AND claimed_until > now()) FROM deliveries WHERE signal_seq = :seq"
                ),
                {"seq": seq},
            )
        ).one()
    return int(row[0]), int(row[1])


async def cluster_main(args: argparse.Namespace, res: Resources) -> None:
    from tests.cluster.procs import Proc

    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    workers: int = args.workers
    chats: int = args.chats or CLUSTER_CHATS
    floor = chats / GLOBAL_RATE
    try:
        res.fake = fake = FakeProcess()
        await fake.start()
        res.db = db = ScratchDatabase(args.pg_url, "catalyst_bench_tg")
        await db.create()
        res.folder = folder = tempfile.mkdtemp(prefix="tg-bench-")
        env = worker_env(db.url, fake, args.lease_seconds)
        done = await asyncio.to_thread(
            subprocess_run, [*CATALYST, "db", "upgrade"], env=env, cwd=folder
        )
        if done.returncode != 0:
            raise RuntimeError(f"catalyst db upgrade failed:\n{done.stdout}\n{done.stderr}")

        settings = Settings(
            database={"url": db.url, "auto_migrate": False},
            auth={"jwt_secret": JWT_SECRET},
            console={"enabled": False, "auto_subscribe": False},
            scheduler={"enabled": False},
        )
        res.ctx = ctx = build_context(settings)
        owner = await ctx.services.accounts.ensure_user("bench")
        for chat in range(1, chats + 1):
            destination = str(1_000_000 + chat)
            await ctx.services.subscriptions.subscribe("telegram", destination, owner.id)
            await ctx.services.subscriptions.set_field("telegram", destination, "tickers", "PRIV")

        for n in range(1, workers + 1):
            res.procs.append(
                Proc(
                    f"worker-{n}",
                    [*CATALYST, "run", "--roles", "dispatcher,bots"],
                    env,
                    Path(folder),
                )
            )
        procs = res.procs
        for proc in procs:
            await proc.await_line(r"catalyst hub running", 60)
        sender = await wait_for_leader(procs, "sender-telegram", 60)
        receiver = await wait_for_leader(procs, "telegram-receiver", 60)
        await asyncio.sleep(1.0)  # the poller's first getUpdates is in
        lease = args.lease_seconds or settings.dispatcher.lease_seconds
        print(
            f"{workers} worker processes ({' '.join(CATALYST[-1:])} run --roles dispatcher,bots) "
            f"on PostgreSQL database {db.name}; {chats} private chats; "
            f"dispatcher lease {lease:g} s"
        )
        print(f"sender-telegram: {sender.name}, telegram-receiver: {receiver.name}")

        # ---- steady running: one signal -> every chat -------------------------------
        _, limited0 = await fake.snapshot()
        refused0, conflicts0 = dict(fake.refused_by), fake.conflicts
        started = time.monotonic()
        result = await ctx.publisher.publish(
            {"signal_id": "fanout-1", "ticker": "PRIV", "confidence": 0.9, "headline": "Fan-out"}
        )
        committed = time.monotonic()
        assert result.deliveries == chats, result
        await wait_chats(fake, "fanout-1", chats, max(120.0, 6 * floor))
        await asyncio.sleep(1.0)  # let a duplicate show up, if any
        sent, limited = await fake.snapshot()
        report(
            f"{workers} workers on PostgreSQL: 1 signal -> {chats} private chats",
            started,
            alerts(sent, "fanout-1"),
            chats,
            floor,
            limited - limited0,
            key=lambda m: m.chat_id,
            refused_by=delta(dict(fake.refused_by), refused0),
            conflicts=fake.conflicts - conflicts0,
        )
        print(
            f"   publish         {(committed - started) * 1000:.1f} ms (store, route, enqueue, commit)"
        )

        if args.kill_one:
            await kill_phase(res, ctx, fake, chats, floor, lease)

        print(f"\n409s over the whole run (start-up included): {fake.conflicts}")
    finally:
        await res.close()
        print_worker_oddities(res.procs)
        if args.logs:
            for proc in res.procs:
                print(f"\n{proc.report(10_000)}", end="")


def subprocess_run(cmd: list[str], *, env: dict[str, str], cwd: str) -> Any:
    import subprocess

    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


async def kill_phase(
    res: Resources,
    ctx: HubContext,
    fake: FakeProcess,
    chats: int,
    floor: float,
    lease: float,
) -> None:
    procs = res.procs
    sender = await wait_for_leader(procs, "sender-telegram", 10)
    was_receiver = sender in leaders(procs, "telegram-receiver")
    survivors = [p for p in procs if p is not sender]
    led_before = {p.name: p.count(r"sender-telegram: this process leads") for p in survivors}
    _, limited0 = await fake.snapshot()
    refused0, conflicts0 = dict(fake.refused_by), fake.conflicts

    started = time.monotonic()
    result = await ctx.publisher.publish(
        {"signal_id": "fanout-kill", "ticker": "PRIV", "confidence": 0.9, "headline": "Kill"}
    )
    assert result.signal.seq is not None
    seq = result.signal.seq
    half = await wait_chats(fake, "fanout-kill", chats, 120, at_least=chats // 2)
    t_kill = time.monotonic()
    os.kill(sender.pid, signal.SIGKILL)
    await asyncio.to_thread(sender.popen.wait, 10)
    arrived_at_kill = len({m.chat_id for m in half})
    # The fake still handles what the dead worker had written to its sockets; no
    # survivor can lead this soon (a takeover waits a lock check period first).
    await asyncio.sleep(0.3)
    sent, _ = await fake.snapshot()
    t_snap = time.monotonic()
    received = {m.chat_id for m in alerts(sent, "fanout-kill")}
    recorded, claimed = await db_counts(ctx, seq)
    in_flight = len(received) - recorded

    deadline = time.monotonic() + lease + 120
    t_lead = None
    new_sender = None
    while t_lead is None and time.monotonic() < deadline:
        for proc in survivors:
            if proc.count(r"sender-telegram: this process leads") > led_before[proc.name]:
                t_lead, new_sender = time.monotonic(), proc
                break
        else:
            await asyncio.sleep(0.01)
    mine = await wait_chats(fake, "fanout-kill", chats, max(1.0, deadline - time.monotonic()))
    await asyncio.sleep(1.0)
    sent, limited = await fake.snapshot()
    mine = alerts(sent, "fanout-kill")
    after = [m.at for m in mine if m.at > t_snap]
    new_receiver = leaders(survivors, "telegram-receiver")
    report(
        f"{len(procs)} workers, the sender SIGKILLed halfway: 1 signal -> {chats} private chats",
        started,
        mine,
        chats,
        floor,
        limited - limited0,
        key=lambda m: m.chat_id,
        refused_by=delta(dict(fake.refused_by), refused0),
        conflicts=fake.conflicts - conflicts0,
    )
    print(
        f"   killed          {sender.name} (sender-telegram"
        f"{' and telegram-receiver' if was_receiver else ''}) "
        f"{t_kill - started:.2f} s after publish, {arrived_at_kill}/{chats} chats served"
    )
    print(
        f"   in flight       {in_flight} (alerts the fake had, not recorded as sent at the "
        f"kill: the duplicate bound)"
    )
    print(
        f"   claims held     {claimed} (claimed by the dead worker: retaken when the "
        f"{lease:g} s lease ends)"
    )
    if t_lead is not None and new_sender is not None:
        print(
            f"   takeover        {t_lead - t_kill:.2f} s (kill -> {new_sender.name} leads sender-telegram)"
        )
    else:
        print("   takeover        none: no survivor took the lead")
    if after:
        print(f"   first send      {min(after) - t_kill:.2f} s after the kill (the new sender)")
        print(f"   kill -> last    {max(after) - t_kill:.2f} s")
    if was_receiver:
        print(f"   receiver now    {', '.join(p.name for p in new_receiver) or 'none'}")


def print_worker_oddities(procs: list[Any], limit: int = 40) -> None:
    """Warnings, errors, tracebacks and conflicts from the workers' logs."""
    if not procs:
        return
    print("\nworker logs: warnings, errors, tracebacks, 409s")
    shown = 0
    for proc in procs:
        code = proc.popen.poll()
        odd = [line for line in proc.lines if ODD_LINE.search(line)]
        print(f"   {proc.name} (exit {code}): {len(odd)} line(s) of {len(proc.lines)}")
        for line in odd:
            if shown >= limit:
                break
            print(f"     {line[:240]}")
            shown += 1


def run_cluster(args: argparse.Namespace) -> None:
    res = Resources()
    try:
        asyncio.run(cluster_main(args, res))
    except KeyboardInterrupt:
        print("\ninterrupted; child processes stopped, scratch database dropped", file=sys.stderr)
        raise SystemExit(130) from None
    except asyncio.CancelledError:  # SIGTERM
        print("\nterminated; child processes stopped, scratch database dropped", file=sys.stderr)
        raise SystemExit(143) from None
    finally:
        res.last_resort()


async def main(
    compare: bool,
    same_loop: bool,
    batch_size: int | None,
    concurrency: int | None,
    chats: int = PRIVATE_CHATS,
) -> None:
    logging.basicConfig(level=logging.ERROR)

    def new_fake() -> Fake:
        return InProcessFake() if same_loop else FakeProcess()

    where = "in the hub's event loop" if same_loop else "in its own process"
    print(f"fake Bot API {where}, limits enforced: 30/s per bot, 1/s per chat, 20/min per group")
    with tempfile.TemporaryDirectory() as folder:
        await hub_run(Path(folder), new_fake(), batch_size, concurrency, chats)
    if compare:
        runs: list[tuple[str, Callable[[Fake], Bot]]] = [
            ("python-telegram-bot AIORateLimiter (defaults, max_retries=5)", with_aio_rate_limiter),
            ("python-telegram-bot without a limiter", without_limiter),
        ]
        for title, factory in runs:
            await direct_run(title, new_fake(), factory, chats)


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--skip-compare", action="store_true", help="only the hub's own run")
    parser.add_argument(
        "--same-loop", action="store_true", help="run the fake in the hub's event loop"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="dispatcher.batch_size")
    parser.add_argument("--concurrency", type=int, default=None, help="dispatcher.concurrency")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="1: the hub in this process on SQLite (default); N >= 2: N worker processes "
        "(catalyst run --roles dispatcher,bots) on a scratch PostgreSQL database",
    )
    parser.add_argument(
        "--chats",
        type=int,
        default=None,
        help=f"private chats (default {PRIVATE_CHATS}; {CLUSTER_CHATS} with --workers N)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="--workers: the scratch database is created on this URL's server "
        f"(default {DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--kill-one",
        action="store_true",
        help="--workers: SIGKILL the sending worker halfway through a second signal",
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="--workers: dispatcher.lease_seconds for the workers (default: the hub's)",
    )
    parser.add_argument(
        "--logs", action="store_true", help="--workers: print the workers' whole logs at the end"
    )
    args = parser.parse_args()
    if args.chats is not None and args.chats < 2:
        parser.error("--chats must be at least 2")
    if args.workers >= 2:
        run_cluster(args)
    elif args.kill_one:
        parser.error("--kill-one needs --workers 2 or more")
    else:
        _run(
            main(
                not args.skip_compare,
                args.same_loop,
                args.batch_size,
                args.concurrency,
                args.chats or PRIVATE_CHATS,
            )
        )
