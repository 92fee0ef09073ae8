"""Reply texts for the Telegram commands (Telegram HTML; every dynamic value escaped)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from telegram import BotCommand

from bots.telegram.render import MAX_TEXT, clip_html
from core.services import UserStats
from domain.delivery_prefs import DeliveryPrefs
from domain.filters import FIELD_HELP, SignalFilter
from domain.preview import FilterPreview
from domain.signals import Signal

#: (command, menu description, example) for setMyCommands and /help.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("start", "Welcome, or redeem a link code", "/start K7PQ2M9X"),
    ("help", "Every command with an example", "/help"),
    ("subscribe", "Receive alerts in this chat", "/subscribe"),
    ("unsubscribe", "Stop alerts in this chat", "/unsubscribe"),
    ("filters", "Show this chat's filters", "/filters"),
    ("set", "Set or clear one filter field", "/set min_confidence 0.7"),
    ("reset", "Restore the default filters", "/reset"),
    ("delivery", "Show quiet hours, digest and cap", "/delivery"),
    ("quiet", "Hold alerts during quiet hours", "/quiet 22:00-07:00 America/New_York"),
    ("digest", "Bundle alerts into a digest", "/digest 15m"),
    ("max", "Cap how many messages arrive", "/max 10/h"),
    ("feedback", "Record a trade outcome", "/feedback SIGNAL_ID win 12.5"),
    ("stats", "Your win rate and average return", "/stats"),
    ("recent", "Last signals matching this chat's filters", "/recent 5"),
    ("preview", "What a filter would have sent you lately", "/preview catalyst_types=FDA 30d"),
    ("link", "Link this account with Discord or the API", "/link"),
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def bot_commands() -> list[BotCommand]:
    return [BotCommand(name, description) for name, description, _example in COMMANDS]


WELCOME = (
    "👋 <b>Catalyst Signal Hub</b>\n"
    "Catalyst trading alerts (FDA, M&amp;A, earnings…) right in this chat.\n\n"
    "• /subscribe to start receiving alerts here\n"
    "• /set min_confidence 0.7 to receive only strong signals\n"
    "• tap Win / Loss / Skip under an alert to track your results, see /stats\n"
    "• /help lists every command"
)


def help_text() -> str:
    lines = ["<b>Commands</b>"]
    for name, description, example in COMMANDS:
        lines.append(f"/{name}: {esc(description)}. <code>{esc(example)}</code>")
    lines.append("")
    lines.append("<b>Filter fields</b> for /set (no value clears the field)")
    for field, text in FIELD_HELP.items():
        lines.append(f"<code>{field}</code>: {esc(text)}")
    lines.append("")
    lines.append(
        "Alerts held by /quiet, /digest or /max arrive together as one digest. "
        "In groups only administrators may subscribe or change filters and delivery."
    )
    return "\n".join(lines)


def set_usage() -> str:
    fields = ", ".join(f"<code>{f}</code>" for f in FIELD_HELP)
    return (
        "Usage: <code>/set &lt;field&gt; [value]</code>, e.g. "
        "<code>/set tickers AAPL,TSLA</code>. No value clears the field.\n"
        f"Fields: {fields}"
    )


FEEDBACK_USAGE = (
    "Usage: <code>/feedback &lt;signal_id&gt; &lt;win|loss|breakeven|skipped&gt; "
    "[return_pct]</code>, e.g. <code>/feedback abc123 win 12.5</code>"
)
RECENT_USAGE = "Usage: <code>/recent [n]</code> with n from 1 to {max}, e.g. <code>/recent 5</code>"
ADMINS_ONLY = (
    "Only this group's administrators can do that. Anyone can use /filters, /delivery and /recent."
)


def filter_text(flt: SignalFilter) -> str:
    text = flt.to_text()
    if not text:
        return "Filters: none (every signal is delivered)"
    return f"Filters: <code>{esc(text)}</code>"


def stats_text(stats: UserStats) -> str:
    o = stats.outcomes
    avg, win_rate = o.avg_return_text, o.win_rate_text
    return (
        "<b>Your stats</b>\n"
        f"Signals received: {stats.signals_received}\n"
        f"Trades: {o.trades_executed} ({o.wins} won, {o.losses} lost, "
        f"{o.breakeven} breakeven), {o.skipped} skipped\n"
        f"Win rate: {win_rate}\n"
        f"Average return: {avg}"
    )


def recent_text(signals: Sequence[Signal], *, filtered: bool) -> str:
    if not signals:
        return "No signals match this chat's filters yet." if filtered else "No signals yet."
    lines = [f"<b>Last {len(signals)} signal{'s' if len(signals) != 1 else ''}</b>"]
    for s in signals:
        price = f" ${s.price:g}" if s.price is not None else ""
        headline = s.headline or ""
        if len(headline) > 90:
            headline = headline[:89].rstrip() + "…"
        lines.append(
            f"{esc(s.signal_type.value)} <b>{esc(s.ticker)}</b> {s.confidence * 100:.0f}% "
            f"{esc(s.catalyst_type)}{price} · {esc(headline)}\n"
            f"   <code>{esc(s.signal_id)}</code> {s.timestamp:%m-%d %H:%M}"
        )
    return clip_html("\n".join(lines), MAX_TEXT)


def preview_text(preview: FilterPreview, flt: SignalFilter, *, given: bool) -> str:
    text = flt.to_text()
    subject = f"<code>{esc(text)}</code>" if text else "no filter (every signal)"
    source = "" if given else " (this chat's filters)"
    lines = [f"🔎 <b>Preview</b> of {subject}{source}"]
    lines += [esc(line) for line in preview.lines()]
    if not given:
        lines.append("Try another: <code>/preview catalyst_types=FDA min_confidence=0.8 7d</code>")
    return "\n".join(lines)


#: Usage of the delivery commands, by command: shown when the value is missing.
DELIVERY_USAGE = {
    "quiet": (
        "Usage: <code>/quiet &lt;from&gt;-&lt;to&gt; [time zone]</code>, e.g. "
        "<code>/quiet 22:00-07:00 America/New_York</code> (the zone defaults to UTC). "
        "Alerts that match meanwhile arrive as one digest when quiet hours end. "
        "<code>/quiet off</code> turns them off."
    ),
    "digest": (
        "Usage: <code>/digest &lt;period&gt;</code> from 5m to 24h, e.g. "
        "<code>/digest 15m</code>: alerts arrive together once per period. "
        "<code>/digest off</code> sends each alert at once."
    ),
    "max": (
        "Usage: <code>/max &lt;count&gt;/&lt;period&gt;</code>, e.g. <code>/max 10/h</code> "
        "or <code>/max 50/d</code>: past the cap, alerts wait and arrive as one digest. "
        "<code>/max off</code> removes the cap."
    ),
}
_DELIVERY_NAMES = {"quiet": "Quiet hours", "digest": "Digest", "max": "Cap"}


def delivery_text(prefs: DeliveryPrefs) -> str:
    lines = prefs.lines()
    if not lines:
        return "Delivery: every alert goes out at once."
    return "Delivery:\n" + "\n".join(f"• <code>{esc(line)}</code>" for line in lines)


def delivery_changed(name: str, value: str, prefs: DeliveryPrefs) -> str:
    off = value.strip().lower() in ("off", "none")
    action = "off" if off else "set"
    return f"✅ {_DELIVERY_NAMES.get(name, esc(name))} {action}.\n" + delivery_text(prefs)
