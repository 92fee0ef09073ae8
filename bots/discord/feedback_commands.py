"""``/feedback`` and ``/stats``: trade outcomes in, win rates and returns out."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands

from bots.discord.options import caller, signal_choices
from bots.discord.replies import Picture, Replier
from bots.discord.slash import SlashCommand
from core.context import HubContext
from core.settings import DiscordSettings
from domain.outcomes import OutcomeStats

Outcome = Literal["win", "loss", "breakeven", "skipped"]


def outcome_lines(stats: OutcomeStats) -> str:
    return (
        f"Trades: {stats.trades_executed} (W {stats.wins} / L {stats.losses} / "
        f"BE {stats.breakeven}), skipped {stats.skipped}\n"
        f"Win rate: {stats.win_rate_text} · average return: {stats.avg_return_text}"
    )


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
        async def work() -> Picture:
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
            # The chart (core/charts.py) under the numbers, as the embed's image.
            return Picture(text, await feedback.chart(user.id, user.name), "stats.png")

        await self.replier.run(interaction, work())
