"""A digest of held alerts as Discord embeds: one embed per part, within Discord's limits.

Each item is a compact block, newest first::

    🟢 BUY **AAPL** · FDA · 82% · $3.42 · 12m ago
    [FDA approves lead drug](https://example.com/news/1)

:func:`split_digest` packs the items, in order, into parts whose description fits
one embed (``DESCRIPTION_MAX``), never splitting an item; :func:`digest_embed`
renders one part. Both measure the same blocks (:func:`item_block`; packing takes
each item's longest marked form), so a part that was packed to fit is sent as is.
An item is clipped to ``ITEM_MAX`` so it always fits alone (a very long link gives
way to the plain headline first).

A retracted item is struck through and marked, a corrected one (``revision`` > 0)
marked too::

    ❌ ~~🟢 BUY **AAPL** · FDA · 82% · $3.42 · 12m ago~~ · retracted
    ~~[FDA approves lead drug](https://example.com/news/1)~~
    🟢 BUY **MSFT** · EARNINGS · 75% · 1h ago · ✏️ corrected

A delivered part is edited to show that (``DiscordChannel.edit``), so
:func:`split_digest` sizes each item as its longest marked form (:func:`item_size`):
the part still fits when any of its items is later retracted or corrected. Should a
correction lengthen a headline past that, :func:`digest_description` shortens items
to their header line, last first, rather than cut one in half.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum

import discord

from bots.discord.render import (
    CORRECTED,
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


class Mark(Enum):
    NONE = "none"
    CORRECTED = "corrected"
    RETRACTED = "retracted"


def mark_of(item: DigestItem) -> Mark:
    if item.signal.retracted:
        return Mark.RETRACTED
    return Mark.CORRECTED if item.signal.revision > 0 else Mark.NONE


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


def _marked_header(header: str, mark: Mark) -> str:
    if mark is Mark.RETRACTED:
        return f"❌ ~~{header}~~ · retracted"
    if mark is Mark.CORRECTED:
        return f"{header} · {CORRECTED}"
    return header


def _block(digest: Digest, item: DigestItem, mark: Mark, *, compact: bool = False) -> str:
    """``item`` rendered as ``mark`` says; ``compact``: the header line alone."""
    header = _marked_header(item_header(digest, item), mark)
    if compact:
        return clip(header, ITEM_MAX)
    hint = f"\n📊 {_escape(item.hint)}" if item.hint and mark is not Mark.RETRACTED else ""
    strike = "~~" if mark is Mark.RETRACTED else ""
    room = ITEM_MAX - len(header) - len(hint) - 1 - 2 * len(strike)
    headline = headline_markdown(item.signal)
    if len(headline) > room:
        # Too long with the link: the plain headline, clipped to what is left.
        plain = _escape((item.signal.headline or "").strip())
        headline = clip(plain, room) if plain and room > 1 else ""
    block = header + (f"\n{strike}{headline}{strike}" if headline else "") + hint
    return clip(block, ITEM_MAX)


def item_block(digest: Digest, item: DigestItem) -> str:
    """One item: its header line, the headline (a masked link when it has a web url)
    and the outcome hint, if any, marked if retracted or corrected; never longer
    than ``ITEM_MAX``."""
    return _block(digest, item, mark_of(item))


def item_size(digest: Digest, item: DigestItem) -> int:
    """The most room ``item`` can take in a part: its longest form, as it is now or
    once retracted or corrected (a delivered part is edited to show that)."""
    return max(len(_block(digest, item, mark)) for mark in Mark)


def digest_description(digest: Digest, limit: int = DESCRIPTION_MAX) -> str:
    """The items' blocks, newest first. Past ``limit`` (a correction lengthened an
    item after the part was packed) items shrink to their header line, last first."""
    blocks = [item_block(digest, item) for item in digest.items]
    for index in range(len(blocks) - 1, -1, -1):
        if len(SEPARATOR.join(blocks)) <= limit:
            break
        item = digest.items[index]
        blocks[index] = _block(digest, item, mark_of(item), compact=True)
    return clip(SEPARATOR.join(blocks), limit)


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
        description=digest_description(digest) or None,
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
    whatever its items' marks later (:func:`item_size`; an item is never split),
    numbered ``part``/``parts``."""
    chunks: list[list[DigestItem]] = []
    size = 0
    for item in digest.items:
        length = item_size(digest, item)
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
