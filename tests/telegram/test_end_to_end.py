"""/subscribe, /set, then publish: exactly one alert, to the right chat."""

from __future__ import annotations

from bots.telegram import TelegramBot
from core.context import HubContext
from tests.telegram.conftest import Chat, eventually
from tests.telegram.fake_bot_api import FakeBotApi


async def test_subscribe_set_publish(
    tg: Chat, bot: TelegramBot, ctx: HubContext, fake: FakeBotApi
) -> None:
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    assert "Subscribed" in (await tg.ask("/subscribe", chat_id=1001)).text
    assert "min_confidence=0.7" in (await tg.ask("/set min_confidence 0.7", chat_id=1001)).text
    assert "tickers=TEL2_B" in (await tg.ask("/set tickers TEL2_B", chat_id=1001)).text
    # another chat talks to the bot but does not subscribe
    await tg.ask("/start", chat_id=2002)
    replies = len(fake.sent)

    weak = await ctx.publisher.publish(
        {"signal_id": "weak", "ticker": "TEL2_B", "confidence": 0.5, "headline": "meh"}
    )
    strong = await ctx.publisher.publish(
        {
            "signal_id": "strong",
            "ticker": "TEL2_B",
            "signal_type": "BUY",
            "confidence": 0.92,
            "catalyst_type": "M&A",
            "price": 14.2,
            "rvol": 4.1,
            "sector": "Telecom",
            "headline": "Tele2 <B> shares jump 12% & *more*",
            "url": "https://news.example/t2?x=1&y=2",
        }
    )
    assert (weak.deliveries, strong.deliveries) == (0, 1)
    await fake.wait_sent(replies + 1)

    async def settled() -> bool:
        stats = await ctx.services.feedback.user_stats(
            (await ctx.services.accounts.resolve("telegram", 1001)).id
        )
        return stats.signals_received == 1

    await eventually(settled)
    alerts = fake.sent[replies:]
    assert len(alerts) == 1
    [alert] = alerts
    assert alert.chat_id == 1001 and alert.parse_mode == "HTML"
    assert "<b>BUY TEL2_B</b>" in alert.text and "92% confidence" in alert.text
    assert "Catalyst: <b>M&amp;A</b>" in alert.text
    assert "Tele2 &lt;B&gt; shares jump 12% &amp; *more*" in alert.text
    assert 'href="https://news.example/t2?x=1&amp;y=2"' in alert.text
    assert "ID: <code>strong</code>" in alert.text
    assert fake.sent_to(2002)[-1].text.startswith("👋")  # only its welcome
