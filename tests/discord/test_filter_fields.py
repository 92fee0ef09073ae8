"""``/filters set`` reaches every numeric field: it sets ``min_price`` and clears
numbers through ``clear`` (a number option cannot hold ``-``); and ``/stats``
shows the one win-rate rule (n/a before any executed trade) as Telegram does."""

from __future__ import annotations

from bots.discord.bot import DiscordBot
from core.context import HubContext
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_commands import USER, run


async def test_min_price_is_set_and_numbers_are_cleared(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    await run(fake, "subscribe")
    text = await run(
        fake,
        "filters",
        {"min_price": 1.5, "max_price": 20.0, "min_rvol": 2.0, "tickers": "AAPL"},
        subcommand="set",
    )
    assert "`min_price`: 1.5" in text
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert (flt.min_price, flt.max_price, flt.min_rvol) == (1.5, 20.0, 2.0)

    await run(fake, "filters", {"clear": "min_price, min_rvol"}, subcommand="set")
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.min_price is None and flt.min_rvol is None
    assert flt.max_price == 20.0 and flt.tickers == ("AAPL",)


async def test_clear_names_unknown_fields_and_changes_nothing(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    await run(fake, "subscribe")
    await run(fake, "filters", {"max_price": 5.0}, subcommand="set")
    text = await run(fake, "filters", {"clear": "max_price,colour"}, subcommand="set")
    assert "unknown field(s) colour" in text and "min_price" in text
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.max_price == 5.0


async def test_win_rate_is_na_before_any_executed_trade(bot: DiscordBot, fake: FakeDiscord) -> None:
    await run(fake, "subscribe")
    text = await run(fake, "stats")
    assert "Win rate: n/a" in text and "0.0%" not in text


async def test_filters_preview_and_the_summary_after_set(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    for i in range(3):
        await ctx.publisher.publish(
            {"signal_id": f"fda{i}", "ticker": "ABCD", "catalyst_type": "FDA", "confidence": 0.9}
        )
    await ctx.publisher.publish(
        {"signal_id": "news0", "ticker": "WXYZ", "catalyst_type": "NEWS", "confidence": 0.5}
    )
    text = await run(
        fake, "filters", {"filter": "catalyst_types=FDA", "days": 7}, subcommand="preview"
    )
    assert "**Preview** of `catalyst_types=FDA`" in text
    assert "Last 7 days: 3 of 4 signals would have matched (0.4/day)" in text
    assert "Top tickers: ABCD 3" in text
    text = await run(fake, "filters", {}, subcommand="preview")  # not subscribed: everything
    assert "(no filter: every signal)" in text and "4 of 4" in text
    await run(fake, "subscribe")
    text = await run(fake, "filters", {"min_confidence": 0.8}, subcommand="set")
    assert "Last 30 days: 3 of 4 signals would have matched" in text
    text = await run(fake, "filters", {"filter": "colour=red"}, subcommand="preview")
    assert "colour" in text
    assert "/filters preview" in await run(fake, "help")
