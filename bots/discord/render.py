"""A signal as a Discord embed, within Discord's size limits.

Discord rejects an embed whose title exceeds 256 characters, description 4096,
a field value 1024, the footer 2048, or whose text adds up to more than 6000.
``signal_embed`` clips every part so a payload is never rejected for its size.

A retracted signal (its producer withdrew it) keeps its fields but is marked: the
title starts ``❌ RETRACTED``, the colour is grey, the headline is struck through and
a line says the source withdrew it. A corrected one (``revision`` > 0) says so in
the footer (``✏️ corrected, revision N``). Delivered messages are edited to these
(``DiscordChannel.edit``).
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
RETRACTED_COLOUR = 0x95A5A6
RETRACTED_TITLE = "❌ RETRACTED"
WITHDRAWN = "The source withdrew this signal."
CORRECTED = "✏️ corrected"


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


def headline_markdown(signal: Signal, limit: int = DESCRIPTION_MAX) -> str:
    """The headline, as a masked link to ``signal.url`` when there is one, within
    ``limit`` characters (the text is clipped; a link that leaves no room gives way)."""
    headline = (signal.headline or "").strip()
    if not headline:
        source = f"[Source]({signal.url})" if signal.url else ""
        return source if len(source) <= limit else ""
    if signal.url and len(signal.url) < limit - 16:
        room = limit - len(signal.url) - 4
        return f"[{clip(_escape_link_text(headline), room)}]({signal.url})"
    return clip(discord.utils.escape_markdown(headline), limit)


def signal_title(signal: Signal) -> str:
    title = f"{signal.ticker} · {signal.signal_type.value}"
    return clip(f"{RETRACTED_TITLE} · {title}" if signal.retracted else title, TITLE_MAX)


def signal_description(signal: Signal, limit: int = DESCRIPTION_MAX) -> str:
    """The headline; for a retracted signal struck through (``~~…~~``, its markdown
    still escaped) above the withdrawn line. Never longer than ``limit``."""
    if not signal.retracted:
        return headline_markdown(signal, limit)
    room = limit - len(WITHDRAWN) - len("~~~~\n")
    headline = headline_markdown(signal, room) if room > 0 else ""
    text = f"~~{headline}~~\n{WITHDRAWN}" if headline else WITHDRAWN
    return text if len(text) <= limit else clip(WITHDRAWN, limit)


def footer_text(signal: Signal) -> str:
    text = f"signal {signal.signal_id} · {signal.source}"
    if signal.revision > 0 and not signal.retracted:
        text += f" · {CORRECTED}, revision {signal.revision}"
    return clip(text, FOOTER_MAX)


def signal_embed(signal: Signal, hint: str | None = None) -> discord.Embed:
    """One embed per signal: ticker and type, colour by type, the key numbers as fields;
    ``hint`` (the outcome ledger's line, core/hints.py) as a last, full-width field,
    unless the signal is retracted. The description gets what room the rest leaves."""
    embed = discord.Embed(
        title=signal_title(signal),
        colour=RETRACTED_COLOUR
        if signal.retracted
        else COLOURS.get(signal.signal_type, RETRACTED_COLOUR),
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
    if hint and not signal.retracted:
        embed.add_field(
            name="Reported outcomes", value=clip(f"📊 {hint}", FIELD_VALUE_MAX), inline=False
        )
    embed.set_footer(text=footer_text(signal))
    room = min(DESCRIPTION_MAX, EMBED_MAX - len(embed))
    embed.description = signal_description(signal, room) or None
    return fit(embed)


def fit(embed: discord.Embed) -> discord.Embed:
    """Shorten the description until the embed's text is within ``EMBED_MAX``."""
    excess = len(embed) - EMBED_MAX
    if excess > 0 and embed.description:
        embed.description = clip(embed.description, max(0, len(embed.description) - excess))
    return embed
