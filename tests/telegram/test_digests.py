"""Quiet hours, digests and caps on Telegram: the commands, digest rendering and
splitting, and digest delivery through the fake Bot API."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlmodel import select

from bots.telegram import TelegramBot
from bots.telegram.digest import ITEM_MAX, render_digest, render_digest_plain, split_digest
from bots.telegram.render import ELLIPSIS, MAX_TEXT, utf16_len
from core.channels import (
    Alert,
    DestinationGone,
    Digest,
    DigestItem,
    PermanentError,
    RetryLater,
)
from core.context import HubContext
from domain.delivery_prefs import HoldReason, QuietHours
from domain.signals import Signal, SignalStatus
from storage.models import Delivery
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.conftest import Chat, eventually
from tests.telegram.fake_bot_api import FakeBotApi, _broken_html

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
DELIVERY_COMMANDS = ("delivery", "quiet", "digest", "max")


def signal(n: int, **overrides: object) -> Signal:
    data: dict[str, object] = {
        "signal_id": f"s{n}",
        "ticker": f"T{n}",
        "signal_type": "BUY",
        "confidence": 0.87,
        "catalyst_type": "FDA",
        "headline": f"Headline {n}",
    }
    data.update(overrides)
    return Signal.parse(data).with_seq(n)


def digest(
    items: list[DigestItem], reason: HoldReason = HoldReason.QUIET, omitted: int = 0
) -> Digest:
    return Digest(7, "1001", tuple(items), reason, NOW, omitted=omitted)


class _Tags(HTMLParser):
    """Checks that every tag is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def assert_well_formed(text: str) -> None:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    assert not _broken_html(text)


# ---- commands -----------------------------------------------------------------
async def test_delivery_commands_set_show_and_clear(tg: Chat, ctx: HubContext) -> None:
    assert "not subscribed" in (await tg.ask("/quiet 22:00-07:00 UTC")).text
    assert "not subscribed" in (await tg.ask("/delivery")).text
    await tg.ask("/subscribe")
    assert "every alert goes out at once" in (await tg.ask("/delivery")).text

    quiet = await tg.ask("/quiet 22:00-07:00 America/New_York")
    assert "Quiet hours set" in quiet.text
    assert "<code>quiet 22:00-07:00 America/New_York</code>" in quiet.text
    assert "<code>digest 15m</code>" in (await tg.ask("/digest 15m")).text
    assert "<code>max 10/h</code>" in (await tg.ask("/max 10/h")).text
    shown = await tg.ask("/delivery")
    assert shown.parse_mode == "HTML" and not _broken_html(shown.text)
    for line in ("quiet 22:00-07:00 America/New_York", "digest 15m", "max 10/h"):
        assert f"<code>{line}</code>" in shown.text
    prefs = await ctx.services.delivery.get("telegram", "1001")
    assert prefs.quiet == QuietHours.parse("22:00-07:00 America/New_York")
    assert prefs.digest == timedelta(minutes=15)

    off = await tg.ask("/quiet off")
    assert "Quiet hours off" in off.text and "quiet 22:00" not in off.text
    assert "Digest off" in (await tg.ask("/digest off")).text
    assert "Cap off" in (await tg.ask("/max OFF")).text
    assert "every alert goes out at once" in (await tg.ask("/delivery")).text
    assert (await ctx.services.delivery.get("telegram", "1001")).empty


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("/quiet 22:00-07:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("/quiet 25:00-07:00 UTC", "'25:00' is not a time of day"),
        ("/quiet 22:00-07:00 <b>", "'&lt;b&gt;'"),
        ("/quiet tonight", "use a range and a time zone"),
        ("/max 0/h", "the count must be 1-1000"),
        ("/max lots", "like 10/h"),
        ("/digest 1m", "the period must be 5m-24h"),
        ("/digest soon", "is not a duration"),
    ],
)
async def test_bad_values_get_a_clear_error(
    tg: Chat, ctx: HubContext, command: str, needle: str
) -> None:
    await tg.ask("/subscribe")
    reply = await tg.ask(command)
    assert needle in reply.text, reply.text
    assert "Traceback" not in reply.text and "wrong on our side" not in reply.text
    assert not _broken_html(reply.text)
    assert (await ctx.services.delivery.get("telegram", "1001")).empty


async def test_no_value_shows_usage_with_an_example(tg: Chat) -> None:
    for name, example in (
        ("quiet", "/quiet 22:00-07:00 America/New_York"),
        ("digest", "/digest 15m"),
        ("max", "/max 10/h"),
    ):
        reply = await tg.ask(f"/{name}")
        assert reply.text.startswith("Usage") and f"<code>{example}</code>" in reply.text
        assert f"<code>/{name} off</code>" in reply.text
        assert not _broken_html(reply.text)


async def test_in_groups_only_admins_change_delivery(
    tg: Chat, fake: FakeBotApi, ctx: HubContext
) -> None:
    group = -100900
    assert "Subscribed" in (await tg.ask("/subscribe", chat_id=group, user_id=4242)).text
    for command in ("/quiet 22:00-07:00 UTC", "/digest 15m", "/max 10/h"):
        reply = await tg.ask(command, chat_id=group, user_id=55)
        assert "Only this group's administrators" in reply.text
    assert "every alert goes out at once" in (await tg.ask("/delivery", chat_id=group)).text
    fake.set_member(group, 56, "administrator")
    assert "Digest set" in (await tg.ask("/digest 1h", chat_id=group, user_id=56)).text
    assert "Cap set" in (await tg.ask("/max 3/15m", chat_id=group, user_id=4242)).text
    shown = await tg.ask("/delivery", chat_id=group, user_id=55)  # anyone may read
    assert "<code>digest 1h</code>" in shown.text and "<code>max 3/15m</code>" in shown.text
    channel = await tg.ask("/quiet 23:00-06:00 UTC", chat_id=-100901, kind="channel")
    assert "not subscribed" in channel.text  # a channel's posts pass the admin check


async def test_help_and_menu_list_the_delivery_commands(tg: Chat, fake: FakeBotApi) -> None:
    menu = {c["command"]: c["description"] for c in fake.commands}
    for name in DELIVERY_COMMANDS:
        assert menu.get(name), name
    reply = await tg.ask("/help")
    for example in ("/delivery", "/quiet 22:00-07:00 America/New_York", "/digest 15m", "/max 10/h"):
        assert f"<code>{example}</code>" in reply.text
    for name in DELIVERY_COMMANDS:
        assert f"/{name}:" in reply.text


# ---- rendering ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "title"),
    [
        (HoldReason.QUIET, "🌙 While your quiet hours were on"),
        (HoldReason.DIGEST, "🗞 Your digest"),
        (HoldReason.CAP, "⏳ Over your alert cap"),
    ],
)
def test_header_says_why_and_how_many(reason: HoldReason, title: str) -> None:
    one = render_digest(digest([DigestItem(1, signal(1), NOW)], reason))
    assert one.startswith(f"<b>{title} · 1 alert</b>\n\n")
    two = render_digest(digest([DigestItem(i, signal(i), NOW) for i in (1, 2)], reason))
    assert f"{title} · 2 alerts</b>" in two and "part" not in two


def test_every_dynamic_value_is_escaped() -> None:
    risky = signal(
        1,
        ticker="TEL2_B",
        catalyst_type="M&A",
        headline="Q3 <beat> & raise",
        url='https://x.test/?a=1&b="2"',
        price=0.0123,
    )
    item = DigestItem(1, risky, NOW - timedelta(minutes=5), hint="M&A <80%>")
    text = render_digest(digest([item]))
    assert "🟢 BUY <b>TEL2_B</b> · M&amp;A · 87% · $0.0123 · 5m ago" in text
    assert (
        '<a href="https://x.test/?a=1&amp;b=&quot;2&quot;">Q3 &lt;beat&gt; &amp; raise</a>' in text
    )
    assert "📊 <i>M&amp;A &lt;80%&gt;</i>" in text
    assert_well_formed(text)
    plain = render_digest_plain(digest([item]))
    assert 'Q3 <beat> & raise\nhttps://x.test/?a=1&b="2"' in plain and "<b>" not in plain


def test_non_web_url_is_not_linked() -> None:
    bad = signal(1).model_copy(update={"url": "javascript:alert(1)"})
    text = render_digest(digest([DigestItem(1, bad, NOW)]))
    assert "<a " not in text and "Headline 1" in text


def test_one_huge_item_is_clipped_to_fit() -> None:
    huge = signal(1, headline="&<😀" * 166, url="https://e.test/" + "&" * 2000)
    item = DigestItem(1, huge, NOW, hint="&" * 2000)
    [part] = split_digest(digest([item], omitted=999_999), timedelta(days=7))
    text = render_digest(part, timedelta(days=7))
    assert utf16_len(text) <= MAX_TEXT
    assert "999999 older alerts (past 7d) left out" in text
    assert "🟢 BUY <b>T1</b>" in text and "📊 <i>&amp;&amp;" in text  # the block kept its rows
    assert_well_formed(text)
    assert utf16_len(render_digest_plain(part)) <= MAX_TEXT


# ---- splitting ----------------------------------------------------------------
def big_digest(count: int = 80) -> Digest:
    items = [
        DigestItem(
            n,
            signal(
                n,
                headline=f"#{n} " + ("Earnings & <guidance> beat 😀 " * 20)[:395],
                url=f"https://news.test/{n}?a=1&b=2",
                price=10 + n,
            ),
            NOW - timedelta(minutes=n),
        )
        for n in range(count)
    ]
    return digest(items, HoldReason.CAP, omitted=3)


async def test_a_large_digest_is_split_into_parts_that_fit(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    whole = big_digest()
    parts = bot.channel.digest_parts(whole)
    total = len(parts)
    assert total > 1
    assert [d for p in parts for d in p.items] == list(whole.items)  # each once, in order
    for k, part in enumerate(parts, start=1):
        assert (part.part, part.parts) == (k, total)
        assert part.items
        text = render_digest(part)
        assert utf16_len(text) <= MAX_TEXT and ELLIPSIS not in text  # nothing clipped
        assert_well_formed(text)
        header = text.split("\n", 1)[0]
        assert f"· {len(part.items)} alert" in header and f"(part {k}/{total})" in header
        assert ("3 older alerts" in text) == (k == 1)
        assert text.index(f"<b>{part.items[0].signal.ticker}</b>") < text.index(
            f"<b>{part.items[-1].signal.ticker}</b>"
        )
    # Every part goes through the fake (which refuses texts past 4096) as one message.
    ids = [await bot.channel.send_digest(part) for part in parts]
    assert ids == [str(m.message_id) for m in fake.sent_to(1001)]
    assert len(ids) == total
    assert "(past 12h)" in fake.sent_to(1001)[0].visible  # the hub's digest TTL


def test_a_digest_that_fits_is_one_part() -> None:
    whole = big_digest(5)
    [part] = split_digest(whole)
    assert (part.part, part.parts, part.items) == (1, 1, whole.items)
    assert "part" not in render_digest(part)
    assert split_digest(digest([])) == [digest([])]


def in_full(part: Digest, text: str) -> bool:
    """Whether ``text`` shows the part's last item whole: past 4096, render_digest
    shortens items to their first row, last first."""
    last = part.items[-1].signal
    end = html.escape(last.headline or "", quote=False) + ("</s>" if last.retracted else "")
    return text.endswith(end)


def retract_all(part: Digest) -> Digest:
    items = tuple(
        replace(i, signal=i.signal.model_copy(update={"status": SignalStatus.RETRACTED}))
        for i in part.items
    )
    return replace(part, items=items)


@pytest.mark.parametrize("alphabet", ["news ", "R&D <up> ", "😀 ü "])
def test_parts_are_full_yet_within_4096(alphabet: str) -> None:
    """Over many headline lengths some part ends right at the limit: the header must
    be counted, and a part is closed only when the next item would not fit. Items
    are sized as if retracted (a delivered part is edited to show that), so a part
    is full when it would overflow with all its items struck through."""
    for length in range(0, 501, 17):
        items = [
            DigestItem(n, signal(n, headline=(alphabet * 100)[: min(length + n, 500)]), NOW)
            for n in range(25)
        ]
        whole = digest(items, HoldReason.DIGEST, omitted=12)
        parts = split_digest(whole, timedelta(hours=12))
        assert [d for p in parts for d in p.items] == items
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            for shown in (part, retract_all(part)):
                text = render_digest(shown, timedelta(hours=12))
                # Within 4096 as composed: nothing clipped, no item shortened.
                assert utf16_len(text) <= MAX_TEXT and ELLIPSIS not in text, (length, part.part)
                assert in_full(shown, text), (length, part.part)
            if following is not None:  # the next item would have overflowed this part
                fuller = retract_all(replace(part, items=(*part.items, following.items[0])))
                fuller_text = render_digest(fuller, timedelta(hours=12))
                assert not in_full(fuller, fuller_text) or utf16_len(fuller_text) > MAX_TEXT - 40


def test_blocks_are_packed_up_to_the_limit() -> None:
    """Items near the block limit: one per part, and nothing past 4096."""
    items = [
        DigestItem(n, signal(n, headline="x" * 500, url="https://e.test/" + "y" * 2000), NOW)
        for n in range(3)
    ]
    parts = split_digest(digest(items, omitted=1))
    for part in parts:
        assert utf16_len(render_digest(part)) <= MAX_TEXT
    assert sum(len(p.items) for p in parts) == 3
    assert ITEM_MAX < MAX_TEXT


# ---- sending ------------------------------------------------------------------
async def test_send_returns_the_message_id(bot: TelegramBot, fake: FakeBotApi) -> None:
    alert = Alert(1, 1, "1001", signal(1))
    first = await bot.channel.send(alert)
    second = await bot.channel.send(alert)
    assert [first, second] == [str(m.message_id) for m in fake.sent_to(1001)]
    assert first != second
    fake.fail("sendMessage", fake_api.bad_request("can't parse entities: x"), chat_id=1001)
    plain = await bot.channel.send(alert)
    assert fake.sent[-1].parse_mode is None and plain == str(fake.sent[-1].message_id)


async def test_send_digest_delivers_one_html_message(bot: TelegramBot, fake: FakeBotApi) -> None:
    items = [
        DigestItem(
            3, signal(3, ticker="NEWEST", headline="A & B <up>"), NOW - timedelta(minutes=2)
        ),
        DigestItem(2, signal(2, ticker="MIDDLE", url="https://x.test/2"), NOW - timedelta(hours=1)),
        DigestItem(1, signal(1, ticker="OLDEST", price=4.2), NOW - timedelta(hours=3, minutes=5)),
    ]
    message_id = await bot.channel.send_digest(digest(items, omitted=4))
    [message] = fake.sent_to(1001)
    assert message_id == str(message.message_id)
    assert message.parse_mode == "HTML" and message.reply_markup is None
    assert message.params["link_preview_options"] == {"is_disabled": True}
    shown = message.visible
    assert shown.startswith("🌙 While your quiet hours were on · 3 alerts\n")
    assert "🕰 4 older alerts (past 12h) left out" in shown
    assert shown.index("NEWEST") < shown.index("MIDDLE") < shown.index("OLDEST")
    assert "🟢 BUY NEWEST · FDA · 87% · 2m ago\nA & B <up>" in shown
    assert "1h ago" in shown and "OLDEST · FDA · 87% · $4.20 · 3h 5m ago" in shown
    assert '<a href="https://x.test/2">Headline 2</a>' in message.text


async def test_rejected_digest_html_falls_back_to_plain_text(
    bot: TelegramBot, fake: FakeBotApi
) -> None:
    item = DigestItem(1, signal(1, headline="Q3 <beat> & raise"), NOW - timedelta(minutes=9))
    fake.fail("sendMessage", fake_api.bad_request("can't parse entities: bad tag"), chat_id=1001)
    message_id = await bot.channel.send_digest(digest([item], HoldReason.DIGEST))
    [message] = fake.sent_to(1001)
    assert message.parse_mode is None and message_id == str(message.message_id)
    assert message.text.startswith("🗞 Your digest · 1 alert\n\n")
    assert "Q3 <beat> & raise" in message.text and "9m ago" in message.text
    assert message.reply_markup is None


async def test_digest_errors_are_classified(bot: TelegramBot, fake: FakeBotApi) -> None:
    part = digest([DigestItem(1, signal(1), NOW)])
    fake.fail("sendMessage", fake_api.too_many_requests(3), chat_id=1001)
    with pytest.raises(RetryLater) as limited:
        await bot.channel.send_digest(part)
    assert (limited.value.retry_after, limited.value.scope) == (3.0, "chat:1001")
    fake.fail("sendMessage", fake_api.blocked(), chat_id=1001)
    with pytest.raises(DestinationGone):
        await bot.channel.send_digest(part)
    fake.fail("sendMessage", fake_api.bad_request("chat not found"), chat_id=1001)
    with pytest.raises(DestinationGone):
        await bot.channel.send_digest(part)
    fake.fail("sendMessage", fake_api.bad_request("message is too long"), chat_id=1001, times=2)
    with pytest.raises(PermanentError, match="too long"):
        await bot.channel.send_digest(part)
    assert fake.sent == []


async def test_quiet_off_brings_what_quiet_hours_held_as_one_digest(
    tg: Chat, bot: TelegramBot, ctx: HubContext, fake: FakeBotApi
) -> None:
    """Through the real dispatcher: alerts held in quiet hours arrive as one digest
    once ``/quiet off`` releases them."""
    await tg.ask("/subscribe")
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    await tg.ask(f"/quiet {start:%H:%M}-{end:%H:%M} UTC")
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    for n, ticker in enumerate(("AAPL", "TSLA")):
        await ctx.publisher.publish(
            {"signal_id": f"q{n}", "ticker": ticker, "confidence": 0.8, "headline": f"News {n}"}
        )

    async def held() -> bool:
        async with ctx.db.session() as session:
            rows = list((await session.execute(select(Delivery))).scalars())
        return len(rows) == 2 and {r.status for r in rows} == {"held"}

    await eventually(held)
    before = len(fake.sent_to(1001))
    assert "Quiet hours off" in (await tg.ask("/quiet off")).text
    messages = await fake.wait_sent(before + 2, chat_id=1001)
    [digest_message] = [m for m in messages[before:] if "quiet hours were on" in m.text]
    shown = digest_message.visible
    assert shown.startswith("🌙 While your quiet hours were on · 2 alerts")
    assert shown.index("TSLA") < shown.index("AAPL")  # newest first
    assert digest_message.reply_markup is None


async def test_a_retraction_edits_the_delivered_alert_through_the_outbox(
    tg: Chat, bot: TelegramBot, ctx: HubContext, fake: FakeBotApi
) -> None:
    """End to end: the producer retracts a signal a chat already got; the real
    dispatcher edits that very message (editMessageText), and sends nothing new."""
    await tg.ask("/subscribe")
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    before = len(fake.sent_to(1001))
    await ctx.publisher.publish(
        {"signal_id": "r1", "ticker": "ABCD", "confidence": 0.9, "headline": "Phase 3 met"}
    )
    [alert] = (await fake.wait_sent(before + 1, chat_id=1001))[before:]
    assert "Phase 3 met" in alert.visible and alert.history == []

    await ctx.publisher.publish({"signal_id": "r1", "status": "retracted"})

    async def edited() -> bool:
        message = fake.message(1001, alert.message_id)
        return message is not None and "RETRACTED" in message.visible

    await eventually(edited)
    message = fake.message(1001, alert.message_id)
    assert message is not None and len(message.history) == 1
    assert "<s>" in message.text and message.reply_markup is None
    assert len(fake.sent_to(1001)) == before + 1  # edited in place, nothing new sent
    expected = [
        ("alert", "sent", str(alert.message_id)),
        ("edit", "sent", str(alert.message_id)),
    ]

    async def recorded() -> bool:  # the edit row is marked sent just after Telegram answered
        async with ctx.db.session() as session:
            rows = list((await session.execute(select(Delivery))).scalars())
        return [(r.kind, r.status, r.message_id) for r in rows] == expected

    await eventually(recorded)
