"""Option types, destinations and autocomplete shared by the slash commands."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.discord.channel import channel_destination, dm_destination
from core.context import HubContext
from core.services import UserRef
from domain.errors import PermissionDenied
from domain.filters import KNOWN_CATALYSTS

CHOICES_MAX = 25
CHOICE_MAX = 100
TEXT_CHANNEL_TYPES = (discord.ChannelType.text, discord.ChannelType.news)
#: A string option with one of these values clears that filter field.
CLEAR_WORDS = frozenset({"-", "none", "clear", "any"})


class TextChannelOption(app_commands.Transformer[Any]):
    """A text or announcement channel, as resolved in the interaction (with the caller's permissions)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return list(TEXT_CHANNEL_TYPES)

    async def transform(
        self, interaction: discord.Interaction[Any], value: Any, /
    ) -> app_commands.AppCommandChannel:
        if isinstance(value, app_commands.AppCommandChannel) and value.type in TEXT_CHANNEL_TYPES:
            return value
        raise app_commands.TransformerError(value, discord.AppCommandOptionType.channel, self)


TextChannel = app_commands.Transform[app_commands.AppCommandChannel, TextChannelOption]


async def caller(hub: HubContext, interaction: discord.Interaction[Any]) -> UserRef:
    return await hub.services.accounts.resolve("discord", interaction.user.id)


def destination_for(
    interaction: discord.Interaction[Any],
    channel: app_commands.AppCommandChannel | None,
    *,
    manage: bool,
) -> str:
    """The caller's DM, or ``channel`` (which needs Manage Channels there when ``manage``)."""
    if channel is None:
        return dm_destination(interaction.user.id)
    if manage and not channel.permissions.manage_channels:
        raise PermissionDenied(
            f"You need the Manage Channels permission in {channel.mention} to change its "
            "alerts. Ask a server admin, or leave out the channel option to use your DMs."
        )
    return channel_destination(channel.id)


def place(channel: app_commands.AppCommandChannel | None) -> str:
    return "your DMs" if channel is None else channel.mention


def catalyst_choices(current: str) -> list[app_commands.Choice[str]]:
    """Complete the last item of a comma-separated catalyst list."""
    head, sep, last = current.rpartition(",")
    prefix = f"{head}{sep}" if sep else ""
    chosen = {p.strip().upper() for p in head.split(",") if p.strip()}
    needle = last.strip().upper()
    out: list[app_commands.Choice[str]] = []
    for name in KNOWN_CATALYSTS:
        if name in chosen or (needle and needle not in name):
            continue
        value = f"{prefix}{name}"
        if len(value) <= CHOICE_MAX:
            out.append(app_commands.Choice(name=value, value=value))
    return out[:CHOICES_MAX]


async def signal_choices(
    hub: HubContext, interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """The caller's recently delivered signals whose id or ticker contains ``current``."""
    user = await caller(hub, interaction)
    needle = current.strip().casefold()
    out: list[app_commands.Choice[str]] = []
    for signal_id, ticker in await hub.services.signals.recent_for_user(user.id, limit=50):
        if len(signal_id) > CHOICE_MAX:
            continue
        if needle and needle not in signal_id.casefold() and needle not in ticker.casefold():
            continue
        name = f"{ticker} · {signal_id}"
        out.append(app_commands.Choice(name=name[:CHOICE_MAX], value=signal_id))
        if len(out) >= CHOICES_MAX:
            break
    return out
