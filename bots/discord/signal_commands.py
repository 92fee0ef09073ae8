"""``/recent``: the latest signals, through the caller's DM filters."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.discord.options import destination_for
from bots.discord.slash import SlashCommand
from domain.signals import Signal

RECENT_MAX = 10


def signal_line(signal: Signal) -> str:
    price = f" @ ${signal.price:g}" if signal.price is not None else ""
    headline = f" — {signal.headline[:120]}" if signal.headline else ""
    return (
        f"`{signal.ticker}` {signal.signal_type.value} {signal.confidence * 100:.0f}% "
        f"{signal.catalyst_type}{price}{headline} (`{signal.signal_id}`)"
    )


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
