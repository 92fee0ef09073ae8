"""Retractions and corrections: how a withdrawn or corrected signal renders, and
``TelegramChannel.edit`` rewriting a delivered alert or digest part in place
through the fake Bot API (``editMessageText``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from bots.telegram import TelegramBot
from bots.telegram.digest import render_digest, render_digest_plain, split_digest
from bots.telegram.render import MAX_TEXT, render_alert, render_plain, utf16_len
from core.channels import (
    Alert,
    DestinationGone,
    Digest,
    DigestItem,
    Edit,
    PermanentError,
    RetryLater,
    TransientError,
)
from domain.delivery_prefs import HoldReason
from domain.signals import Signal, SignalStatus
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.fake_bot_api import FakeBotApi, SentMessage
from tests.telegram.test_digests import assert_well_formed

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
WITHDRAWN = "❌ RETRACTED: the source withdrew this signal."


def make(**overrides: object) -> Signal:
    data: dict[str, object] = {
        "signal_id": "sig-1",
        "ticker": "AAPL",
        "signal_type": "BUY",
        "confidence": 0.87,
        "catalyst_type": "M&A",
        "price": 12.5,
        "headline": "Deal <agreed> & signed",
        "url": "https://example.com/news?a=1&b=2",
        "timestamp": datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
    }
    data.update(overrides)
    return Signal.parse(data).with_seq(42)


def retract(signal: Signal, revision: int = 1) -> Signal:
    return signal.model_copy(update={"status": SignalStatus.RETRACTED, "revision": revision})


def correct(signal: Signal, revision: int = 1, **fields: object) -> Signal:
    return signal.model_copy(update={"revision": revision, **fields})


class _Struck(HTMLParser):
    """The visible text inside ``<s>``, and the tags opened inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.inner_tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if "s" in self.stack:
            self.inner_tags.add(tag)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "s" in self.stack:
            self.text.append(data)


def struck(html_text: str) -> tuple[str, set[str]]:
    parser = _Struck()
    parser.feed(html_text)
    parser.close()
    return "".join(parser.text), parser.inner_tags


# ---- rendering an alert ---------------------------------------------------------
def test_a_retracted_alert_is_marked_and_struck_through() -> None:
    text = render_alert(retract(make()), hint="M&A, 80–90%: 6 W / 4 L")
    assert text.startswith("❌ <b>RETRACTED</b>: the source withdrew this signal.\n<s>")
    assert_well_formed(text)
    inside, tags = struck(text)
    for shown in ("BUY AAPL", "87% confidence", "Catalyst: M&A", "Price $12.50"):
        assert shown in inside
    assert "Deal <agreed> & signed" in inside and "📊 M&A, 80–90%" in inside
    assert "2026-11-25 18:00 UTC" in inside
    # The ID stays readable, outside the strike: Telegram lets nothing overlap <code>.
    assert text.endswith("</s>\nID: <code>sig-1</code>")
    assert "sig-1" not in inside and "RETRACTED" not in inside
    assert tags <= {"b", "a", "i"}, tags
    assert '<a href="https://example.com/news?a=1&amp;b=2">' in text


def test_the_plain_fallback_of_a_retracted_alert_says_so() -> None:
    plain = render_plain(retract(make()))
    assert plain.startswith(WITHDRAWN + "\n")
    assert "<" not in plain.replace("<agreed>", "")
    assert "Deal <agreed> & signed\nhttps://example.com/news?a=1&b=2" in plain
    assert plain.endswith("ID: sig-1")


def test_a_corrected_alert_says_which_revision() -> None:
    text = render_alert(correct(make(), revision=2, price=13.0))
    assert text.startswith("✏️ <i>Corrected (revision 2)</i>\n🟢 <b>BUY AAPL</b>")
    assert "Price $13.00" in text and "<s>" not in text
    assert_well_formed(text)
    assert render_plain(correct(make(), revision=2)).startswith("✏️ Corrected (revision 2)\n🟢")
    for first in (render_alert(make()), render_plain(make())):
        assert first.startswith("🟢") and "Corrected" not in first and "RETRACTED" not in first
    # retracted after a correction: only the retraction shows
    both = render_alert(retract(make(), revision=3))
    assert "Corrected" not in both and both.startswith("❌")


def test_a_long_retracted_alert_still_fits_and_stays_well_formed() -> None:
    signal = retract(
        make(headline="&<😀" * 166, url="https://example.com/" + "&" * 2000, signal_id="i" * 128)
    )
    text = render_alert(signal, hint="&" * 300)
    assert utf16_len(text) <= MAX_TEXT
    assert_well_formed(text)
    assert text.startswith("❌ <b>RETRACTED</b>") and text.endswith(
        "<code>" + "i" * 128 + "</code>"
    )
    assert utf16_len(render_plain(signal, hint="&" * 300)) <= MAX_TEXT


# ---- rendering a digest ---------------------------------------------------------
def item(n: int, **fields: object) -> DigestItem:
    signal = make(signal_id=f"s{n}", ticker=f"T{n}", headline=f"Headline {n} & more", url=None)
    return DigestItem(n, signal.model_copy(update=fields), NOW - timedelta(minutes=n))


def part(*items: DigestItem) -> Digest:
    return Digest(7, "1001", tuple(items), HoldReason.DIGEST, NOW)


def test_digest_items_are_marked_retracted_or_corrected() -> None:
    shown = part(
        item(1),
        item(2, status=SignalStatus.RETRACTED, revision=1),
        item(3, revision=2, headline="Fixed headline"),
    )
    text = render_digest(shown)
    assert_well_formed(text)
    assert "\n\n🟢 BUY <b>T1</b> · M&amp;A · 87% · $12.50 · 1m ago\nHeadline 1 &amp; more" in text
    assert (
        "\n\n❌ <b>RETRACTED</b> · <s>🟢 BUY <b>T2</b> · M&amp;A · 87% · $12.50 · 2m ago\n"
        "Headline 2 &amp; more</s>"
    ) in text
    assert "\n\n✏️ <i>Corrected</i> · 🟢 BUY <b>T3</b> · M&amp;A" in text
    inside, _tags = struck(text)
    assert "T2" in inside and "T1" not in inside and "T3" not in inside
    plain = render_digest_plain(shown)
    assert "\n\n❌ RETRACTED · 🟢 BUY T2 · M&A · 87% · $12.50 · 2m ago\nHeadline 2 & more" in plain
    assert "\n\n✏️ Corrected · 🟢 BUY T3" in plain and "<" not in plain


def test_a_huge_retracted_item_still_fits() -> None:
    huge = item(
        1,
        headline="&<😀" * 166,
        url="https://e.test/" + "&" * 2000,
        status=SignalStatus.RETRACTED,
    )
    huge = replace(huge, hint="&" * 2000)
    [only] = split_digest(replace(part(huge), omitted=999_999), timedelta(days=7))
    text = render_digest(only, timedelta(days=7))
    assert utf16_len(text) <= MAX_TEXT and text.endswith("</s>")
    assert_well_formed(text)
    assert utf16_len(render_digest_plain(only)) <= MAX_TEXT


def test_a_correction_that_lengthens_items_shortens_them_rather_than_overflow() -> None:
    """Parts are packed for the items as first sent; a correction may lengthen them
    (a longer headline): the re-rendered part still fits one message, its last items
    shortened to their first row."""
    items = [item(n, headline=f"Short {n}") for n in range(12)]
    [packed] = split_digest(part(*items))
    longer = tuple(
        replace(i, signal=correct(i.signal, headline=f"{n} " + "Long & <new> " * 38))
        for n, i in enumerate(packed.items)
    )
    text = render_digest(replace(packed, items=longer))
    assert utf16_len(text) <= MAX_TEXT
    assert_well_formed(text)
    assert "✏️ <i>Corrected</i> · 🟢 BUY <b>T11</b> · M&amp;A · 87% · $12.50 · 11m ago" in text
    assert text.endswith("11m ago")  # the last item lost its headline
    assert "\n0 Long &amp; &lt;new&gt;" in text  # the first kept it
    assert utf16_len(render_digest_plain(replace(packed, items=longer))) <= MAX_TEXT


# ---- editing through the fake Bot API ---------------------------------------------
async def sent_alert(bot: TelegramBot, fake: FakeBotApi, signal: Signal) -> SentMessage:
    message_id = await bot.channel.send(Alert(5, 9, "1001", signal))
    message = fake.message(1001, int(message_id))
    assert message is not None
    return message


def edit_of(message: SentMessage, signal: Signal, digest: Digest | None = None) -> Edit:
    return Edit(5, 9, str(message.chat_id), str(message.message_id), signal, digest)


async def test_a_retraction_edits_the_delivered_alert_in_place(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    other = await sent_alert(bot, fake, make(signal_id="other", ticker="MSFT"))
    message = await sent_alert(bot, fake, make())
    assert [label for label, _d in message.buttons()] == ["Win", "Loss", "Skip"]
    before = message.text

    await bot.channel.edit(edit_of(message, retract(make())))

    assert len(fake.sent) == 2  # edited, nothing new sent
    assert message.history == [(before, "HTML")]
    assert message.parse_mode == "HTML" and message.visible.startswith(WITHDRAWN + "\n")
    assert "<s>🟢 <b>BUY AAPL</b>" in message.text
    assert message.reply_markup is None  # no feedback on a withdrawn signal
    assert other.history == [] and "RETRACTED" not in other.visible  # only that message
    [(_method, params)] = [c for c in fake.calls if c[0] == "editMessageText"]
    assert params["message_id"] == message.message_id and params["chat_id"] == 1001
    assert params["link_preview_options"] == {"is_disabled": True}


async def test_a_correction_keeps_the_feedback_keyboard(bot: TelegramBot, fake: FakeBotApi) -> None:
    message = await sent_alert(bot, fake, make())
    await bot.channel.edit(edit_of(message, correct(make(), headline="Deal signed, $2B")))
    assert message.visible.startswith("✏️ Corrected (revision 1)\n🟢 BUY AAPL")
    assert "Deal signed, $2B" in message.visible and "<agreed>" not in message.visible
    assert [label for label, _d in message.buttons()] == ["Win", "Loss", "Skip"]
    assert message.buttons()[0][1] == "fb:win:42"


async def test_a_digest_part_is_re_rendered_with_the_retracted_item_struck(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    sent = part(item(1), item(2), item(3))
    message_id = await bot.channel.send_digest(sent)
    message = fake.message(1001, int(message_id))
    assert message is not None and "RETRACTED" not in message.visible
    retracted = retract(sent.items[1].signal)
    now = replace(
        sent, items=(sent.items[0], replace(sent.items[1], signal=retracted), sent.items[2])
    )

    await bot.channel.edit(edit_of(message, retracted, now))

    assert len(fake.sent) == 1 and len(message.history) == 1
    assert message.text == render_digest(now, timedelta(hours=12))  # the hub's digest TTL
    assert message.visible.startswith("🗞 Your digest · 3 alerts\n")
    inside, _tags = struck(message.text)
    assert inside.startswith("🟢 BUY T2 ·") and "Headline 2 & more" in inside
    assert "T1" not in inside and "T3" not in inside
    assert "❌ RETRACTED · 🟢 BUY T2" in message.visible
    assert message.reply_markup is None


async def test_an_edit_already_applied_is_success(bot: TelegramBot, fake: FakeBotApi) -> None:
    message = await sent_alert(bot, fake, make())
    edit = edit_of(message, retract(make()))
    await bot.channel.edit(edit)
    await bot.channel.edit(edit)  # the fake answers 400 "message is not modified"
    assert len(message.history) == 1
    assert [m for m, _p in fake.calls].count("editMessageText") == 2
    # an unchanged correction (same text, same keyboard) is not an error either
    fresh = await sent_alert(bot, fake, make(signal_id="fresh"))
    await bot.channel.edit(edit_of(fresh, make(signal_id="fresh")))
    assert fresh.history == []


async def test_a_message_that_cannot_be_edited_is_a_permanent_error(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    message = await sent_alert(bot, fake, make())
    for target in (
        replace(edit_of(message, retract(make())), message_id="999999"),
        replace(edit_of(message, retract(make())), destination="1002"),  # not in that chat
    ):
        with pytest.raises(PermanentError, match="(?i)message to edit not found"):
            await bot.channel.edit(target)
    with pytest.raises(PermanentError, match="not a telegram message id"):
        await bot.channel.edit(replace(edit_of(message, retract(make())), message_id="abc"))
    fake.fail("editMessageText", fake_api.bad_request("message can't be edited"), chat_id=1001)
    with pytest.raises(PermanentError, match="(?i)can.t be edited"):
        await bot.channel.edit(edit_of(message, retract(make())))
    # each refused outright, with no plain-text retry ("abc" never reached Telegram)
    assert [m for m, _p in fake.calls].count("editMessageText") == 3
    assert message.history == []


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (fake_api.too_many_requests(7), RetryLater),
        (fake_api.blocked(), DestinationGone),
        (fake_api.bad_request("chat not found"), DestinationGone),
        (fake_api.server_error(), TransientError),
        (fake_api.migrated(-100777), PermanentError),
    ],
)
async def test_edit_errors_are_classified(
    bot: TelegramBot,
    fake: FakeBotApi,
    response: tuple[int, dict[str, object]],
    expected: type[Exception],
) -> None:
    message = await sent_alert(bot, fake, make())
    fake.fail("editMessageText", response, chat_id=1001)
    with pytest.raises(expected) as raised:
        await bot.channel.edit(edit_of(message, retract(make())))
    if isinstance(raised.value, RetryLater):
        assert (raised.value.retry_after, raised.value.scope) == (7.0, "chat:1001")
    assert message.history == []
    await bot.channel.edit(edit_of(message, retract(make())))  # the next try goes through
    assert message.visible.startswith(WITHDRAWN)


async def test_rejected_html_falls_back_to_plain_text_once(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    message = await sent_alert(bot, fake, make())
    fake.fail("editMessageText", fake_api.bad_request("can't parse entities: x"), chat_id=1001)
    await bot.channel.edit(edit_of(message, retract(make())))
    assert message.parse_mode is None and message.text.startswith(WITHDRAWN + "\n")
    assert "Deal <agreed> & signed" in message.text and message.reply_markup is None

    other = await sent_alert(bot, fake, make(signal_id="other"))
    fake.fail("editMessageText", fake_api.bad_request("can't parse entities: x"), times=2)
    with pytest.raises(PermanentError, match="parse entities"):
        await bot.channel.edit(edit_of(other, retract(make(signal_id="other"))))
    assert other.history == []


async def test_the_fake_checks_edits_like_telegram(bot: TelegramBot, fake: FakeBotApi) -> None:
    from telegram.error import BadRequest

    message = await sent_alert(bot, fake, make())
    api = bot.application.bot
    for text, parse_mode, error in (
        ("<b>open", "HTML", "can't parse entities"),
        ("x" * (MAX_TEXT + 1), None, "message is too long"),
        ("", None, "text is empty"),
    ):
        with pytest.raises(BadRequest, match=f"(?i){error}"):
            await api.edit_message_text(
                text, chat_id=1001, message_id=message.message_id, parse_mode=parse_mode
            )
    edited = await api.edit_message_text(
        "<b>new</b>", chat_id=1001, message_id=1, parse_mode="HTML"
    )
    assert not isinstance(edited, bool) and edited.message_id == 1
    assert message.visible == "new" and message.reply_markup is None
