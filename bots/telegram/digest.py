"""Digest rendering: held alerts as one Telegram message, or as parts past 4096.

A digest part is a header (why the alerts were held, how many, ``(part k/n)``),
on the first part a line counting the older alerts left out, then one compact
block per alert, newest first::

    🌙 While your quiet hours were on · 3 alerts
    🕰 2 older alerts (past 12h) left out

    🟢 BUY AAPL · FDA · 87% · $12.50 · 12m ago
    FDA approves drug (linked to the story)

Every block is clipped to :data:`ITEM_MAX` so one always fits beside any header
(:data:`HEAD_RESERVE`); :func:`split_digest` packs blocks in order into parts whose
HTML is at most 4096 UTF-16 units. The plain-text fallback shows the same cuts
without markup, so it is never longer than the HTML it replaces.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import timedelta

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


def _block(digest: Digest, item: DigestItem) -> _Block:
    s = item.signal
    kind = s.signal_type.value
    price = f" · {price_text(s.price)}" if s.price is not None else ""
    facts = f"{s.confidence * 100:.0f}%{price} · {digest.age_of(item)}"
    mark = _TYPE_MARK.get(kind, "•")
    first = (
        f"{mark} {_esc(kind)} <b>{_esc(s.ticker)}</b> · {_esc(s.catalyst_type)} · {facts}",
        f"{mark} {kind} {s.ticker} · {s.catalyst_type} · {facts}",
    )
    rows = [first]
    if item.hint:
        hint = _cut_raw(item.hint, HINT_MAX)
        rows.append((f"📊 <i>{_esc(hint)}</i>", f"📊 {hint}"))
    fixed = sum(utf16_len(m) + 1 for m, _p in rows)  # each row and its newline
    budget = ITEM_MAX - fixed
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
    if utf16_len(markup) > ITEM_MAX:  # pragma: no cover - the cuts above keep it within
        markup, plain = clip_html(markup, ITEM_MAX), _cut_plain(plain, ITEM_MAX)
    return _Block(markup, plain)


def _join(head: str, blocks: list[str]) -> str:
    return head + SEPARATOR + SEPARATOR.join(blocks) if blocks else head


def render_digest(digest: Digest, ttl: timedelta | None = None) -> str:
    """One digest part as Telegram HTML (at most 4096 UTF-16 units for a part made by
    :func:`split_digest`). ``ttl`` is the digest TTL, named in the omitted line."""
    blocks = [_block(digest, item).markup for item in digest.items]
    text = _join(_head(digest, ttl, markup=True), blocks)
    return text if utf16_len(text) <= MAX_TEXT else clip_html(text)


def render_digest_plain(digest: Digest, ttl: timedelta | None = None) -> str:
    """The same part without markup: the fallback when Telegram rejects the HTML."""
    blocks = [_block(digest, item).plain for item in digest.items]
    return _cut_plain(_join(_head(digest, ttl, markup=False), blocks), MAX_TEXT)


def split_digest(digest: Digest, ttl: timedelta | None = None) -> list[Digest]:
    """Pack the items, in order, into parts that each render within 4096 UTF-16 units;
    an item is never split, and parts are numbered ``part``/``parts``."""
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
        width = utf16_len(_block(digest, item).markup) + len(SEPARATOR)
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
