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
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--lease-seconds S]

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
import uuid
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


async def main(
    compare: bool, same_loop: bool, batch_size: int | None, concurrency: int | None
) -> None:
    logging.basicConfig(level=logging.ERROR)

    def new_fake() -> Fake:
        return InProcessFake() if same_loop else FakeProcess()

    where = "in the hub's event loop" if same_loop else "in its own process"
    print(f"fake Bot API {where}, limits enforced: 30/s per bot, 1/s per chat, 20/min per group")
    with tempfile.TemporaryDirectory() as folder:
        await hub_run(Path(folder), new_fake(), batch_size, concurrency)
    if compare:
        runs: list[tuple[str, Callable[[Fake], Bot]]] = [
            ("python-telegram-bot AIORateLimiter (defaults, max_retries=5)", with_aio_rate_limiter),
            ("python-telegram-bot without a limiter", without_limiter),
        ]
        for title, factory in runs:
            await direct_run(title, new_fake(), factory)


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
    args = parser.parse_args()
    _run(main(not args.skip_compare, args.same_loop, args.batch_size, args.concurrency))
