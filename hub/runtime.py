"""Run the hub: build from Settings, start what is enabled, stop cleanly on SIGINT/SIGTERM.

Roles (``catalyst run --roles``) split one process into the Procfile's processes:

* ``api``        HTTP API and WebSocket stream (plus the Telegram webhook route)
* ``dispatcher`` the outbox dispatcher with every enabled channel's sender
* ``bots``       the Telegram and Discord bots (commands, buttons)
* ``scheduler``  the Catalyst job

``catalyst run`` with no roles is all of them in one process. :meth:`Hub.build`
creates every object (no I/O); :meth:`Hub.start` connects and starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from core.channels import ConsoleChannel
from core.context import HubContext
from core.leadership import Action, Leadership
from core.scheduler import CatalystJob, CatalystScheduler
from core.settings import Settings
from core.sources.loader import load_source
from hub.build import build_context, prepare_database
from storage.locks import LeaderLock

log = logging.getLogger(__name__)

ROLES = ("api", "dispatcher", "bots", "scheduler")
CONSOLE_USER = "console"
CONSOLE_DESTINATION = "stdout"


def parse_roles(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset(ROLES)
    roles = {r.strip().lower() for r in text.split(",") if r.strip()}
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise ValueError(
            f"unknown role(s) {', '.join(sorted(unknown)) or '(none)'}; roles are {', '.join(ROLES)}"
        )
    return frozenset(roles)


class Hub:
    def __init__(self, settings: Settings, roles: frozenset[str] = frozenset(ROLES)) -> None:
        self.settings = settings
        self.roles = roles
        self.ctx: HubContext | None = None
        self.app: Any = None
        self.api_server: Any = None
        self.telegram: Any = None
        self.discord: Any = None
        self._stops: list[Callable[[], Awaitable[None]]] = []
        #: The work this process may do only as the elected leader, by role name.
        self.leaderships: dict[str, Leadership] = {}
        self._stopping = False

    @property
    def _delivers(self) -> bool:
        return "dispatcher" in self.roles and self.settings.dispatcher.enabled

    def build(self) -> HubContext:
        """Create every object for the enabled roles. No network, no tasks."""
        if self.ctx is not None:
            return self.ctx
        settings = self.settings
        ctx = build_context(settings)
        self.ctx = ctx
        if settings.console.enabled and self._delivers:
            ctx.dispatcher.register(ConsoleChannel())
        chat = self.roles & {"bots", "dispatcher"}
        webhook_here = "api" in self.roles and settings.telegram.mode == "webhook"
        if settings.telegram.enabled and (chat or webhook_here):
            from bots.telegram.bot import TelegramBot

            self.telegram = TelegramBot(settings.telegram, ctx)
            if self._delivers:
                ctx.dispatcher.register(self.telegram.channel)
        if settings.discord.enabled and chat:
            from bots.discord.bot import DiscordBot

            self.discord = DiscordBot(settings.discord, ctx)
            if self._delivers:
                ctx.dispatcher.register(self.discord.channel)
        if settings.api.enabled and "api" in self.roles:
            from api.app import create_app

            routers = []
            if self.telegram is not None and settings.telegram.mode == "webhook":
                from bots.telegram.webhook import build_webhook_router

                routers.append(build_webhook_router(self.telegram))
            self.app = create_app(ctx, extra_routers=routers)
        return ctx

    async def start(self, *, serve_api: bool = True) -> HubContext:
        """Start everything built. ``serve_api=False`` when an outside ASGI server
        (uvicorn in the Procfile's web role) serves :attr:`app`."""
        ctx = self.build()
        settings = self.settings
        self._stops.append(ctx.db.dispose)
        self._stops.append(ctx.auth.settle)  # last-use stamps in flight, before the dispose
        await prepare_database(ctx)
        if not settings.auth.jwt_secret.get_secret_value():
            log.warning(
                "auth.jwt_secret is not set: JWTs use a random per-process secret and stop "
                "working on restart (fine for development; set CATALYST_AUTH__JWT_SECRET)"
            )
        if settings.console.enabled and self._delivers and settings.console.auto_subscribe:
            user = await ctx.services.accounts.ensure_user(CONSOLE_USER)
            await ctx.services.subscriptions.subscribe("console", CONSOLE_DESTINATION, user.id)
        if ctx.listener is not None and (self.app is not None or self._delivers):
            await ctx.listener.start()
            self._stops.append(ctx.listener.stop)

        if self.telegram is not None:
            await self._start_telegram()
        if self.discord is not None:
            await self._start_discord()

        if self.roles & {"api", "scheduler"}:
            count = await ctx.publisher.warm()
            log.info("routing index loaded: %d active subscriptions", count)

        if self._delivers:
            # Each platform's budget belongs to the bot, not the process: one elected
            # sender per platform, whatever the number of worker processes.
            dispatcher = ctx.dispatcher
            dispatcher.start_sweeper()
            self._stops.append(dispatcher.stop)
            for platform in dispatcher.platforms:
                self._lead(
                    f"sender-{platform}",
                    partial(dispatcher.start_platform, platform),
                    partial(dispatcher.stop_platform, platform),
                )

        if settings.scheduler.enabled and "scheduler" in self.roles:
            source = load_source(settings.scheduler, ctx.db)
            scheduler = CatalystScheduler(CatalystJob(source, ctx.publisher), settings.scheduler)

            async def start_job() -> None:
                scheduler.start()

            async def stop_job() -> None:
                await scheduler.stop_and_wait()

            self._lead("scheduler", start_job, stop_job)

        if self.app is not None:
            # Every signal, whoever published it, reaches this process's WebSocket clients.
            await ctx.tail.start()
            self._stops.append(ctx.tail.stop)
            # REST reads of the newest signals from memory (after the tail: see RecentSignals).
            await ctx.recent.start()
            self._stops.append(ctx.recent.stop)
            # Signals received over the stream, stored in batches (core.receipts).
            ctx.receipts.start()
            self._stops.append(ctx.receipts.stop)
            if serve_api:
                from api.server import ApiServer

                self.api_server = ApiServer(self.app, settings.api.host, settings.api.port)
                await self.api_server.start()
                self._stops.append(self.api_server.stop)
                log.info("API listening on http://%s:%s", settings.api.host, self.api_server.port)

        log.info(
            "catalyst hub running (roles: %s; channels: %s; database: %s)",
            ",".join(sorted(self.roles)),
            ",".join(ctx.dispatcher.platforms) if self._delivers else "none",
            "sqlite" if ctx.db.is_sqlite else "postgresql",
        )
        return ctx

    async def _start_telegram(self) -> None:
        settings = self.settings
        telegram = self.telegram
        self._stops.append(telegram.stop)
        if settings.telegram.mode == "webhook":
            # Telegram pushes each update once to whichever web node it reaches.
            await telegram.start(receive_updates="api" in self.roles)
            return
        await telegram.start(receive_updates=False)
        if "bots" in self.roles:
            # Exactly one process polls (a second getUpdates gets 409 Conflict).
            self._lead("telegram-receiver", telegram.start_receiving, telegram.stop_receiving)

    async def _start_discord(self) -> None:
        discord = self.discord
        self._stops.append(discord.stop)
        await discord.start(gateway=False)
        if "bots" in self.roles:

            async def leave_gateway() -> None:
                if not self._stopping:  # when stopping, discord.stop() follows anyway
                    await discord.disconnect_gateway()

            # Exactly one process holds the gateway and answers interactions.
            self._lead("discord-gateway", discord.connect_gateway, leave_gateway)

    def _lead(self, role: str, on_acquire: Action, on_release: Action) -> Leadership:
        """Run ``on_acquire`` .. ``on_release`` only while this process leads ``role``."""
        ctx = self.ctx
        assert ctx is not None
        gauge = ctx.metrics.leader.labels(role=role)

        async def acquire() -> None:
            await on_acquire()
            gauge.set(1)

        async def release() -> None:
            gauge.set(0)
            await on_release()

        cluster = self.settings.cluster
        leadership = Leadership(
            LeaderLock(ctx.db, role),
            on_acquire=acquire,
            on_release=release,
            check_seconds=cluster.lock_check_seconds,
            retry_seconds=cluster.standby_retry_seconds,
        )
        self.leaderships[role] = leadership
        task = asyncio.create_task(leadership.run(), name=f"lead-{role}")
        self._stops.append(_cancel(task))
        return leadership

    async def stop(self) -> None:
        self._stopping = True
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                log.exception("error while stopping")
        log.info("catalyst hub stopped")

    async def run_until_signalled(self) -> None:
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop_event.set)
        try:
            await self.start()
            # Everything built so far (modules, the app, the routing index) lives as
            # long as the process: out of the collector's sight, a full collection
            # during a connect storm or a fan-out walks only what connections
            # allocate. Only here, in the process's main: a freeze in a test process
            # would keep its uncollected garbage forever.
            gc.collect()
            gc.freeze()
            await stop_event.wait()
            log.info("shutting down")
        finally:
            await self.stop()


def _cancel(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def _run() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return _run
