"""Alert rendering: escaping, the 4096 limit and the feedback keyboard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bots.telegram.render import (
    MAX_CALLBACK_DATA,
    MAX_TEXT,
    clip_html,
    feedback_keyboard,
    parse_callback_data,
    render_alert,
    render_plain,
    utf16_len,
)
from domain.signals import Signal
from tests.telegram.fake_bot_api import _broken_html


def make(**overrides: object) -> Signal:
    data: dict[str, object] = {
        "signal_id": "sig-1",
        "ticker": "AAPL",
        "signal_type": "BUY",
        "confidence": 0.87,
        "catalyst_type": "FDA",
        "price": 12.5,
        "rvol": 3.25,
        "sector": "Healthcare",
        "headline": "FDA approves drug",
        "url": "https://example.com/news?a=1&b=2",
        "timestamp": datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
    }
    data.update(overrides)
    return Signal.parse(data).with_seq(42)


def test_alert_has_every_field() -> None:
    text = render_alert(make())
    assert "<b>BUY AAPL</b>" in text
    assert "87% confidence" in text
    assert "Catalyst: <b>FDA</b>" in text
    assert "Price $12.50" in text and "RVOL 3.2x" in text and "Sector Healthcare" in text
    assert '<a href="https://example.com/news?a=1&amp;b=2">FDA approves drug</a>' in text
    assert "2026-11-25 18:00 UTC" in text
    assert "ID: <code>sig-1</code>" in text
    assert not _broken_html(text)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ticker", "TEL2_B", "<b>BUY TEL2_B</b>"),
        (
            "headline",
            "Revenue <up> 5% & *beats* _estimates_",
            "Revenue &lt;up&gt; 5% &amp; *beats* _estimates_",
        ),
        ("catalyst_type", "M&A", "<b>M&amp;A</b>"),
        ("sector", "R&D <Bio>", "Sector R&amp;D &lt;Bio&gt;"),
    ],
)
def test_fields_are_escaped(field: str, value: str, expected: str) -> None:
    text = render_alert(make(**{field: value}))
    assert expected in text
    assert not _broken_html(text)


def test_url_quotes_cannot_break_the_attribute() -> None:
    text = render_alert(make(url='https://x.test/"><b>x'))
    assert 'href="https://x.test/&quot;&gt;&lt;b&gt;x"' in text
    assert not _broken_html(text)


def test_non_web_url_is_not_linked() -> None:
    # core validation refuses such URLs; stored rows are not re-validated, so stay safe
    text = render_alert(make().model_copy(update={"url": "javascript:alert(1)"}))
    assert "<a " not in text and "FDA approves drug" in text


def test_minimal_signal() -> None:
    text = render_alert(
        Signal.parse({"ticker": "X", "confidence": 0.5, "signal_id": "m"}).with_seq(1)
    )
    assert "<b>WATCH X</b>" in text and "Price" not in text and "<a " not in text
    assert not _broken_html(text)


def test_long_alert_is_cut_cleanly_to_4096() -> None:
    signal = make(headline="&<" * 250, url="https://example.com/" + "&" * 2000, signal_id="i" * 128)
    text = render_alert(signal)
    assert utf16_len(text) <= MAX_TEXT
    assert not _broken_html(text)
    assert text.endswith("<code>" + "i" * 128 + "</code>")
    plain = render_plain(signal)
    assert utf16_len(plain) <= MAX_TEXT


def test_clip_html_never_splits_tags_or_entities() -> None:
    body = "\n".join(f"<b>line {n}</b> &amp; <i>more &lt;text&gt;</i> 😀" for n in range(400))
    text = "<blockquote>" + body + "</blockquote>"
    clipped = clip_html(text)
    assert utf16_len(clipped) <= MAX_TEXT
    assert clipped.endswith("</blockquote>")
    assert not _broken_html(clipped)
    assert clip_html("short") == "short"


def test_keyboard_fits_callback_limit_for_long_ids() -> None:
    keyboard = feedback_keyboard(2**62)
    assert keyboard is not None
    buttons = [b for row in keyboard.inline_keyboard for b in row]
    assert [b.text for b in buttons] == ["Win", "Loss", "Skip"]
    for button in buttons:
        assert isinstance(button.callback_data, str)
        assert len(button.callback_data.encode()) <= MAX_CALLBACK_DATA
    chosen = feedback_keyboard(7, chosen="loss")
    assert chosen is not None
    assert [b.text for b in chosen.inline_keyboard[0]] == ["Win", "✅ Loss", "Skip"]
    assert feedback_keyboard(None) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("fb:win:12", ("win", 12)),
        ("fb:skipped:3", ("skipped", 3)),
        ("fb:draw:3", None),
        ("fb:win:x", None),
        ("other", None),
        (None, None),
        ("fb:win:" + "9" * 30, None),
    ],
)
def test_parse_callback_data(data: str | None, expected: tuple[str, int] | None) -> None:
    assert parse_callback_data(data) == expected


def test_the_outcome_hint_sits_above_the_time_escaped() -> None:
    hint = "M&A, 80–90%: 14 W / 6 L reported, avg +4.20%"
    html_text = render_alert(make(), hint)
    assert "📊 <i>M&amp;A, 80–90%: 14 W / 6 L reported, avg +4.20%</i>\n🕒" in html_text
    assert not _broken_html(html_text)
    assert "📊 M&A, 80–90%" in render_plain(make(), hint)
    assert "📊" not in render_alert(make()) and "📊" not in render_plain(make())
