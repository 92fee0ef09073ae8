"""The whole path: /subscribe, /filters set, publish two signals, one embed in the right DM."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bots.discord.bot import DiscordBot
from core.context import HubContext
from storage.models import Delivery, DeliveryStatus
from tests.discord.fake_discord import FakeDiscord, custom_ids
from tests.discord.helpers import signal_data

TRADER = 1234567
OTHER = 7654321


async def test_subscribe_filter_publish_one_embed_in_the_right_dm(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()

    reply = await fake.reply(await fake.slash("subscribe", user_id=TRADER, guild_id=99))
    assert "Subscribed your DMs" in reply.content
    reply = await fake.reply(
        await fake.slash(
            "filters",
            {"tickers": "MRNA", "min_confidence": 0.7, "catalyst_types": "FDA"},
            subcommand="set",
            user_id=TRADER,
            guild_id=99,
        )
    )
    assert "Saved" in reply.content

    matching = await ctx.publisher.publish(
        signal_data(signal_id="e2e-hit", ticker="MRNA", confidence=0.9, catalyst_type="FDA")
    )
    missing = await ctx.publisher.publish(
        signal_data(signal_id="e2e-miss", ticker="MRNA", confidence=0.5, catalyst_type="FDA")
    )
    assert (matching.deliveries, missing.deliveries) == (1, 0)

    await fake.wait_for(lambda: fake.sent)

    async def settled() -> bool:
        async with ctx.db.session() as session:
            rows = (await session.execute(select(Delivery))).scalars().all()
        return len(rows) == 1 and rows[0].status == DeliveryStatus.SENT

    for _ in range(200):
        if await settled():
            break
        await asyncio.sleep(0.02)
    assert await settled()

    assert fake.dm_opened == [TRADER]
    assert len(fake.sent) == 1
    sent = fake.sent[0]
    assert sent.channel_id == fake.dm_channels[TRADER]
    assert fake.dm_channels.get(OTHER) is None
    (embed,) = sent.payload["embeds"]
    assert embed["title"] == "MRNA · BUY"
    assert "e2e-hit" in embed["footer"]["text"]
    assert custom_ids(sent)[0] == "csh:o:w:e2e-hit"
    assert fake.unhandled == []  # every request discord.py made is one the fake knows
