"""The top-level slash commands, one class each: thin wrappers that turn options into
core service calls.

Each class holds what its command needs (the hub, the replier, settings) and
builds its :class:`discord.app_commands.Command` from a bound method, so one
command can be constructed, added to a tree and tested on its own.
:func:`register_commands` adds them all, with ``/filters``
(:class:`~bots.discord.filter_commands.FiltersGroup`), to the bot's tree.

Every command hands its work to :class:`~bots.discord.replies.Replier`, so
replies are ephemeral, slow work is deferred, and errors (a
:class:`~domain.errors.HubError` says what is allowed) are answered by the tree's
error handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Literal

import discord
from discord import app_commands

from bots.discord.filter_commands import FiltersGroup
from bots.discord.options import (
    TextChannel,
    caller,
    destination_for,
    place,
    signal_choices,
)
from bots.discord.replies import Replier
from core.context import HubContext
from core.settings import DiscordSettings
from domain.filters import FIELD_HELP
from domain.outcomes import OutcomeStats
from domain.signals import Signal

Outcome = Literal["win", "loss", "breakeven", "skipped"]
RECENT_MAX = 10

HELP = """**Catalyst Signal Hub** sends catalyst trading signals (FDA, M&A, earnings…) here.
`/subscribe [channel]` get alerts by DM, or in a channel (needs Manage Channels there)
`/unsubscribe [channel]` stop them
`/filters show|set|reset [channel]` choose which signals you get
`/feedback signal_id outcome [return_pct]` report how a trade went (or press Win/Loss/Skip)
`/stats` your win rate and average return · `/recent [count]` the latest signals
`/link [code]` link this account with Telegram or the API
**Filter options** (`/filters set`; `-` clears one):
"""


def help_text() -> str:
    return HELP + "\n".join(f"• `{name}`: {text}" for name, text in FIELD_HELP.items())


def outcome_lines(stats: OutcomeStats) -> str:
    return (
        f"Trades: {stats.trades_executed} (W {stats.wins} / L {stats.losses} / "
        f"BE {stats.breakeven}), skipped {stats.skipped}\n"
        f"Win rate: {stats.win_rate_text} · average return: {stats.avg_return_text}"
    )


def signal_line(signal: Signal) -> str:
    price = f" @ ${signal.price:g}" if signal.price is not None else ""
    headline = f" — {signal.headline[:120]}" if signal.headline else ""
    return (
        f"`{signal.ticker}` {signal.signal_type.value} {signal.confidence * 100:.0f}% "
        f"{signal.catalyst_type}{price}{headline} (`{signal.signal_id}`)"
    )


class SlashCommand:
    """One top-level slash command and the state it needs.

    A subclass sets :attr:`name` and :attr:`description` and defines
    ``async def callback(self, interaction, <options>...)``: the options are its
    annotated parameters, described with ``@app_commands.describe``. :attr:`command`
    is built from the bound method, so discord.py calls it with this instance as
    ``self``. Add ``instance.command`` to a tree.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    callback: Callable[..., Coroutine[Any, Any, None]]

    def __init__(self, hub: HubContext, replier: Replier) -> None:
        self.hub = hub
        self.replier = replier
        self.command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name=self.name, description=self.description, callback=self.callback
        )


class SubscribeCommand(SlashCommand):
    name = "subscribe"
    description = "Get signal alerts by DM or in a channel"

    @app_commands.describe(channel="A channel to post alerts in (needs Manage Channels there)")
    async def callback(
        self, interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            user = await caller(self.hub, interaction)
            subs = self.hub.services.subscriptions
            _info, changed = await subs.subscribe("discord", destination, user.id)
            if not changed:
                return f"{place(channel)} already get alerts. Tune them with `/filters set`."
            return (
                f"Subscribed {place(channel)}: alerts will arrive there. "
                "Narrow them with `/filters set`."
            )

        await self.replier.run(interaction, work())


class UnsubscribeCommand(SlashCommand):
    name = "unsubscribe"
    description = "Stop signal alerts by DM or in a channel"

    @app_commands.describe(channel="The channel to stop (needs Manage Channels there)")
    async def callback(
        self, interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            if await self.hub.services.subscriptions.unsubscribe("discord", destination):
                return f"Unsubscribed {place(channel)}: no more alerts there."
            return f"{place(channel)} was not subscribed; nothing to do."

        await self.replier.run(interaction, work())


class FeedbackCommand(SlashCommand):
    """``/feedback``, whose ``signal_id`` completes to the caller's recent alerts."""

    name = "feedback"
    description = "Report how a signal's trade went"

    def __init__(self, hub: HubContext, replier: Replier) -> None:
        super().__init__(hub, replier)
        self.command.autocomplete("signal_id")(self.signal_id_choices)

    @app_commands.describe(
        signal_id="The signal (pick one of your recent alerts)",
        outcome="How it went",
        return_pct="Your return in percent, e.g. 12.5 or -3",
    )
    async def callback(
        self,
        interaction: discord.Interaction[Any],
        signal_id: str,
        outcome: Outcome,
        return_pct: app_commands.Range[float, -100.0, 10000.0] | None = None,
    ) -> None:
        async def work() -> str:
            user = await caller(self.hub, interaction)
            feedback = self.hub.services.feedback
            info = await feedback.record(user.id, signal_id, outcome, return_pct)
            ret = "" if info.return_pct is None else f" with {info.return_pct:+g}%"
            verb = "Updated" if info.updated else "Recorded"
            return f"{verb}: **{info.outcome}**{ret} on `{info.signal_id}`."

        await self.replier.run(interaction, work())

    async def signal_id_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await signal_choices(self.hub, interaction, current)


class StatsCommand(SlashCommand):
    """``/stats``: the caller's outcomes; admins also see every user's by catalyst."""

    name = "stats"
    description = "Your win rate and average return"

    def __init__(self, hub: HubContext, replier: Replier, settings: DiscordSettings) -> None:
        super().__init__(hub, replier)
        self.admins = frozenset(settings.admin_user_ids)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async def work() -> str:
            user = await caller(self.hub, interaction)
            feedback = self.hub.services.feedback
            mine = await feedback.user_stats(user.id)
            text = f"**Your stats**\nSignals received: {mine.signals_received}\n" + outcome_lines(
                mine.outcomes
            )
            if interaction.user.id in self.admins:
                groups = await feedback.by_catalyst()
                lines = [
                    f"`{g.key}`: {g.stats.trades_executed} trades, win rate {g.stats.win_rate_text}"
                    for g in groups[:15]
                ]
                if lines:
                    text += "\n**All users by catalyst**\n" + "\n".join(lines)
            return text

        await self.replier.run(interaction, work())


class RecentCommand(SlashCommand):
    name = "recent"
    description = "The latest signals (matching your DM filters)"

    @app_commands.describe(count=f"How many, 1-{RECENT_MAX}")
    async def callback(
        self,
        interaction: discord.Interaction[Any],
        count: app_commands.Range[int, 1, RECENT_MAX] = 5,
    ) -> None:
        async def work() -> str:
            if not 1 <= count <= RECENT_MAX:
                return f"count must be between 1 and {RECENT_MAX}."
            signals, flt = await self.hub.services.signals.recent_for_destination(
                "discord", destination_for(interaction, None, manage=False), count
            )
            if not signals:
                return "No signals yet" + (" match your filters." if flt else ".")
            heading = "**Latest signals**" + (" matching your filters" if flt else "")
            return heading + "\n" + "\n".join(signal_line(s) for s in signals)

        await self.replier.run(interaction, work())


class LinkCommand(SlashCommand):
    name = "link"
    description = "Link this account with Telegram or the API"

    @app_commands.describe(code="A code from /link on the other account; leave out to get one")
    async def callback(
        self, interaction: discord.Interaction[Any], code: str | None = None
    ) -> None:
        async def work() -> str:
            user = await caller(self.hub, interaction)
            accounts = self.hub.services.accounts
            if code is None or not code.strip():
                issued = await accounts.issue_link_code(user.id, "discord")
                return (
                    f"Your link code is `{issued}` (valid 15 minutes). Send `/link {issued}` "
                    "from the account you want to link with this one."
                )
            merged = await accounts.redeem_link_code(code, user.id)
            return f"Linked: both accounts are now hub user `{merged.name}`."

        await self.replier.run(interaction, work())


class HelpCommand(SlashCommand):
    name = "help"
    description = "What this bot does and how to use it"

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async def work() -> str:
            return help_text()

        await self.replier.run(interaction, work())


def slash_commands(
    hub: HubContext, settings: DiscordSettings, replier: Replier
) -> list[app_commands.Command[Any, ..., None] | app_commands.Group]:
    """Every slash command of the bot, in the order they are synced."""
    return [
        SubscribeCommand(hub, replier).command,
        UnsubscribeCommand(hub, replier).command,
        FeedbackCommand(hub, replier).command,
        StatsCommand(hub, replier, settings).command,
        RecentCommand(hub, replier).command,
        LinkCommand(hub, replier).command,
        HelpCommand(hub, replier).command,
        FiltersGroup(hub, replier),
    ]


def register_commands(
    tree: app_commands.CommandTree[Any],
    hub: HubContext,
    settings: DiscordSettings,
    replier: Replier,
) -> None:
    """Add every slash command to ``tree``."""
    for command in slash_commands(hub, settings, replier):
        tree.add_command(command)
