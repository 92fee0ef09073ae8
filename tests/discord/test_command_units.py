"""Each command class on its own: a bot whose tree holds only that command.

The command is built from its class with a HubContext (and its own Replier or
settings), put on an otherwise empty tree through discord.py's public
``CommandTree`` API, and driven through the fake Discord like any other.
"""

from __future__ import annotations

from typing import Any

from discord import app_commands

from bots.discord.bot import DiscordBot
from bots.discord.feedback_commands import FeedbackCommand, StatsCommand
from bots.discord.filter_commands import FiltersGroup
from bots.discord.replies import Replier
from bots.discord.subscription_commands import SubscribeCommand
from core.context import HubContext
from tests.discord.conftest import BotFactory, discord_settings
from tests.discord.fake_discord import FakeDiscord
from tests.discord.helpers import signal_data

USER = 5151

AnyCommand = app_commands.Command[Any, ..., None] | app_commands.Group


async def bot_with(make_bot: BotFactory, command: AnyCommand) -> DiscordBot:
    """A started bot whose tree holds ``command`` and nothing else."""
    bot = await make_bot(start=False)
    bot.client.tree.clear_commands(guild=None)
    bot.client.tree.add_command(command)
    await bot.start()
    return bot


async def answer(
    fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **kw: Any
) -> str:
    token = await fake.slash(name, options, user_id=USER, **kw)
    reply = await fake.reply(token)
    assert reply.ephemeral, reply
    return reply.content


async def test_a_command_is_built_without_touching_discord(
    ctx: HubContext, fake: FakeDiscord
) -> None:
    command = SubscribeCommand(ctx, Replier()).command
    assert (command.name, command.description) == (
        "subscribe",
        "Get signal alerts by DM or in a channel",
    )
    assert [p.name for p in command.parameters] == ["channel"]
    assert fake.requests == []


async def test_feedback_alone(make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext) -> None:
    await bot_with(make_bot, FeedbackCommand(ctx, Replier()).command)
    [(_guild, payload)] = fake.command_syncs
    assert [c["name"] for c in payload] == ["feedback"]

    user = await ctx.services.accounts.resolve("discord", USER)
    await ctx.services.subscriptions.subscribe("discord", f"dm:{USER}", user.id)
    await ctx.publisher.publish(signal_data(signal_id="unit-1", ticker="MRNA"))

    token = await fake.slash(
        "feedback", {"signal_id": "mr", "outcome": "win"}, user_id=USER, focused="signal_id"
    )
    assert [c["value"] for c in await fake.choices(token)] == ["unit-1"]

    text = await answer(fake, "feedback", {"signal_id": "unit-1", "outcome": "win"})
    assert text == "Recorded: **win** on `unit-1`."
    # Nothing else is on this tree: another command is "out of date".
    assert "out of date" in await answer(fake, "subscribe")


async def test_stats_alone_takes_its_admins_from_its_settings(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext
) -> None:
    settings = discord_settings(admin_user_ids=[USER])
    await bot_with(make_bot, StatsCommand(ctx, Replier(), settings).command)
    text = await answer(fake, "stats")
    assert "Signals received: 0" in text and "by catalyst" not in text  # no trades yet

    await ctx.publisher.publish(signal_data(signal_id="unit-2"))
    user = await ctx.services.accounts.resolve("discord", USER)
    await ctx.services.feedback.record(user.id, "unit-2", "loss", None)
    assert "All users by catalyst" in await answer(fake, "stats")


async def test_filters_group_alone_with_its_own_replier(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext
) -> None:
    group = FiltersGroup(ctx, Replier(defer_after=0.0))  # always defers
    await bot_with(make_bot, group)
    [(_guild, payload)] = fake.command_syncs
    assert [c["name"] for c in payload] == ["filters"]
    assert [o["name"] for o in payload[0]["options"]] == ["show", "set", "preview", "reset"]

    user = await ctx.services.accounts.resolve("discord", USER)
    await ctx.services.subscriptions.subscribe("discord", f"dm:{USER}", user.id)
    token = await fake.slash("filters", {"tickers": "aapl"}, user_id=USER, subcommand="set")
    reply = await fake.reply(token)
    assert reply.deferred and reply.ephemeral
    assert "`tickers`: AAPL" in reply.content

    token = await fake.slash(
        "filters",
        {"catalyst_types": "FDA,"},
        user_id=USER,
        subcommand="set",
        focused="catalyst_types",
    )
    values = [c["value"] for c in await fake.choices(token)]
    assert values and all(v.startswith("FDA,") for v in values) and "FDA,FDA" not in values
