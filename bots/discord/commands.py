"""The slash commands: thin wrappers that turn options into core service calls.

``register_commands`` adds every command to a tree. Each command hands its work
to :class:`~bots.discord.replies.Replier`, so replies are ephemeral, slow work is
deferred, and errors (a :class:`~core.errors.HubError` says what is allowed) are
answered by the tree's error handler.
"""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands

from bots.discord.filter_commands import build_filters_group
from bots.discord.options import (
    TextChannel,
    caller,
    destination_for,
    place,
    signal_choices,
)
from bots.discord.replies import Replier
from core.context import HubContext
from core.filters import FIELD_HELP
from core.services.feedback import OutcomeStats
from core.settings import DiscordSettings
from core.signals import Signal

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


def register_commands(
    tree: app_commands.CommandTree[Any],
    hub: HubContext,
    settings: DiscordSettings,
    replier: Replier,
) -> None:
    """Add every slash command to ``tree``."""
    subs = hub.services.subscriptions
    admins = frozenset(settings.admin_user_ids)

    @app_commands.command(name="subscribe", description="Get signal alerts by DM or in a channel")
    @app_commands.describe(channel="A channel to post alerts in (needs Manage Channels there)")
    async def subscribe(
        interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            user = await caller(hub, interaction)
            _info, changed = await subs.subscribe("discord", destination, user.id)
            if not changed:
                return f"{place(channel)} already get alerts. Tune them with `/filters set`."
            return (
                f"Subscribed {place(channel)}: alerts will arrive there. "
                "Narrow them with `/filters set`."
            )

        await replier.run(interaction, work())

    @app_commands.command(
        name="unsubscribe", description="Stop signal alerts by DM or in a channel"
    )
    @app_commands.describe(channel="The channel to stop (needs Manage Channels there)")
    async def unsubscribe(
        interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            if await subs.unsubscribe("discord", destination):
                return f"Unsubscribed {place(channel)}: no more alerts there."
            return f"{place(channel)} was not subscribed; nothing to do."

        await replier.run(interaction, work())

    @app_commands.command(name="feedback", description="Report how a signal's trade went")
    @app_commands.describe(
        signal_id="The signal (pick one of your recent alerts)",
        outcome="How it went",
        return_pct="Your return in percent, e.g. 12.5 or -3",
    )
    async def feedback(
        interaction: discord.Interaction[Any],
        signal_id: str,
        outcome: Outcome,
        return_pct: app_commands.Range[float, -100.0, 10000.0] | None = None,
    ) -> None:
        async def work() -> str:
            user = await caller(hub, interaction)
            info = await hub.services.feedback.record(user.id, signal_id, outcome, return_pct)
            ret = "" if info.return_pct is None else f" with {info.return_pct:+g}%"
            verb = "Updated" if info.updated else "Recorded"
            return f"{verb}: **{info.outcome}**{ret} on `{info.signal_id}`."

        await replier.run(interaction, work())

    @feedback.autocomplete("signal_id")
    async def feedback_signal_id(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await signal_choices(hub, interaction, current)

    @app_commands.command(name="stats", description="Your win rate and average return")
    async def stats(interaction: discord.Interaction[Any]) -> None:
        async def work() -> str:
            user = await caller(hub, interaction)
            mine = await hub.services.feedback.user_stats(user.id)
            text = f"**Your stats**\nSignals received: {mine.signals_received}\n" + outcome_lines(
                mine.outcomes
            )
            if interaction.user.id in admins:
                groups = await hub.services.feedback.by_catalyst()
                lines = [
                    f"`{g.key}`: {g.stats.trades_executed} trades, win rate {g.stats.win_rate_text}"
                    for g in groups[:15]
                ]
                if lines:
                    text += "\n**All users by catalyst**\n" + "\n".join(lines)
            return text

        await replier.run(interaction, work())

    @app_commands.command(
        name="recent", description="The latest signals (matching your DM filters)"
    )
    @app_commands.describe(count=f"How many, 1-{RECENT_MAX}")
    async def recent(
        interaction: discord.Interaction[Any],
        count: app_commands.Range[int, 1, RECENT_MAX] = 5,
    ) -> None:
        async def work() -> str:
            if not 1 <= count <= RECENT_MAX:
                return f"count must be between 1 and {RECENT_MAX}."
            signals, flt = await hub.services.signals.recent_for_destination(
                "discord", destination_for(interaction, None, manage=False), count
            )
            if not signals:
                return "No signals yet" + (" match your filters." if flt else ".")
            heading = "**Latest signals**" + (" matching your filters" if flt else "")
            return heading + "\n" + "\n".join(signal_line(s) for s in signals)

        await replier.run(interaction, work())

    @app_commands.command(name="link", description="Link this account with Telegram or the API")
    @app_commands.describe(code="A code from /link on the other account; leave out to get one")
    async def link(interaction: discord.Interaction[Any], code: str | None = None) -> None:
        async def work() -> str:
            user = await caller(hub, interaction)
            if code is None or not code.strip():
                issued = await hub.services.accounts.issue_link_code(user.id, "discord")
                return (
                    f"Your link code is `{issued}` (valid 15 minutes). Send `/link {issued}` "
                    "from the account you want to link with this one."
                )
            merged = await hub.services.accounts.redeem_link_code(code, user.id)
            return f"Linked: both accounts are now hub user `{merged.name}`."

        await replier.run(interaction, work())

    @app_commands.command(name="help", description="What this bot does and how to use it")
    async def help_(interaction: discord.Interaction[Any]) -> None:
        async def work() -> str:
            return help_text()

        await replier.run(interaction, work())

    commands: tuple[app_commands.Command[Any, ..., None], ...] = (
        subscribe,
        unsubscribe,
        feedback,
        stats,
        recent,
        link,
        help_,
    )
    for command in commands:
        tree.add_command(command)
    tree.add_command(build_filters_group(hub, replier))
