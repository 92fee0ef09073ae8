"""Every slash command of the bot, and :func:`register_commands`, which adds them
to the bot's tree.

One module per concept, each command a :class:`~bots.discord.slash.SlashCommand`:

* :mod:`bots.discord.subscription_commands`: ``/subscribe``, ``/unsubscribe``
* :mod:`bots.discord.filter_commands`: the ``/filters`` group
* :mod:`bots.discord.delivery_commands`: the ``/delivery`` group
* :mod:`bots.discord.feedback_commands`: ``/feedback``, ``/stats``
* :mod:`bots.discord.signal_commands`: ``/recent``
* :mod:`bots.discord.account_commands`: ``/link``, ``/help``
"""

from __future__ import annotations

from typing import Any

from discord import app_commands

from bots.discord.account_commands import HelpCommand, LinkCommand
from bots.discord.delivery_commands import DeliveryGroup
from bots.discord.feedback_commands import FeedbackCommand, StatsCommand
from bots.discord.filter_commands import FiltersGroup
from bots.discord.replies import Replier
from bots.discord.signal_commands import RecentCommand
from bots.discord.subscription_commands import SubscribeCommand, UnsubscribeCommand
from core.context import HubContext
from core.settings import DiscordSettings


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
        DeliveryGroup(hub, replier),
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
