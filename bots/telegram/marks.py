"""How a retracted or corrected signal is marked, in alerts and in digest items.

A producer may withdraw a signal (``status`` retracted) or correct it (``revision``
> 0); messages already delivered are edited to show it (``TelegramChannel.edit``).
A retracted alert opens with :data:`RETRACTED_LINE` and the rest of it is struck
through (``<s>…</s>``); a corrected one opens with :func:`corrected_line`. The
plain-text fallback carries the same words without the markup.
"""

from __future__ import annotations

from enum import Enum

from domain.signals import Signal


class Mark(Enum):
    NONE = "none"
    CORRECTED = "corrected"
    RETRACTED = "retracted"


def mark_of(signal: Signal) -> Mark:
    if signal.retracted:
        return Mark.RETRACTED
    return Mark.CORRECTED if signal.revision > 0 else Mark.NONE


#: The first line of a retracted alert: (HTML, plain).
RETRACTED_LINE = (
    "❌ <b>RETRACTED</b>: the source withdrew this signal.",
    "❌ RETRACTED: the source withdrew this signal.",
)
#: What opens a digest item's first row: (HTML, plain).
ITEM_PREFIX: dict[Mark, tuple[str, str]] = {
    Mark.NONE: ("", ""),
    Mark.CORRECTED: ("✏️ <i>Corrected</i> · ", "✏️ Corrected · "),
    Mark.RETRACTED: ("❌ <b>RETRACTED</b> · ", "❌ RETRACTED · "),
}


def corrected_line(revision: int, *, markup: bool) -> str:
    text = f"Corrected (revision {revision})"
    return f"✏️ <i>{text}</i>" if markup else f"✏️ {text}"


def strike(html: str) -> str:
    """``html`` struck through. It must be whole tags, nested correctly (and hold no
    ``<code>``/``<pre>``: Telegram lets no entity overlap those)."""
    return f"<s>{html}</s>"
