"""Every slash command through a real discord.py client, including bad input."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image
from sqlalchemy import text

from bots.discord.bot import DiscordBot
from bots.discord.replies import FALLBACK
from core.charts import SIZE
from core.context import HubContext
from tests.discord.conftest import BotFactory
from tests.discord.fake_discord import MANAGE_CHANNELS, SEND_MESSAGES, TOKEN, FakeDiscord
from tests.discord.helpers import signal_data

USER = 4242
GUILD = 7070
CHANNEL = 8080


async def run(fake: FakeDiscord, name: str, options: dict | None = None, **kw: object) -> str:
    token = await fake.slash(name, options, user_id=kw.pop("user_id", USER), **kw)  # type: ignore[arg-type]
    reply = await fake.reply(token)
    assert reply.ephemeral, reply
    return reply.content


# ---- subscribe / unsubscribe -------------------------------------------------
async def test_subscribe_dm_twice_is_harmless(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    first = await run(fake, "subscribe")
    assert "Subscribed your DMs" in first
    second = await run(fake, "subscribe", guild_id=GUILD)  # from a server: still the DMs
    assert "already get alerts" in second
    info = await ctx.services.subscriptions.get("discord", f"dm:{USER}")
    assert info is not None and info.active
    user = await ctx.services.accounts.resolve("discord", USER)
    assert info.user_id == user.id


async def test_subscribe_channel_needs_manage_channels(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    text = await run(
        fake,
        "subscribe",
        {"channel": CHANNEL},
        guild_id=GUILD,
        channels={CHANNEL: SEND_MESSAGES},
    )
    assert "Manage Channels" in text and f"<#{CHANNEL}>" in text
    assert await ctx.services.subscriptions.get("discord", f"channel:{CHANNEL}") is None


async def test_subscribe_and_unsubscribe_channel(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    opts = {"channel": CHANNEL}
    perms = {CHANNEL: MANAGE_CHANNELS | SEND_MESSAGES}
    text = await run(fake, "subscribe", opts, guild_id=GUILD, channels=perms)
    assert f"Subscribed <#{CHANNEL}>" in text
    info = await ctx.services.subscriptions.get("discord", f"channel:{CHANNEL}")
    assert info is not None and info.active

    refused = await run(
        fake, "unsubscribe", opts, guild_id=GUILD, channels={CHANNEL: SEND_MESSAGES}, user_id=99
    )
    assert "Manage Channels" in refused
    text = await run(fake, "unsubscribe", opts, guild_id=GUILD, channels=perms)
    assert "Unsubscribed" in text
    info = await ctx.services.subscriptions.get("discord", f"channel:{CHANNEL}")
    assert info is not None and not info.active


async def test_unsubscribe_when_not_subscribed(bot: DiscordBot, fake: FakeDiscord) -> None:
    assert "was not subscribed" in await run(fake, "unsubscribe")


# ---- filters ------------------------------------------------------------------
async def test_filters_set_show_reset(bot: DiscordBot, fake: FakeDiscord, ctx: HubContext) -> None:
    await run(fake, "subscribe")
    text = await run(
        fake,
        "filters",
        {"min_confidence": 0.7, "tickers": "aapl, tsla", "max_price": 20.0},
        subcommand="set",
    )
    assert "Saved" in text and "AAPL, TSLA" in text
    # Only the given options change.
    await run(fake, "filters", {"catalyst_types": "fda,m&a"}, subcommand="set")
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.min_confidence == 0.7 and flt.tickers == ("AAPL", "TSLA")
    assert flt.max_price == 20.0 and flt.catalyst_types == ("FDA", "M&A")

    shown = await run(fake, "filters", subcommand="show")
    assert "`min_confidence`: 0.7" in shown and "`catalyst_types`: FDA, M&A" in shown

    await run(fake, "filters", {"tickers": "-"}, subcommand="set")  # "-" clears one field
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.tickers == () and flt.min_confidence == 0.7

    assert "removed" in await run(fake, "filters", subcommand="reset")
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.is_empty()
    assert "every signal" in await run(fake, "filters", subcommand="show")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "Give at least one option"),
        ({"tickers": "$$$"}, "is not a ticker"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"signal_types": "HOLD"}, "BUY, SELL or WATCH"),
        ({"max_price": -1.0}, "max_price"),
    ],
)
async def test_filters_set_bad_input_says_what_is_allowed(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext, options: dict, expected: str
) -> None:
    await run(fake, "subscribe")
    text = await run(fake, "filters", options, subcommand="set")
    assert expected in text
    assert "Traceback" not in text
    flt = await ctx.services.subscriptions.get_filter("discord", f"dm:{USER}")
    assert flt.is_empty()


async def test_filters_need_a_subscription(bot: DiscordBot, fake: FakeDiscord) -> None:
    assert "subscribe first" in await run(fake, "filters", subcommand="show")
    assert "subscribe first" in await run(fake, "filters", {"tickers": "AAPL"}, subcommand="set")


async def test_channel_filters_need_manage_channels(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    manager = {CHANNEL: MANAGE_CHANNELS}
    await run(fake, "subscribe", {"channel": CHANNEL}, guild_id=GUILD, channels=manager)
    refused = await run(
        fake,
        "filters",
        {"channel": CHANNEL, "tickers": "GME"},
        subcommand="set",
        guild_id=GUILD,
        channels={CHANNEL: SEND_MESSAGES},
        user_id=5,
    )
    assert "Manage Channels" in refused
    ok = await run(
        fake,
        "filters",
        {"channel": CHANNEL, "tickers": "GME"},
        subcommand="set",
        guild_id=GUILD,
        channels=manager,
    )
    assert "Saved" in ok
    flt = await ctx.services.subscriptions.get_filter("discord", f"channel:{CHANNEL}")
    assert flt.tickers == ("GME",)
    # Anyone in the channel may look.
    shown = await run(
        fake,
        "filters",
        {"channel": CHANNEL},
        subcommand="show",
        guild_id=GUILD,
        channels={CHANNEL: SEND_MESSAGES},
        user_id=5,
    )
    assert "GME" in shown


# ---- feedback -------------------------------------------------------------------
async def test_feedback_records_and_updates(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    published = await ctx.publisher.publish(signal_data(signal_id="fb-1"))
    opts = {"signal_id": "fb-1", "outcome": "win", "return_pct": 12.5}
    assert "Recorded: **win** with +12.5%" in await run(fake, "feedback", opts)
    assert "Updated: **loss**" in await run(
        fake, "feedback", {"signal_id": "fb-1", "outcome": "loss"}
    )
    user = await ctx.services.accounts.resolve("discord", USER)
    stats = await ctx.services.feedback.user_stats(user.id)
    assert stats.outcomes.losses == 1 and stats.outcomes.wins == 0
    assert published.created


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"signal_id": "nope", "outcome": "win"}, "no signal with id 'nope'"),
        ({"signal_id": "fb-2", "outcome": "skipped", "return_pct": 3.0}, "no return_pct"),
        ({"signal_id": "fb-2", "outcome": "moon"}, "outcome must be one of"),
        ({"signal_id": "fb-2", "outcome": "win", "return_pct": -500.0}, "between -100"),
    ],
)
async def test_feedback_bad_input(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext, options: dict, expected: str
) -> None:
    await ctx.publisher.publish(signal_data(signal_id="fb-2"))
    assert expected in await run(fake, "feedback", options)


# ---- autocomplete -----------------------------------------------------------------
async def test_catalyst_autocomplete(bot: DiscordBot, fake: FakeDiscord) -> None:
    token = await fake.slash(
        "filters",
        {"catalyst_types": "FDA,M"},
        subcommand="set",
        user_id=USER,
        focused="catalyst_types",
    )
    values = [c["value"] for c in await fake.choices(token)]
    assert "FDA,M&A" in values
    assert all(v.startswith("FDA,") and v != "FDA,FDA" for v in values)

    token = await fake.slash(
        "filters", {"catalyst_types": ""}, subcommand="set", user_id=USER, focused="catalyst_types"
    )
    choices = await fake.choices(token)
    assert 1 <= len(choices) <= 25 and choices[0]["value"] == "FDA"


async def test_signal_id_autocomplete_offers_my_recent_signals(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    await run(fake, "subscribe")
    await ctx.publisher.publish(signal_data(signal_id="mine-aapl", ticker="AAPL"))
    await ctx.publisher.publish(signal_data(signal_id="mine-tsla", ticker="TSLA"))
    token = await fake.slash(
        "feedback", {"signal_id": "", "outcome": "win"}, user_id=USER, focused="signal_id"
    )
    choices = await fake.choices(token)
    assert [c["value"] for c in choices] == ["mine-tsla", "mine-aapl"]
    assert choices[0]["name"] == "TSLA · mine-tsla"

    token = await fake.slash(
        "feedback", {"signal_id": "aap", "outcome": "win"}, user_id=USER, focused="signal_id"
    )
    assert [c["value"] for c in await fake.choices(token)] == ["mine-aapl"]
    # Another user has received nothing.
    token = await fake.slash(
        "feedback", {"signal_id": "", "outcome": "win"}, user_id=1, focused="signal_id"
    )
    assert await fake.choices(token) == []


# ---- stats / recent / link / help ---------------------------------------------------
@pytest.mark.parametrize("defer_after", [2.0, 0.0], ids=["answered", "deferred"])
async def test_stats(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext, defer_after: float
) -> None:
    await make_bot(defer_after=defer_after)
    await run(fake, "subscribe")
    await ctx.publisher.publish(signal_data(signal_id="st-1"))
    await run(fake, "feedback", {"signal_id": "st-1", "outcome": "win", "return_pct": 10.0})
    token = await fake.slash("stats", None, user_id=USER)
    reply = await fake.reply(token)
    text = reply.content  # the embed's description
    assert "Signals received:" in text and "Trades: 1 (W 1" in text
    assert "Win rate: 100.0%" in text and "+10.00%" in text
    assert "by catalyst" not in text
    # The chart: a real multipart upload that the embed shows as its image.
    assert reply.ephemeral
    [(filename, _content_type, png)] = reply.files
    assert filename == "stats.png"
    assert reply.embeds()[0]["image"]["url"] == "attachment://stats.png"
    image = Image.open(io.BytesIO(png))
    image.load()
    assert (image.format, image.size) == ("PNG", SIZE)


async def test_stats_for_admins_adds_catalysts(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext
) -> None:
    await make_bot(admin_user_ids=[USER])
    await ctx.publisher.publish(signal_data(signal_id="st-2"))
    await run(fake, "feedback", {"signal_id": "st-2", "outcome": "loss"})
    text = await run(fake, "stats")
    assert "All users by catalyst" in text and "`FDA`" in text


async def test_recent_follows_my_filter(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    assert "No signals yet" in await run(fake, "recent")
    for ticker in ("AAPL", "TSLA", "GME"):
        await ctx.publisher.publish(signal_data(ticker=ticker))
    text = await run(fake, "recent", {"count": 2})
    assert "`GME`" in text and "`TSLA`" in text and "`AAPL`" not in text
    await run(fake, "subscribe")
    await run(fake, "filters", {"tickers": "AAPL"}, subcommand="set")
    text = await run(fake, "recent")
    assert "matching your filters" in text and "`AAPL`" in text and "`GME`" not in text
    assert "between 1 and 10" in await run(fake, "recent", {"count": 50})


async def test_link_issue_and_redeem(bot: DiscordBot, fake: FakeDiscord, ctx: HubContext) -> None:
    telegram_user = await ctx.services.accounts.resolve("telegram", 777)
    code = await ctx.services.accounts.issue_link_code(telegram_user.id, "telegram")
    text = await run(fake, "link", {"code": code.lower()})
    assert "Linked" in text
    assert (await ctx.services.accounts.resolve("discord", USER)).id == telegram_user.id

    issued = await run(fake, "link", user_id=31337)
    assert "Your link code is `" in issued

    assert "unknown, used or expired" in await run(fake, "link", {"code": code})
    assert "8 letters and digits" in await run(fake, "link", {"code": "x" * 40})


async def test_help_lists_commands_and_filter_fields(bot: DiscordBot, fake: FakeDiscord) -> None:
    text = await run(fake, "help", guild_id=GUILD)
    for word in ("/subscribe", "/filters", "/feedback", "/stats", "/link", "min_confidence"):
        assert word in text
    assert len(text) <= 2000


# ---- answering in time and never failing silently -------------------------------------
async def test_slow_work_is_deferred_then_followed_up(
    make_bot: BotFactory, fake: FakeDiscord
) -> None:
    await make_bot(defer_after=0.0)
    token = await fake.slash("subscribe", user_id=USER)
    reply = await fake.reply(token)
    assert reply.deferred and reply.ephemeral
    assert "Subscribed your DMs" in reply.content
    assert fake.interactions[token].callbacks[0]["data"]["flags"] == 64


async def test_errors_after_deferring_still_reach_the_user(
    make_bot: BotFactory, fake: FakeDiscord
) -> None:
    await make_bot(defer_after=0.0)
    token = await fake.slash("feedback", {"signal_id": "missing", "outcome": "win"}, user_id=USER)
    reply = await fake.reply(token)
    assert reply.deferred and "no signal with id" in reply.content


async def test_unknown_command_gets_an_answer(bot: DiscordBot, fake: FakeDiscord) -> None:
    text = await run(fake, "portfolio")
    assert "out of date" in text


async def test_wrong_channel_kind_is_refused(bot: DiscordBot, fake: FakeDiscord) -> None:
    token = await fake.slash(
        "subscribe",
        {"channel": CHANNEL},
        user_id=USER,
        guild_id=GUILD,
        channels={CHANNEL: MANAGE_CHANNELS},
        channel_type=2,  # a voice channel
    )
    reply = await fake.reply(token)
    assert reply.ephemeral and "not valid" in reply.content


async def test_unexpected_failure_answers_without_details(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    async with ctx.db.transaction() as session:  # a real storage failure, not a mock
        await session.execute(text("DROP TABLE link_codes"))
    reply = await fake.reply(await fake.slash("link", user_id=USER))
    assert reply.ephemeral
    assert reply.content == FALLBACK
    assert "link_codes" not in reply.content
    assert "/link failed" in caplog.text  # logged for the operator


async def test_token_never_logged(
    make_bot: BotFactory, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await make_bot()
    await fake.reply(await fake.slash("subscribe", user_id=USER))
    await bot.stop()
    assert caplog.records  # discord.py logged plenty at DEBUG
    assert TOKEN not in caplog.text
