"""``/filters show|set|preview|reset [channel]``: a destination's filter, set only from the
options given, and a preview of what a filter would have sent.

:class:`FiltersGroup` is the command group; the helpers turn its options into
filter changes and a filter into text.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.discord.options import (
    CLEAR_WORDS,
    TextChannel,
    catalyst_choices,
    destination_for,
    place,
)
from bots.discord.replies import Replier
from core.context import HubContext
from domain.errors import InvalidInput
from domain.filters import FIELD_HELP, SignalFilter
from domain.preview import DEFAULT_DAYS, MAX_DAYS

SET_OPTIONS = (
    "min_confidence",
    "tickers",
    "catalyst_types",
    "sectors",
    "min_rvol",
    "min_price",
    "max_price",
    "signal_types",
    "exclude_tickers",
)


def filter_text(flt: SignalFilter, where: str) -> str:
    values = flt.to_mapping()
    if not values:
        return f"No filters on {where}: every signal arrives there."
    lines = []
    for name, value in values.items():
        shown = ", ".join(value) if isinstance(value, list) else f"{value:g}"
        lines.append(f"• `{name}`: {shown}")
    return f"Filters on {where}:\n" + "\n".join(lines)


def _cleared(clear: str | None) -> dict[str, Any]:
    """``clear``'s comma-separated field names as changes to None (numbers can only be
    cleared this way: a number option cannot hold ``-``)."""
    if clear is None or not clear.strip():
        return {}
    names = [n.strip().lower() for n in clear.split(",") if n.strip()]
    unknown = [n for n in names if n not in SET_OPTIONS]
    if unknown:
        raise InvalidInput(
            f"clear: unknown field(s) {', '.join(unknown)[:200]}; "
            f"choose from {', '.join(SET_OPTIONS)}"
        )
    return dict.fromkeys(names)


def changes_from(
    options: dict[str, str | float | None], clear: str | None = None
) -> dict[str, Any]:
    """The given options as filter changes; a clear word (``-``, ``none``) clears a
    field, and so does naming it in ``clear``."""
    changes: dict[str, Any] = _cleared(clear)
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, str) and value.strip().lower() in CLEAR_WORDS:
            changes[name] = None
        else:
            changes[name] = value
    if not changes:
        allowed = "\n".join(f"• `{n}`: {FIELD_HELP[n]}" for n in SET_OPTIONS)
        raise InvalidInput(
            "Give at least one option to set (`-` clears a text one; `clear` names any "
            f"to clear, e.g. min_price,max_price):\n{allowed}"
        )
    return changes


class FiltersGroup(app_commands.Group, name="filters", description="Choose which signals you get"):
    """``/filters show|set|preview|reset``: discord.py binds each subcommand to this instance."""

    def __init__(self, hub: HubContext, replier: Replier) -> None:
        super().__init__()
        self.hub = hub
        self.replier = replier

    @app_commands.command(name="show", description="Show the filters of your DMs or a channel")
    @app_commands.describe(channel="A subscribed channel; leave out for your DMs")
    async def show(
        self, interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=False)
            flt = await self.hub.services.subscriptions.get_filter("discord", destination)
            return filter_text(flt, place(channel))

        await self.replier.run(interaction, work())

    @app_commands.command(name="set", description="Set filters (only the options you give change)")
    @app_commands.describe(
        channel="A subscribed channel (needs Manage Channels); leave out for your DMs",
        min_confidence="Lowest confidence, 0 to 1 (e.g. 0.7)",
        tickers="Only these tickers, comma-separated (e.g. AAPL,TSLA); - clears",
        catalyst_types="Only these catalysts (e.g. FDA,M&A); - clears",
        sectors="Only these sectors (e.g. Healthcare,Technology); - clears",
        min_rvol="Lowest relative volume (e.g. 1.5)",
        min_price="Lowest price (e.g. 1)",
        max_price="Highest price (e.g. 20)",
        signal_types="Only these types: BUY, SELL, WATCH (e.g. BUY); - clears",
        exclude_tickers="Never these tickers (e.g. GME,AMC); - clears",
        clear="Fields to clear, comma-separated (e.g. min_price,max_price)",
    )
    async def set_(
        self,
        interaction: discord.Interaction[Any],
        channel: TextChannel | None = None,
        min_confidence: app_commands.Range[float, 0.0, 1.0] | None = None,
        tickers: str | None = None,
        catalyst_types: str | None = None,
        sectors: str | None = None,
        min_rvol: app_commands.Range[float, 0.0] | None = None,
        min_price: app_commands.Range[float, 0.0] | None = None,
        max_price: app_commands.Range[float, 0.0] | None = None,
        signal_types: str | None = None,
        exclude_tickers: str | None = None,
        clear: str | None = None,
    ) -> None:
        options: dict[str, str | float | None] = {
            "min_confidence": min_confidence,
            "tickers": tickers,
            "catalyst_types": catalyst_types,
            "sectors": sectors,
            "min_rvol": min_rvol,
            "min_price": min_price,
            "max_price": max_price,
            "signal_types": signal_types,
            "exclude_tickers": exclude_tickers,
        }

        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            changes = changes_from(options, clear)
            subs = self.hub.services.subscriptions
            flt = await subs.update_filter("discord", destination, changes)
            preview = await self.hub.services.preview.preview(flt)
            return f"Saved. {filter_text(flt, place(channel))}\n{preview.summary_line()}"

        await self.replier.run(interaction, work())

    @set_.autocomplete("catalyst_types")
    async def catalyst_types_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return catalyst_choices(current)

    @app_commands.command(
        name="preview", description="What a filter would have sent you lately, and how it went"
    )
    @app_commands.describe(
        filter="A filter to try, e.g. catalyst_types=FDA min_confidence=0.8; "
        "leave out for your DMs' or the channel's",
        days="How many days back (1-365, default 30)",
        channel="Preview this channel's filters instead of your DMs'",
    )
    async def preview(
        self,
        interaction: discord.Interaction[Any],
        filter: str | None = None,
        days: app_commands.Range[int, 1, MAX_DAYS] = DEFAULT_DAYS,
        channel: TextChannel | None = None,
    ) -> None:
        async def work() -> str:
            if filter is not None and filter.strip():
                flt = SignalFilter.from_text(filter)
                subject = f"`{flt.to_text()}`"
            else:
                destination = destination_for(interaction, channel, manage=False)
                info = await self.hub.services.subscriptions.get("discord", destination)
                flt = info.filter if info is not None and info.active else SignalFilter()
                subject = f"the filters on {place(channel)}"
            preview = await self.hub.services.preview.preview(flt, days)
            if flt.is_empty():
                subject += " (no filter: every signal)"
            return f"**Preview** of {subject}\n" + "\n".join(preview.lines())

        await self.replier.run(interaction, work())

    @app_commands.command(name="reset", description="Remove all filters of your DMs or a channel")
    @app_commands.describe(
        channel="A subscribed channel (needs Manage Channels); leave out for your DMs"
    )
    async def reset(
        self, interaction: discord.Interaction[Any], channel: TextChannel | None = None
    ) -> None:
        async def work() -> str:
            destination = destination_for(interaction, channel, manage=True)
            await self.hub.services.subscriptions.reset_filter("discord", destination)
            return f"Filters on {place(channel)} removed: every signal arrives there."

        await self.replier.run(interaction, work())
