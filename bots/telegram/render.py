"""Telegram message rendering: alert HTML, its plain-text fallback and the feedback keyboard.

Every user-supplied field goes through :func:`html.escape`, so tickers such as
``TEL2_B`` and headlines with ``<``, ``&``, ``_`` or ``*`` arrive as written.
Telegram counts the 4096-character limit in UTF-16 code units; texts are cut at a
line or character boundary that never splits a tag or an entity.

A retracted signal renders with the withdrawn line on top and the rest struck
through; a corrected one says so on its first line (bots/telegram/marks.py).
Delivered alerts are edited to that (``TelegramChannel.edit``).
"""

from __future__ import annotations

import html
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bots.telegram.marks import RETRACTED_LINE, Mark, corrected_line, mark_of, strike
from domain.signals import Signal

MAX_TEXT = 4096
#: Telegram's limit on ``callback_data``, in bytes.
MAX_CALLBACK_DATA = 64
ELLIPSIS = "…"

#: Button label and stored outcome, in keyboard order.
BUTTONS: tuple[tuple[str, str], ...] = (("Win", "win"), ("Loss", "loss"), ("Skip", "skipped"))
_OUTCOMES = frozenset(outcome for _label, outcome in BUTTONS)
_CALLBACK_RE = re.compile(r"^fb:([a-z]+):(\d{1,19})$")
_TYPE_MARK = {"BUY": "🟢", "SELL": "🔴", "WATCH": "👀"}


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def _cut_plain(text: str, budget: int) -> str:
    """``text`` cut to ``budget`` UTF-16 units with an ellipsis; unchanged when it fits."""
    if utf16_len(text) <= budget:
        return text
    room = budget - utf16_len(ELLIPSIS)
    out = []
    used = 0
    for char in text:
        width = utf16_len(char)
        if used + width > room:
            break
        out.append(char)
        used += width
    return "".join(out).rstrip() + ELLIPSIS


def _cut_raw(raw: str, budget: int) -> str:
    """The longest prefix of ``raw`` (plus an ellipsis) whose escaped form fits
    ``budget``; ``raw`` itself when it fits. The plain-text fallback shows the same cut."""
    if utf16_len(_esc(raw)) <= budget:
        return raw
    low, high = 0, len(raw)
    while low < high:  # largest n with escape(raw[:n]) + ellipsis fitting
        mid = (low + high + 1) // 2
        if utf16_len(_esc(raw[:mid].rstrip())) + utf16_len(ELLIPSIS) <= budget:
            low = mid
        else:
            high = mid - 1
    return raw[:low].rstrip() + ELLIPSIS


def _cut_escaped(raw: str, budget: int) -> str:
    """The longest escaped prefix of ``raw`` (plus an ellipsis) within ``budget``."""
    return _esc(_cut_raw(raw, budget))


def _is_web_url(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(("http://", "https://"))


def price_text(price: float) -> str:
    """``$12.50``; a penny stock keeps four significant digits (``$0.0123``)."""
    return f"${price:,.4g}" if price < 1 else f"${price:,.2f}"


def _details(signal: Signal, *, markup: bool) -> tuple[list[str], list[str]]:
    """The lines before and after the headline."""
    esc = _esc if markup else str

    def bold(text: str) -> str:
        return f"<b>{text}</b>" if markup else text

    def code(text: str) -> str:
        return f"<code>{text}</code>" if markup else text

    kind = signal.signal_type.value
    head = [
        f"{_TYPE_MARK.get(kind, '•')} {bold(esc(kind) + ' ' + esc(signal.ticker))}"
        f" · {signal.confidence * 100:.0f}% confidence",
        f"Catalyst: {bold(esc(signal.catalyst_type))}",
    ]
    facts = []
    if signal.price is not None:
        facts.append(f"Price {price_text(signal.price)}")
    if signal.rvol is not None:
        facts.append(f"RVOL {signal.rvol:.1f}x")
    if signal.sector:
        facts.append(f"Sector {esc(signal.sector)}")
    if facts:
        head.append(" · ".join(facts))
    stamp = signal.timestamp.strftime("%Y-%m-%d %H:%M UTC")
    tail = [f"🕒 {stamp}", f"ID: {code(esc(signal.signal_id))}"]
    return head, tail


def _compose(signal: Signal, head: list[str], line: str, tail: list[str], *, markup: bool) -> str:
    """The alert's lines: ``head``, the headline ``line`` (if any), a blank line and
    ``tail`` (whose last line is the ID), marked as :func:`mark_of` says.

    A retracted alert opens with the withdrawn line and everything but the ID is
    struck through: the ID stays a ``<code>`` entity, which Telegram lets nothing
    overlap, and it is how a reader finds the signal."""
    *rest, ident = tail
    body = "\n".join([*head, line] if line else head) + "\n\n" + "\n".join(rest)
    mark = mark_of(signal)
    if mark is Mark.RETRACTED:
        first = RETRACTED_LINE[0] if markup else RETRACTED_LINE[1]
        return f"{first}\n{strike(body) if markup else body}\n{ident}"
    if mark is Mark.CORRECTED:
        body = corrected_line(signal.revision, markup=markup) + "\n" + body
    return f"{body}\n{ident}"


def render_alert(signal: Signal, hint: str | None = None) -> str:
    """The alert in Telegram HTML, at most 4096 characters; ``hint`` is the outcome
    ledger's line (core/hints.py), shown above the time. A retracted or corrected
    signal is marked (bots/telegram/marks.py)."""
    head, tail = _details(signal, markup=True)
    if hint:
        tail.insert(0, f"📊 <i>{_esc(hint)}</i>")
    fixed = _compose(signal, head, "", tail, markup=True)
    budget = MAX_TEXT - utf16_len(fixed) - 1  # the newline before the headline line
    headline = signal.headline or ""
    line = ""
    if headline or _is_web_url(signal.url):
        text = headline or "Source"
        if _is_web_url(signal.url):
            href = html.escape(str(signal.url), quote=True)
            opening, closing = f'<a href="{href}">', "</a>"
            room = budget - utf16_len(opening + closing)
            if room >= min(utf16_len(_esc(text)), 40):
                line = opening + _cut_escaped(text, room) + closing
        if not line and headline:  # no link, or a link too long to keep
            line = _cut_escaped(headline, budget)
    out = _compose(signal, head, line, tail, markup=True)
    return out if utf16_len(out) <= MAX_TEXT else clip_html(out)


def render_plain(signal: Signal, hint: str | None = None) -> str:
    """The same alert without markup: the fallback when Telegram rejects the HTML."""
    head, tail = _details(signal, markup=False)
    if hint:
        tail.insert(0, f"📊 {hint}")
    line = "\n".join(str(part) for part in (signal.headline, signal.url) if part)
    return _cut_plain(_compose(signal, head, line, tail, markup=False), MAX_TEXT)


_TAG_RE = re.compile(r"<(/?)([a-z]+)[^>]*>")


def clip_html(text: str, limit: int = MAX_TEXT) -> str:
    """Cut Telegram HTML to ``limit`` UTF-16 units without splitting a tag or an entity.

    Prefers a line break; tags left open at the cut are closed.
    """
    if utf16_len(text) <= limit:
        return text
    room = limit - utf16_len(ELLIPSIS) - 64  # space for closing tags
    cut = 0
    used = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char in "<&":  # a tag or an entity is one indivisible token
            end = text.find(">" if char == "<" else ";", i)
            token = text[i : end + 1] if end != -1 else char
        else:
            token = char
        width = utf16_len(token)
        if used + width > room:
            break
        used += width
        i += len(token)
        cut = i
    head = text[:cut]
    newline = head.rfind("\n")
    if newline > len(head) * 3 // 4:
        head = head[:newline]
    stack: list[str] = []
    for match in _TAG_RE.finditer(head):
        closing, name = match.group(1), match.group(2)
        if closing and stack and stack[-1] == name:
            stack.pop()
        elif not closing:
            stack.append(name)
    if head.count("<") > head.count(">"):  # an unterminated tag: drop it
        head = head[: head.rfind("<")]
    return head.rstrip() + ELLIPSIS + "".join(f"</{name}>" for name in reversed(stack))


def callback_data(outcome: str, seq: int) -> str:
    data = f"fb:{outcome}:{seq}"
    assert len(data.encode()) <= MAX_CALLBACK_DATA
    return data


def parse_callback_data(data: str | None) -> tuple[str, int] | None:
    """``(outcome, seq)`` from a feedback button's data, None when it is not ours."""
    match = _CALLBACK_RE.match(data or "")
    if match is None or match.group(1) not in _OUTCOMES:
        return None
    return match.group(1), int(match.group(2))


def feedback_keyboard(seq: int | None, chosen: str | None = None) -> InlineKeyboardMarkup | None:
    """Win / Loss / Skip; the chosen outcome is marked. The signal's ``seq`` keeps the
    callback data within 64 bytes whatever the length of the signal id."""
    if seq is None:
        return None
    buttons = [
        InlineKeyboardButton(
            f"✅ {label}" if outcome == chosen else label,
            callback_data=callback_data(outcome, seq),
        )
        for label, outcome in BUTTONS
    ]
    return InlineKeyboardMarkup([buttons])
