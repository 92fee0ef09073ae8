"""A digest of held alerts as Discord embeds: one embed per part, within Discord's limits.

Each item is a compact block, newest first::

    🟢 BUY **AAPL** · FDA · 82% · $3.42 · 12m ago
    [FDA approves lead drug](https://example.com/news/1)

:func:`split_digest` packs the items, in order, into parts whose description fits
one embed (``DESCRIPTION_MAX``), never splitting an item; :func:`digest_embed`
renders one part. Both measure the same :func:`item_block`, so a part that was
packed to fit is sent as is. An item is clipped to ``ITEM_MAX`` so it always fits
alone (a very long link gives way to the plain headline first).
"""

from __future__ import annotations

from dataclasses import replace

import discord

from bots.discord.render import (
    DESCRIPTION_MAX,
    EMBED_MAX,
    FOOTER_MAX,
    TITLE_MAX,
    clip,
    headline_markdown,
    price_text,
)
from core.channels import Digest, DigestItem
from domain.delivery_prefs import HoldReason
from domain.signals import SignalType

#: The longest an item's block may be; at least two items fit one embed.
ITEM_MAX = 2000
SEPARATOR = "\n\n"
COLOUR = 0x5865F2
TITLES: dict[HoldReason, str] = {
    HoldReason.QUIET: "🌙 While your quiet hours were on",
    HoldReason.DIGEST: "🗞 Digest",
    HoldReason.CAP: "⏳ Over your cap",
}
ICONS: dict[SignalType, str] = {
    SignalType.BUY: "🟢",
    SignalType.SELL: "🔴",
    SignalType.WATCH: "🟡",
}


def _escape(text: str) -> str:
    return discord.utils.escape_markdown(text)


def item_header(digest: Digest, item: DigestItem) -> str:
    """Direction, ticker, catalyst, confidence, price (if known) and age on one line."""
    s = item.signal
    parts = [
        f"{ICONS.get(s.signal_type, '•')} {s.signal_type.value} **{_escape(s.ticker)}**",
        _escape(s.catalyst_type),
        f"{s.confidence * 100:.0f}%",
    ]
    if s.price is not None:
        parts.append(price_text(s.price))
    parts.append(digest.age_of(item))
    return " · ".join(parts)


def item_block(digest: Digest, item: DigestItem) -> str:
    """One item: its header line, the headline (a masked link when it has a web url)
    and the outcome hint, if any; never longer than ``ITEM_MAX``."""
    header = item_header(digest, item)
    hint = f"\n📊 {_escape(item.hint)}" if item.hint else ""
    headline = headline_markdown(item.signal)
    block = header + (f"\n{headline}" if headline else "") + hint
    if len(block) <= ITEM_MAX:
        return block
    # Too long with the link: the plain headline, clipped to what is left.
    plain = _escape((item.signal.headline or "").strip())
    room = ITEM_MAX - len(header) - len(hint) - 1
    if plain and room > 1:
        return clip(f"{header}\n{clip(plain, room)}{hint}", ITEM_MAX)
    return clip(header + hint, ITEM_MAX)


def digest_description(digest: Digest) -> str:
    return SEPARATOR.join(item_block(digest, item) for item in digest.items)


def digest_title(digest: Digest) -> str:
    count = len(digest.items)
    title = f"{TITLES.get(digest.reason, TITLES[HoldReason.DIGEST])} · {count} alert"
    title += "" if count == 1 else "s"
    if digest.parts > 1:
        title += f" (part {digest.part}/{digest.parts})"
    return clip(title, TITLE_MAX)


def omitted_text(omitted: int) -> str:
    noun = "alert was" if omitted == 1 else "alerts were"
    return f"{omitted} older held {noun} left out: too old to be useful now."


def digest_embed(digest: Digest) -> discord.Embed:
    """One digest part as an embed: why it was held and how many in the title, one
    block per item in the description, the omitted note in the first part's footer."""
    embed = discord.Embed(
        title=digest_title(digest),
        description=clip(digest_description(digest), DESCRIPTION_MAX) or None,
        colour=COLOUR,
        timestamp=digest.now,
    )
    if digest.omitted > 0 and digest.part == 1:
        embed.set_footer(text=clip(omitted_text(digest.omitted), FOOTER_MAX))
    excess = len(embed) - EMBED_MAX
    if excess > 0 and embed.description:  # not reached: title and footer are short
        embed.description = clip(embed.description, len(embed.description) - excess)
    return embed


def split_digest(digest: Digest, limit: int = DESCRIPTION_MAX) -> list[Digest]:
    """The digest in parts, items in order, each part's description within ``limit``
    (an item is never split), numbered ``part``/``parts``."""
    chunks: list[list[DigestItem]] = []
    size = 0
    for item in digest.items:
        length = len(item_block(digest, item))
        if chunks and size + len(SEPARATOR) + length <= limit:
            chunks[-1].append(item)
            size += len(SEPARATOR) + length
        else:
            chunks.append([item])
            size = length
    if len(chunks) <= 1:
        return [replace(digest, part=1, parts=1)]
    return [
        replace(digest, items=tuple(chunk), part=k, parts=len(chunks))
        for k, chunk in enumerate(chunks, 1)
    ]
