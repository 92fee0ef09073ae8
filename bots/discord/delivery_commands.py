"""``/delivery show|quiet|digest|max [channel]``: when a destination gets its alerts.

Quiet hours hold alerts until they end, a digest period batches them, and a cap
(``max 10/h``) holds what goes over it; held alerts arrive together as one digest
(bots/discord/digest.py). The settings are parsed and checked by
:class:`~domain.delivery_prefs.DeliveryPrefs` through ``ctx.services.delivery``,
whose errors say what is allowed.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

import discord
from discord import app_commands

from bots.discord.options import CHOICE_MAX, CHOICES_MAX, TextChannel, destination_for, place
from bots.discord.replies import Replier
from core.context import HubContext
from domain.delivery_prefs import DeliveryPrefs

OFF_WORDS = frozenset({"off", "none", "-"})
VALUE_MAX = 100
Value = app_commands.Range[str, 1, VALUE_MAX]


def prefs_text(prefs: DeliveryPrefs, where: str) -> str:
    if prefs.empty:
        return f"Every alert goes to {where} at once: no quiet hours, digest or cap."
    lines = "\n".join(f"• `{line}`" for line in prefs.lines())
    return (
        f"Delivery to {where}:\n{lines}\n"
        "Held alerts arrive together as one digest. `off` turns a setting off."
    )


def quiet_value(hours: str, timezone: str | None) -> str:
    """``hours`` and ``timezone`` as one quiet setting: ``22:00-07:00 Europe/Berlin``,
    ``off``, or ``hours`` as typed when it already names a zone."""
    hours = hours.strip()
    if hours.lower() in OFF_WORDS:
        return "off"
    zone = (timezone or "").strip()
    return f"{hours} {zone}" if zone else hours


@cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if len(z) <= CHOICE_MAX))


def zone_choices(current: str) -> list[app_commands.Choice[str]]:
    """IANA zones containing ``current`` (case-insensitive), the prefix matches first."""
    needle = current.strip().casefold().replace(" ", "_")
    zones = _zones()
    if not needle:
        picks = ["UTC", "America/New_York", "America/Chicago", "America/Los_Angeles"]
        picks += ["Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney"]
        return [app_commands.Choice(name=z, value=z) for z in picks if z in zones]
    first = [z for z in zones if z.casefold().startswith(needle)]
    rest = [z for z in zones if needle in z.casefold() and z not in first]
    return [app_commands.Choice(name=z, value=z) for z in (first + rest)[:CHOICES_MAX]]


class DeliveryGroup(
    app_commands.Group, name="delivery", description="Quiet hours, digests and a cap on alerts"
):
    """``/delivery show|quiet|digest|max``: discord.py binds each subcommand to this instance."""

    def __init__(self, hub: HubContext, replier: Replier) -> None:
        super().__init__()
        self.hub = hub
        self.replier = replier

    async def _set(
        self,
        interaction: discord.Interaction[Any],
        channel: app_commands.AppCommandChannel | None,
        name: str,
        value: str,
    ) -> None:
        if value.strip().lower() in OFF_WORDS:
            value = "off"

        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            prefs = await self.hub.services.delivery.set("discord", destination, name, value)
            return f"Saved. {prefs_text(prefs, place(channel))}"

        await self.replier.run(interaction, work())

    @app_commands.command(name="show", description="When your DMs or a channel get alerts")
    @app_commands.describe(channel="A subscribed channel; leave out for your DMs")
    async def show(
        self, interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=False)
            prefs = await self.hub.services.delivery.get("discord", destination)
            return prefs_text(prefs, place(channel))

        await self.replier.run(interaction, work())

    @app_commands.command(name="quiet", description="Hold alerts during quiet hours (or off)")
    @app_commands.describe(
        hours="From-to on a 24h clock, like 22:00-07:00; or off",
        timezone="An IANA time zone like America/New_York (default UTC)",
        channel="A subscribed channel (needs Manage Channels); leave out for your DMs",
    )
    async def quiet(
        self,
        interaction: discord.Interaction[Any],
        hours: Value,
        timezone: Value | None = None,
        channel: TextChannel | None = None,
    ) -> None:
        await self._set(interaction, channel, "quiet", quiet_value(hours, timezone))

    @quiet.autocomplete("timezone")
    async def timezone_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return zone_choices(current)

    @app_commands.command(name="digest", description="Batch alerts into one message per period")
    @app_commands.describe(
        period="How often, 5m to 24h, like 15m or 1h; or off",
        channel="A subscribed channel (needs Manage Channels); leave out for your DMs",
    )
    async def digest(
        self,
        interaction: discord.Interaction[Any],
        period: Value,
        channel: TextChannel | None = None,
    ) -> None:
        await self._set(interaction, channel, "digest", period)

    @app_commands.command(name="max", description="At most N messages per period (or off)")
    @app_commands.describe(
        limit="A count per period, like 10/h, 50/d or 3/15m; or off",
        channel="A subscribed channel (needs Manage Channels); leave out for your DMs",
    )
    async def max_(
        self,
        interaction: discord.Interaction[Any],
        limit: Value,
        channel: TextChannel | None = None,
    ) -> None:
        await self._set(interaction, channel, "max", limit)
