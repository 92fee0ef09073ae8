"""``/subscribe`` and ``/unsubscribe``: alerts by DM, or in a channel."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.discord.options import TextChannel, caller, destination_for, place
from bots.discord.slash import SlashCommand


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
