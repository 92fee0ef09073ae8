"""Every command through the real Application, including bad arguments."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image

from bots.telegram import TelegramBot
from core.charts import SIZE
from core.context import HubContext
from core.settings import TelegramSettings
from domain.errors import ConfigError
from tests.telegram.conftest import Chat, telegram_settings
from tests.telegram.fake_bot_api import BOT_USERNAME, FakeBotApi


async def test_start_registers_commands_and_polls(tg: Chat, fake: FakeBotApi) -> None:
    names = [c["command"] for c in fake.commands]
    assert names == [
        "start",
        "help",
        "subscribe",
        "unsubscribe",
        "filters",
        "set",
        "reset",
        "delivery",
        "quiet",
        "digest",
        "max",
        "feedback",
        "stats",
        "recent",
        "preview",
        "link",
    ]
    assert all(c["description"] for c in fake.commands)
    reply = await tg.ask("/start")
    assert "Catalyst Signal Hub" in reply.text
    assert reply.parse_mode == "HTML"
    methods = [m for m, _p in fake.calls]
    assert "getMe" in methods and "getUpdates" in methods


async def test_help_lists_every_command_with_an_example(tg: Chat, fake: FakeBotApi) -> None:
    reply = await tg.ask("/help")
    for command in fake.commands:
        assert f"/{command['command']}:" in reply.text
    assert "<code>/set min_confidence 0.7</code>" in reply.text
    assert "max_price" in reply.text


async def test_subscribe_twice_is_harmless_and_unsubscribe_undoes(
    tg: Chat, ctx: HubContext
) -> None:
    assert "Subscribed" in (await tg.ask("/subscribe")).text
    assert "already subscribed" in (await tg.ask("/subscribe")).text
    info = await ctx.services.subscriptions.get("telegram", "1001")
    assert info is not None and info.active
    assert "Unsubscribed" in (await tg.ask("/unsubscribe")).text
    assert "was not subscribed" in (await tg.ask("/unsubscribe")).text
    info = await ctx.services.subscriptions.get("telegram", "1001")
    assert info is not None and not info.active


async def test_filters_set_and_reset(tg: Chat) -> None:
    assert "not subscribed" in (await tg.ask("/filters")).text
    assert "not subscribed" in (await tg.ask("/set min_confidence 0.7")).text
    await tg.ask("/subscribe")
    assert "none" in (await tg.ask("/filters")).text
    assert "min_confidence=0.7" in (await tg.ask("/set min_confidence 0.7")).text
    assert "tickers=AAPL,TSLA" in (await tg.ask("/set tickers AAPL,TSLA")).text
    reply = await tg.ask("/set catalyst_types FDA,M&A")
    assert "catalyst_types=FDA,M&amp;A" in reply.text
    assert "max_price=20" in (await tg.ask("/set max_price 20")).text
    reply = await tg.ask("/set sectors Health Care,Technology")
    assert "sectors=Health Care,Technology" in reply.text
    text = (await tg.ask("/filters")).text
    assert "min_confidence=0.7 tickers=AAPL,TSLA" in text
    cleared = await tg.ask("/set tickers")
    assert "tickers cleared" in cleared.text and "tickers=" not in cleared.text
    reset = await tg.ask("/reset")
    assert "reset" in reset.text and "none" in reset.text


async def test_set_bad_arguments_say_what_is_allowed(tg: Chat) -> None:
    await tg.ask("/subscribe")
    usage = await tg.ask("/set")
    assert "Usage" in usage.text and "min_confidence" in usage.text
    unknown = await tg.ask("/set colour blue")
    assert "unknown filter field" in unknown.text and "tickers" in unknown.text
    number = await tg.ask("/set min_confidence lots")
    assert "needs a number" in number.text
    out_of_range = await tg.ask("/set min_confidence 7")
    assert "min_confidence" in out_of_range.text and "1" in out_of_range.text
    ticker = await tg.ask("/set tickers <b>bad</b>")
    assert "not a ticker" in ticker.text and "&lt;b&gt;" in ticker.text
    kinds = await tg.ask("/set signal_types MAYBE")
    assert "BUY, SELL or WATCH" in kinds.text
    assert "none" in (await tg.ask("/filters")).text


async def test_feedback_command(tg: Chat, ctx: HubContext) -> None:
    await ctx.publisher.publish(
        {"signal_id": "sig-1", "ticker": "AAPL", "confidence": 0.8, "catalyst_type": "FDA"}
    )
    ok = await tg.ask("/feedback sig-1 win 12.5")
    assert "recorded: win (+12.5%)" in ok.text
    changed = await tg.ask("/feedback sig-1 loss -3%")
    assert "updated: loss (-3%)" in changed.text
    assert "Usage" in (await tg.ask("/feedback")).text
    assert "Usage" in (await tg.ask("/feedback sig-1")).text
    assert "Usage" in (await tg.ask("/feedback sig-1 win 1 2")).text
    assert "no signal with id 'nope'" in (await tg.ask("/feedback nope win")).text
    assert "outcome must be one of" in (await tg.ask("/feedback sig-1 maybe")).text
    bad_return = await tg.ask("/feedback sig-1 win lots")
    assert "return_pct must be a number" in bad_return.text
    assert "between" in (await tg.ask("/feedback sig-1 win 1e9")).text


async def test_stats(tg: Chat, ctx: HubContext) -> None:
    empty = await tg.ask("/stats")
    assert "Trades: 0" in empty.text and "Win rate: n/a" in empty.text
    for n, (outcome, ret) in enumerate([("win", "10"), ("loss", "-4"), ("skipped", "")]):
        await ctx.publisher.publish({"signal_id": f"s{n}", "ticker": "AAPL", "confidence": 0.8})
        await tg.ask(f"/feedback s{n} {outcome} {ret}".strip())
    stats = await tg.ask("/stats")
    assert "Trades: 2 (1 won, 1 lost, 0 breakeven), 1 skipped" in stats.text
    assert "Win rate: 50.0%" in stats.text
    assert "Average return: +3.00%" in stats.text
    # The numbers are the caption of a photo: the chart, a real multipart PNG upload.
    assert stats.params["photo_content_type"] == "image/png"
    image = Image.open(io.BytesIO(stats.params["photo"]))
    image.load()
    assert (image.format, image.size) == ("PNG", SIZE)
    assert stats.parse_mode == "HTML"


async def test_recent_uses_the_chat_filter(tg: Chat, ctx: HubContext) -> None:
    assert "No signals yet" in (await tg.ask("/recent")).text
    for n, ticker in enumerate(["AAPL", "TSLA", "TEL2_B"]):
        await ctx.publisher.publish(
            {
                "signal_id": f"r{n}",
                "ticker": ticker,
                "confidence": 0.5 + n / 10,
                "headline": f"News <{n}> & more",
            }
        )
    everything = await tg.ask("/recent")
    assert "Last 3 signals" in everything.text
    assert "<b>TEL2_B</b>" in everything.text and "News &lt;2&gt; &amp; more" in everything.text
    assert everything.text.index("TEL2_B") < everything.text.index("AAPL")  # newest first
    assert "Last 2 signals" in (await tg.ask("/recent 2")).text
    await tg.ask("/subscribe")
    await tg.ask("/set tickers TSLA")
    only = await tg.ask("/recent 10")
    assert "Last 1 signal<" in only.text and "TSLA" in only.text and "AAPL" not in only.text
    for bad in ("/recent 0", "/recent 11", "/recent five", "/recent 1 2"):
        assert "Usage" in (await tg.ask(bad)).text


async def test_link_and_start_with_code(tg: Chat, ctx: HubContext) -> None:
    reply = await tg.ask("/link", chat_id=1001)
    code = reply.text.split("<code>")[1].split("</code>")[0]
    assert len(code) == 8
    assert f"https://t.me/{BOT_USERNAME}?start={code}" in reply.text
    linked = await tg.ask(f"/start {code}", chat_id=2002)
    assert "Linked" in linked.text
    a = await ctx.services.accounts.resolve("telegram", 1001)
    b = await ctx.services.accounts.resolve("telegram", 2002)
    assert a.id == b.id
    again = await tg.ask(f"/start {code}", chat_id=3003)
    assert "unknown, used or expired" in again.text
    assert "a link code is" in (await tg.ask("/start " + "X" * 40, chat_id=3003)).text
    in_group = await tg.ask("/link", chat_id=-100123, user_id=1001)
    assert "private chat" in in_group.text


async def test_commands_for_another_bot_are_ignored(tg: Chat, ctx: HubContext) -> None:
    await tg.silent("/subscribe@some_other_bot", chat_id=-100555, user_id=4242)
    assert await ctx.services.subscriptions.get("telegram", "-100555") is None
    reply = await tg.ask(f"/subscribe@{BOT_USERNAME}", chat_id=-100555, user_id=4242)
    assert "Subscribed" in reply.text


async def test_token_never_logged(
    fake: FakeBotApi, ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    telegram = TelegramBot(telegram_settings(fake), ctx)
    await telegram.start()
    await telegram.stop()
    text = caplog.text
    assert "getMe" in text  # the request lines are there...
    assert fake.token not in text  # ...without the token


async def test_an_internal_failure_gets_a_friendly_reply(tg: Chat, ctx: HubContext) -> None:
    await ctx.db.dispose()  # the database goes away under the bot
    try:
        reply = await tg.ask("/subscribe")
        assert "Something went wrong on our side" in reply.text
        assert "Traceback" not in reply.text
    finally:
        ctx.db.connect()
    assert "Subscribed" in (await tg.ask("/subscribe")).text


async def test_unknown_commands_and_plain_text_are_ignored(tg: Chat) -> None:
    await tg.silent("/nonsense")
    await tg.silent("/set@other_bot min_confidence 0.5")


def test_missing_token_is_a_config_error(ctx: HubContext) -> None:
    with pytest.raises(ConfigError, match="telegram.token"):
        TelegramBot(TelegramSettings(enabled=True), ctx)


async def test_preview_counts_what_a_filter_would_have_sent(tg: Chat, ctx: HubContext) -> None:
    for i in range(3):
        await ctx.publisher.publish(
            {"signal_id": f"fda{i}", "ticker": "ABCD", "catalyst_type": "FDA", "confidence": 0.9}
        )
    await ctx.publisher.publish(
        {"signal_id": "news0", "ticker": "WXYZ", "catalyst_type": "NEWS", "confidence": 0.5}
    )
    reply = await tg.ask("/preview catalyst_types=FDA 7d")
    assert "Preview</b> of <code>catalyst_types=FDA</code>" in reply.text
    assert "Last 7 days: 3 of 4 signals would have matched (0.4/day)" in reply.text
    assert "Top tickers: ABCD 3" in reply.text and "no outcomes reported yet" in reply.text
    # Not subscribed, no filter given: every signal.
    assert "no filter (every signal)" in (await tg.ask("/preview")).text
    await tg.ask("/subscribe")
    reply = await tg.ask("/set min_confidence 0.8")  # the change shows its effect at once
    assert "Last 30 days: 3 of 4 signals would have matched" in reply.text
    reply = await tg.ask("/preview")
    assert "<code>min_confidence=0.8</code> (this chat's filters)" in reply.text
    for bad, needle in (
        ("/preview colour=red", "colour"),
        ("/preview 0d", "days must be between 1 and 365"),
        ("/preview 7d days=3", "once"),
    ):
        reply = await tg.ask(bad)
        assert needle in reply.text, (bad, reply.text)
