"""Discord delivery benchmark: the real dispatcher and DiscordChannel against a fake
Discord that enforces Discord's limits (50 requests/s per bot, 5 posts per 5 s per
channel) with the real ``X-RateLimit-*`` headers, and answers 429 with
``retry_after`` and ``global`` when one is exceeded.

One process, on SQLite, the fake in its own process (discord.py talks to it over
HTTP; the bot logs in over REST only, no gateway needed to deliver):

1. One signal to ``--users`` DM users (default 300) whose DM channels are known
   (floor: N / 50 per s = 6 s).
2. With ``--cold``, the same to users whose DM channels must first be opened: two
   requests each (floor: 2N / 50 per s = 12 s). The DM open's slot counts from the
   open's answer (``core.ratelimit.CURRENT_PERMIT``); before that, this phase drew
   about 200 global 429s.

Baselines in the same run (``--skip-compare`` leaves them out): the same sends
through the old fixed split (posts capped at 35/s, DM opens at 15/s, counted when
let through), and through discord.py alone (every send issued at once, only
discord.py's own rate-limit handling).

Prints figures only. Run:

    .venv/bin/python bench/discord_delivery.py [--users N] [--skip-compare] [--cold]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

import discord
from discord.http import handle_message_parameters

from bots.discord import DiscordBot, DiscordChannel
from core.channels import RateLimit
from core.context import HubContext
from core.ratelimit import ScopedLimiter
from core.settings import DiscordSettings, Settings
from hub.build import build_context, prepare_database
from tests.discord.fake_discord import TOKEN, FakeDiscord

USERS = 300
GLOBAL_RATE = 50.0
FIRST_USER = 5_000_000
FIRST_DM_CHANNEL = 7_000_000


def _serve_fake(conn: Connection) -> None:
    """Child process: the fake Discord with limits enforced, in its own event loop."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def serve() -> None:
        fake = FakeDiscord(enforce_limits=True)
        await fake.start()
        conn.send(fake.port)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send(
                {
                    "sent": [(s.channel_id, s.at) for s in fake.sent],
                    "rate_limited": fake.rate_limited,
                    "refused_by": dict(fake.refused_by),
                    "dm_opened": len(fake.dm_opened),
                }
            )
        await fake.close()

    asyncio.run(serve())


class FakeProcess:
    """The fake Discord in a separate process (same CLOCK_MONOTONIC as ours)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_fake, args=(child,), daemon=True)
        self.port = 0

    async def start(self) -> None:
        self._process.start()
        self.port = await asyncio.to_thread(self._conn.recv)
        discord.http.Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"

    async def snapshot(self) -> dict[str, Any]:
        self._conn.send("snapshot")
        data: dict[str, Any] = await asyncio.to_thread(self._conn.recv)
        return data

    async def wait_for(self, count: int, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            data = await self.snapshot()
            if len(data["sent"]) >= count or time.monotonic() > deadline:
                return data
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send("stop")
            await asyncio.to_thread(self._process.join, 10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class FixedSplitChannel(DiscordChannel):
    """The old limits, kept for comparison only: posts capped at 35/s and DM opens
    at 15/s (35 + 15 <= 50 even when every send opens a DM), counted when let through."""

    def __init__(self, client: discord.Client) -> None:
        super().__init__(client)
        self._posts = RateLimit("global", 35, 1.0)
        self._opens = RateLimit("dm-open", 15, 1.0)

    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        limits = [self._posts]
        kind, _, raw = destination.partition(":")
        if kind == "dm" and raw.isdigit() and self.cached_dm_channel(int(raw)) is None:
            limits.append(self._opens)
        limits.append(RateLimit(destination, 5, 5.0))
        return limits

    def attach_limiter(self, limiter: ScopedLimiter) -> None:
        """The old channel drew nothing itself: its DM opens had their own share."""


def report(
    title: str,
    started: float,
    data: dict[str, Any],
    expected: int,
    floor: float,
    rate_limited: int | None = None,
) -> None:
    sent: list[tuple[int, float]] = data["sent"]
    counts = Counter(channel for channel, _ in sent)
    duplicates = sum(n - 1 for n in counts.values())
    losses = max(0, expected - len(counts))
    elapsed = (max(at for _, at in sent) - started) if sent else float("nan")
    limited = data["rate_limited"] if rate_limited is None else rate_limited
    print(f"\n== {title}")
    print(f"   delivered       {len(counts)}/{expected}")
    print(f"   elapsed         {elapsed:.2f} s (publish -> last arrival)")
    print(f"   floor           {floor:.2f} s")
    print(f"   ratio           {elapsed / floor:.3f}x floor")
    print(f"   429s            {limited}")
    print(f"   duplicates      {duplicates}")
    print(f"   losses          {losses}")
    print(f"   DM opens        {data['dm_opened']}")
    if data["refused_by"]:
        print(f"   429s by limit   {data['refused_by']}")


def settings_in(folder: Path) -> Settings:
    return Settings(
        database={"url": f"sqlite+aiosqlite:///{folder / 'bench.db'}"},
        auth={"jwt_secret": "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"},
        console={"enabled": False, "auto_subscribe": False},
        scheduler={"enabled": False},
    )


def channel_of(n: int) -> int:
    return FIRST_DM_CHANNEL + n


async def hub_run(
    folder: Path,
    title: str,
    users: int,
    *,
    warm: bool,
    make_channel: Callable[[discord.Client], DiscordChannel] | None = None,
) -> None:
    """One signal -> ``users`` DM users through the hub (dispatcher + channel)."""
    fake = FakeProcess()
    await fake.start()
    settings = settings_in(folder)
    ctx: HubContext = build_context(settings)
    await prepare_database(ctx, force=True)
    bot = DiscordBot(DiscordSettings(enabled=True, token=TOKEN), ctx)
    channel = bot.channel
    if make_channel is not None:
        channel = make_channel(bot.client)
    try:
        await bot.start(gateway=False)
        owner = await ctx.services.accounts.ensure_user("bench")
        for n in range(users):
            destination = f"dm:{FIRST_USER + n}"
            await ctx.services.subscriptions.subscribe("discord", destination, owner.id)
            await ctx.services.subscriptions.set_field("discord", destination, "tickers", "DMS")
            if warm:  # known from an earlier open or an interaction, as after a restart
                channel.remember_dm_channel(FIRST_USER + n, channel_of(n))
        ctx.dispatcher.register(channel)
        await ctx.dispatcher.start()
        started = time.monotonic()
        result = await ctx.publisher.publish(
            {"signal_id": "fanout-1", "ticker": "DMS", "confidence": 0.9, "headline": "Fan-out"}
        )
        assert result.deliveries == users, result
        await fake.wait_for(users, 120)
        await asyncio.sleep(0.5)  # let a duplicate show up, if any
        data = await fake.snapshot()
        requests = users * (1 if warm else 2)
        report(title, started, data, users, requests / GLOBAL_RATE)
    finally:
        await ctx.dispatcher.stop()
        await bot.stop()
        await ctx.db.dispose()
        await fake.stop()


async def direct_run(folder: Path, users: int) -> None:
    """Every post issued at once through discord.py, known DM channels, no hub limiter."""
    fake = FakeProcess()
    await fake.start()
    settings = settings_in(folder)
    ctx = build_context(settings)
    await prepare_database(ctx, force=True)
    bot = DiscordBot(DiscordSettings(enabled=True, token=TOKEN), ctx)
    failures: Counter[str] = Counter()
    try:
        await bot.start(gateway=False)

        async def post(n: int) -> None:
            try:
                with handle_message_parameters(content=f"alert {n}") as params:
                    await bot.client.http.send_message(channel_of(n), params=params)
            except discord.HTTPException as exc:
                failures[f"{exc.status}"] += 1

        started = time.monotonic()
        await asyncio.gather(*(post(n) for n in range(users)))
        data = await fake.snapshot()
        report(
            f"discord.py alone (its own rate-limit handling): {users} posts at once",
            started,
            data,
            users,
            users / GLOBAL_RATE,
        )
        if failures:
            print(f"   send errors     {dict(failures)}")
    finally:
        await bot.stop()
        await ctx.db.dispose()
        await fake.stop()


async def main(users: int, compare: bool, cold: bool) -> None:
    logging.basicConfig(level=logging.ERROR)
    print(
        "fake Discord in its own process, limits enforced: 50 requests/s per bot, "
        "5 posts per 5 s per channel, with X-RateLimit-* headers"
    )
    runs: list[tuple[str, bool, Callable[[discord.Client], DiscordChannel] | None]] = [
        (f"hub, shared 50/s: 1 signal -> {users} DM users, DM channels known", True, None)
    ]
    if compare:
        runs.append(
            (
                f"baseline, fixed 35/15 split: {users} DM users, DM channels known",
                True,
                FixedSplitChannel,
            )
        )
    if cold:
        runs.append((f"hub, shared 50/s: {users} DM users, every DM opened first", False, None))
        if compare:
            runs.append(
                (
                    f"baseline, fixed 35/15 split: {users} DM users, DM opened first",
                    False,
                    FixedSplitChannel,
                )
            )
    for title, warm, make_channel in runs:
        with tempfile.TemporaryDirectory() as folder:
            await hub_run(Path(folder), title, users, warm=warm, make_channel=make_channel)
    if compare:
        with tempfile.TemporaryDirectory() as folder:
            await direct_run(Path(folder), users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=USERS, help=f"DM users (default {USERS})")
    parser.add_argument("--skip-compare", action="store_true", help="only the hub's own runs")
    parser.add_argument("--cold", action="store_true", help="also a phase opening every DM")
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be at least 1")
    try:
        asyncio.run(main(args.users, not args.skip_compare, args.cold))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
