"""A signal as a Discord embed, within Discord's size limits.

Discord rejects an embed whose title exceeds 256 characters, description 4096,
a field value 1024, the footer 2048, or whose text adds up to more than 6000.
``signal_embed`` clips every part so a payload is never rejected for its size.
"""

from __future__ import annotations

import discord

from domain.signals import Signal, SignalType

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_MAX = 6000

COLOURS: dict[SignalType, int] = {
    SignalType.BUY: 0x2ECC71,
    SignalType.SELL: 0xE74C3C,
    SignalType.WATCH: 0xF1C40F,
}
UNKNOWN = "—"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _escape_link_text(text: str) -> str:
    return discord.utils.escape_markdown(text).replace("[", "\\[").replace("]", "\\]")


def _number(value: float | None, fmt: str) -> str:
    return UNKNOWN if value is None else fmt.format(value)


def price_text(price: float | None) -> str:
    if price is None:
        return UNKNOWN
    return f"${price:,.2f}" if price >= 1 else f"${price:.4g}"


def headline_markdown(signal: Signal) -> str:
    """The headline, as a masked link to ``signal.url`` when there is one."""
    headline = (signal.headline or "").strip()
    if not headline:
        return f"[Source]({signal.url})" if signal.url else ""
    if signal.url and len(signal.url) < DESCRIPTION_MAX - 16:
        room = DESCRIPTION_MAX - len(signal.url) - 4
        return f"[{clip(_escape_link_text(headline), room)}]({signal.url})"
    return clip(discord.utils.escape_markdown(headline), DESCRIPTION_MAX)


def signal_embed(signal: Signal, hint: str | None = None) -> discord.Embed:
    """One embed per signal: ticker and type, colour by type, the key numbers as fields;
    ``hint`` (the outcome ledger's line, core/hints.py) as a last, full-width field."""
    embed = discord.Embed(
        title=clip(f"{signal.ticker} · {signal.signal_type.value}", TITLE_MAX),
        description=headline_markdown(signal) or None,
        colour=COLOURS.get(signal.signal_type, 0x95A5A6),
        url=signal.url,
        timestamp=signal.timestamp,
    )
    fields = (
        ("Confidence", f"{signal.confidence * 100:.0f}%"),
        ("Catalyst", signal.catalyst_type),
        ("Price", price_text(signal.price)),
        ("RVOL", _number(signal.rvol, "{:.1f}x")),
        ("Sector", signal.sector or UNKNOWN),
    )
    for name, value in fields:
        embed.add_field(
            name=clip(name, FIELD_NAME_MAX), value=clip(value, FIELD_VALUE_MAX), inline=True
        )
    if hint:
        embed.add_field(
            name="Reported outcomes", value=clip(f"📊 {hint}", FIELD_VALUE_MAX), inline=False
        )
    embed.set_footer(text=clip(f"signal {signal.signal_id} · {signal.source}", FOOTER_MAX))
    return fit(embed)


def fit(embed: discord.Embed) -> discord.Embed:
    """Shorten the description until the embed's text is within ``EMBED_MAX``."""
    excess = len(embed) - EMBED_MAX
    if excess > 0 and embed.description:
        embed.description = clip(embed.description, max(0, len(embed.description) - excess))
    return embed
