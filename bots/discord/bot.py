"""The Discord bot: a discord.py client with slash commands, run in the hub's event loop.

The composition root builds a :class:`DiscordBot`, registers ``bot.channel`` on
the dispatcher, then awaits :meth:`DiscordBot.start` (which runs
``client.start(token)`` as a background task, never ``client.run``) and finally
:meth:`DiscordBot.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import discord

from bots.discord.channel import DiscordChannel
from bots.discord.commands import register_commands
from bots.discord.replies import DEFER_AFTER, HubCommandTree, Replier
from bots.discord.views import OutcomeButton
from core.context import HubContext
from core.settings import DiscordSettings
from domain.errors import ConfigError

log = logging.getLogger(__name__)
#: Memo namespace for user id -> DM channel id.
DM_MEMOS = "discord:dm"


class DiscordStartError(RuntimeError):
    """The bot could not log in, sync its commands or reach the gateway."""


def bot_intents() -> discord.Intents:
    """Minimal intents: slash commands and buttons need none, and nothing privileged."""
    return discord.Intents.none()


class HubClient(discord.Client):
    """A discord.py client that carries the HubContext and a command tree."""

    def __init__(
        self,
        hub: HubContext,
        settings: DiscordSettings,
        replier: Replier,
        **options: Any,
    ) -> None:
        super().__init__(intents=bot_intents(), **options)
        self.hub = hub
        self.settings = settings
        self.tree = HubCommandTree(self)
        self.ready_event = asyncio.Event()
        self.dm_seen: Callable[[int, int], None] | None = None
        register_commands(self.tree, hub, settings, replier)

    async def setup_hook(self) -> None:
        # Run by login(); commands are synced by the process that holds the gateway.
        self.add_dynamic_items(OutcomeButton)

    async def sync_app_commands(self) -> None:
        if self.settings.guild_ids:
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d discord commands to guild %d", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d discord commands globally (may take a while to show)", len(synced))

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        channel = interaction.channel
        if self.dm_seen is not None and isinstance(channel, discord.DMChannel):
            self.dm_seen(interaction.user.id, channel.id)

    async def on_ready(self) -> None:
        log.info("discord bot connected as %s (id %s)", self.user, self.user and self.user.id)
        self.ready_event.set()


class DiscordBot:
    """Owns the discord.py client and the delivery channel. Nothing connects in ``__init__``."""

    def __init__(
        self,
        settings: DiscordSettings,
        ctx: HubContext,
        *,
        ready_timeout: float = 60.0,
        defer_after: float = DEFER_AFTER,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.ready_timeout = ready_timeout
        self.replier = Replier(defer_after)
        # No GUILDS intent means no GUILD_CREATE to wait for after READY.
        options: dict[str, Any] = {"max_ratelimit_timeout": 30.0, "guild_ready_timeout": 0.1}
        options.update(client_options or {})
        self._client_options = options
        self.client = self._new_client()
        self.channel = DiscordChannel(self.client)
        self.channel.on_dm_opened = self._store_dm_channel
        self._task: asyncio.Task[None] | None = None

    def _new_client(self) -> HubClient:
        client = HubClient(self.ctx, self.settings, self.replier, **self._client_options)
        client.dm_seen = lambda user_id, channel_id: self.channel.remember_dm_channel(
            user_id, channel_id
        )
        return client

    @property
    def running(self) -> bool:
        """True while connected to (or connecting to) the gateway."""
        return self._task is not None and not self._task.done()

    def _token(self) -> str:
        token = self.settings.token.get_secret_value().strip()
        if not token:
            raise ConfigError("discord.token: required to start the Discord bot")
        return token

    async def start(self, *, gateway: bool = True) -> None:
        """Log in over REST, then (``gateway``) sync commands and connect to the
        gateway; return once ready.

        ``gateway=False`` only logs in over REST (no commands, no buttons): enough
        for :attr:`channel` to deliver. Only one process may hold the gateway, so
        the hub elects it and calls :meth:`connect_gateway` /
        :meth:`disconnect_gateway` as the lead moves.

        Raises :class:`DiscordStartError` (without the token) if that fails or
        takes longer than ``ready_timeout`` seconds.
        """
        await self.login()
        if gateway:
            await self.connect_gateway()

    async def login(self) -> None:
        if self.client.user is not None and not self.client.is_closed():
            return
        token = self._token()
        await self._load_dm_channels()
        try:
            await asyncio.wait_for(self.client.login(token), self.ready_timeout)
        except (discord.DiscordException, OSError, TimeoutError) as exc:
            await self.stop()
            raise DiscordStartError(f"the Discord bot could not log in: {_describe(exc)}") from None

    async def connect_gateway(self) -> None:
        """Sync the slash commands and connect to the gateway (interactions)."""
        if self.running:
            return
        await self.login()
        try:
            await asyncio.wait_for(self.client.sync_app_commands(), self.ready_timeout)
        except (discord.DiscordException, OSError, TimeoutError) as exc:
            await self.stop()
            raise DiscordStartError(f"the Discord bot could not start: {_describe(exc)}") from None
        self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord-client")
        self._task.add_done_callback(_log_exit)
        ready = asyncio.create_task(self.client.ready_event.wait(), name="discord-ready")
        try:
            done, _ = await asyncio.wait(
                {self._task, ready},
                timeout=self.ready_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not ready.done():
                ready.cancel()
        if ready in done:
            return
        if self._task in done:
            failure = self._task.exception()
            await self.stop()
            reason = _describe(failure) if failure is not None else "the client stopped"
            raise DiscordStartError(f"the Discord bot could not start: {reason}") from None
        await self.stop()
        raise DiscordStartError(
            f"the Discord bot was not ready within {self.ready_timeout:g}s "
            "(gateway unreachable or slow)"
        )

    async def disconnect_gateway(self) -> None:
        """Leave the gateway (another process leads now) and stay logged in over
        REST for delivery. discord.py cannot reopen a closed client, so a fresh
        one takes its place."""
        if not self.running:
            return
        await self.stop()
        self.client = self._new_client()
        self.channel.bind(self.client)
        try:
            await self.login()
        except DiscordStartError as exc:
            log.warning("%s; deliveries retry until it can", exc)

    async def _load_dm_channels(self) -> None:
        """DM channels opened before a restart: reused, so no request re-opens them."""
        memos = await self.ctx.services.memos.load(DM_MEMOS)
        for user_id, channel_id in memos.items():
            if user_id.isdigit() and channel_id.isdigit():
                self.channel.remember_dm_channel(int(user_id), int(channel_id))
        if memos:
            log.info("reusing %d stored Discord DM channels", len(memos))

    async def _store_dm_channel(self, user_id: int, channel_id: int) -> None:
        await self.ctx.services.memos.put(DM_MEMOS, str(user_id), str(channel_id))

    async def stop(self) -> None:
        """Close the connection and wait for the client task to end."""
        if not self.client.is_closed():
            await self.client.close()
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _log_exit(task: asyncio.Task[None]) -> None:
    """Make a client that dies after start-up (bad token on reconnect, ...) visible."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("the Discord client stopped: %s", _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, discord.LoginFailure):
        return "Discord rejected the token (check discord.token)"
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return "a privileged intent is required"
    if isinstance(exc, discord.HTTPException):
        return f"Discord answered {exc.status} {exc.code or ''}".strip()
    return exc.__class__.__name__
