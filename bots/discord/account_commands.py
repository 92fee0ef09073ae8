"""``/link`` (one hub user across Discord, Telegram and the API) and ``/help``."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.discord.options import caller
from bots.discord.slash import SlashCommand
from domain.filters import FIELD_HELP

HELP = """**Catalyst Signal Hub** sends catalyst trading signals (FDA, M&A, earnings…) here.
`/subscribe [channel]` get alerts by DM, or in a channel (needs Manage Channels there)
`/unsubscribe [channel]` stop them
`/filters show|set|reset [channel]` choose which signals you get
`/filters preview [filter] [days]` what a filter would have sent lately, and how it went
`/delivery show|quiet|digest|max [channel]` quiet hours (`22:00-07:00` + time zone), a digest every `15m`, at most `10/h`; held alerts come as one digest, `off` clears
`/feedback signal_id outcome [return_pct]` report how a trade went (or press Win/Loss/Skip)
`/stats` your win rate and average return · `/recent [count]` the latest signals
`/link [code]` link this account with Telegram or the API
**Filter options** (`/filters set`; `-` clears one):
"""


def help_text() -> str:
    return HELP + "\n".join(f"• `{name}`: {text}" for name, text in FIELD_HELP.items())


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
