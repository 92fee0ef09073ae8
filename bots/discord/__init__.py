"""Discord adapter: slash commands, alert embeds with outcome buttons, and delivery.

The composition root builds :class:`DiscordBot` from ``settings.discord`` and the
HubContext, registers ``bot.channel`` on the dispatcher, and awaits ``start()``.
"""

from bots.discord.bot import DiscordBot, DiscordStartError
from bots.discord.channel import DiscordChannel

__all__ = ["DiscordBot", "DiscordChannel", "DiscordStartError"]
