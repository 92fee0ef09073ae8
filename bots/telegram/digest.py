"""Digest rendering: held alerts as one Telegram message, or as parts past 4096.

A digest part is a header (why the alerts were held, how many, ``(part k/n)``),
on the first part a line counting the older alerts left out, then one compact
block per alert, newest first::

    🌙 While your quiet hours were on · 3 alerts
    🕰 2 older alerts (past 12h) left out

    🟢 BUY AAPL · FDA · 87% · $12.50 · 12m ago
    FDA approves drug (linked to the story)

A retracted item's block is struck through and marked, a corrected one marked::

    ❌ <b>RETRACTED</b> · <s>🟢 BUY <b>AAPL</b> · FDA · 87% · 12m ago
    FDA approves drug</s>
    ✏️ <i>Corrected</i> · 🔴 SELL <b>TSLA</b> · EARNINGS · 75% · 1h ago

Every block is clipped to :data:`ITEM_MAX` so one always fits beside any header
(:data:`HEAD_RESERVE`); :func:`split_digest` packs blocks in order into parts whose
HTML is at most 4096 UTF-16 units. A delivered part is edited in place when an item
is retracted or corrected, and an edit cannot split a message, so the splitter
sizes every item as its longest marked form (:func:`item_width`): an item's cuts
leave room for any mark (:data:`MARK_RESERVE`). Should a correction lengthen an
item past that, :func:`render_digest` shortens items to their first row, last
first. The plain-text fallback shows the same cuts without markup, so it is never
longer than the HTML it replaces.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import timedelta

from bots.telegram.marks import ITEM_PREFIX, Mark, mark_of, strike
from bots.telegram.render import (
    _TYPE_MARK,
    MAX_TEXT,
    _cut_plain,
    _cut_raw,
    _esc,
    _is_web_url,
    clip_html,
    price_text,
    utf16_len,
)
from core.channels import Digest, DigestItem
from domain.delivery_prefs import HoldReason, duration_text

TITLES = {
    HoldReason.QUIET: "🌙 While your quiet hours were on",
    HoldReason.DIGEST: "🗞 Your digest",
    HoldReason.CAP: "⏳ Over your alert cap",
}
#: Room kept for the header and the omitted line on any part.
HEAD_RESERVE = 320
#: The most one alert's block may take (UTF-16 units of HTML).
ITEM_MAX = MAX_TEXT - HEAD_RESERVE
#: A link kept only when at least this much of its text (or all of it) fits.
MIN_LINK_TEXT = 40
HINT_MAX = 300
SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class _Block:
    """One alert's block, with markup and without (same text, same cuts)."""

    markup: str
    plain: str


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _head(digest: Digest, ttl: timedelta | None, *, markup: bool) -> str:
    title = TITLES.get(digest.reason, "🗞 Held alerts")
    part = f" (part {digest.part}/{digest.parts})" if digest.parts > 1 else ""
    line = f"{title} · {_plural(len(digest.items), 'alert')}{part}"
    lines = [f"<b>{line}</b>" if markup else line]
    if digest.omitted > 0 and digest.part == 1:
        within = f" (past {duration_text(ttl)})" if ttl is not None else ""
        lines.append(f"🕰 {_plural(digest.omitted, 'older alert')}{within} left out")
    return "\n".join(lines)


def _marked(markup: str, plain: str, mark: Mark) -> _Block:
    prefix, plain_prefix = ITEM_PREFIX[mark]
    body = strike(markup) if mark is Mark.RETRACTED else markup
    return _Block(prefix + body, plain_prefix + plain)


#: The most a mark adds to a block (the retracted prefix and ``<s></s>``).
MARK_RESERVE = max(utf16_len(_marked("", "", mark).markup) for mark in Mark)


def _block(
    digest: Digest, item: DigestItem, mark: Mark | None = None, *, compact: bool = False
) -> _Block:
    """``item``'s block, marked as its signal is (or as ``mark`` says); ``compact``:
    its first row alone. The cuts do not depend on the mark."""
    s = item.signal
    mark = mark_of(s) if mark is None else mark
    kind = s.signal_type.value
    price = f" · {price_text(s.price)}" if s.price is not None else ""
    facts = f"{s.confidence * 100:.0f}%{price} · {digest.age_of(item)}"
    type_mark = _TYPE_MARK.get(kind, "•")
    first = (
        f"{type_mark} {_esc(kind)} <b>{_esc(s.ticker)}</b> · {_esc(s.catalyst_type)} · {facts}",
        f"{type_mark} {kind} {s.ticker} · {s.catalyst_type} · {facts}",
    )
    if compact:
        return _marked(*first, mark)
    rows = [first]
    if item.hint:
        hint = _cut_raw(item.hint, HINT_MAX)
        rows.append((f"📊 <i>{_esc(hint)}</i>", f"📊 {hint}"))
    limit = ITEM_MAX - MARK_RESERVE
    budget = limit - sum(utf16_len(m) + 1 for m, _p in rows)  # each row and its newline
    headline = s.headline or ""
    line: tuple[str, str] | None = None
    if _is_web_url(s.url):
        text = headline or "Source"
        href = html.escape(str(s.url), quote=True)
        opening, closing = f'<a href="{href}">', "</a>"
        room = budget - utf16_len(opening + closing)
        if room >= min(utf16_len(_esc(text)), MIN_LINK_TEXT):
            cut = _cut_raw(text, room)
            line = (opening + _esc(cut) + closing, f"{cut}\n{s.url}")
    if line is None and headline:  # no link, or a link too long to keep
        cut = _cut_raw(headline, budget)
        line = (_esc(cut), cut)
    if line is not None:
        rows.insert(1, line)
    markup = "\n".join(m for m, _p in rows)
    plain = "\n".join(p for _m, p in rows)
    if utf16_len(markup) > limit:  # pragma: no cover - the cuts above keep it within
        markup, plain = clip_html(markup, limit), _cut_plain(plain, limit)
    return _marked(markup, plain, mark)


def item_width(digest: Digest, item: DigestItem) -> int:
    """The most room ``item``'s block can take: marked retracted (the longest mark),
    as a delivered part may later be edited to show."""
    return max(utf16_len(_block(digest, item, mark).markup) for mark in Mark)


def _blocks(digest: Digest, head: str) -> list[_Block]:
    """The items' blocks; past 4096 (a correction lengthened an item after its part
    was packed) items shrink to their first row, last first."""
    blocks = [_block(digest, item) for item in digest.items]
    index = len(blocks)
    while index > 0 and utf16_len(_join(head, [b.markup for b in blocks])) > MAX_TEXT:
        index -= 1
        blocks[index] = _block(digest, digest.items[index], compact=True)
    return blocks


def _join(head: str, blocks: list[str]) -> str:
    return head + SEPARATOR + SEPARATOR.join(blocks) if blocks else head


def render_digest(digest: Digest, ttl: timedelta | None = None) -> str:
    """One digest part as Telegram HTML (at most 4096 UTF-16 units for a part made by
    :func:`split_digest`). ``ttl`` is the digest TTL, named in the omitted line."""
    head = _head(digest, ttl, markup=True)
    text = _join(head, [block.markup for block in _blocks(digest, head)])
    return text if utf16_len(text) <= MAX_TEXT else clip_html(text)


def render_digest_plain(digest: Digest, ttl: timedelta | None = None) -> str:
    """The same part without markup: the fallback when Telegram rejects the HTML."""
    blocks = _blocks(digest, _head(digest, ttl, markup=True))
    plain = [block.plain for block in blocks]
    return _cut_plain(_join(_head(digest, ttl, markup=False), plain), MAX_TEXT)


def split_digest(digest: Digest, ttl: timedelta | None = None) -> list[Digest]:
    """Pack the items, in order, into parts that each render within 4096 UTF-16 units,
    with any of their items marked retracted or corrected; an item is never split,
    and parts are numbered ``part``/``parts``."""
    items = digest.items
    if not items:
        return [replace(digest, part=1, parts=1)]
    # The longest header a part can have: every item and the most parts; the
    # first part also says how many were left out.
    most = len(items)
    reserve = {
        True: utf16_len(_head(replace(digest, part=1, parts=most), ttl, markup=True)),
        False: utf16_len(_head(replace(digest, part=most, parts=most), ttl, markup=True)),
    }
    groups: list[list[DigestItem]] = []
    current: list[DigestItem] = []
    used = 0
    for item in items:
        width = item_width(digest, item) + len(SEPARATOR)
        limit = MAX_TEXT - reserve[not groups]
        if current and used + width > limit:
            groups.append(current)
            current, used = [], 0
        current.append(item)
        used += width
    groups.append(current)
    total = len(groups)
    return [
        replace(digest, items=tuple(group), part=n, parts=total)
        for n, group in enumerate(groups, start=1)
    ]
