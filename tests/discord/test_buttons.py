"""Win / Loss / Skip buttons: a press records the presser's outcome, also after a restart."""

from __future__ import annotations

from bots.discord.bot import DiscordBot
from bots.discord.views import CUSTOM_ID_MAX
from core.channels import Alert
from core.context import HubContext
from tests.discord.conftest import BotFactory
from tests.discord.fake_discord import FakeDiscord, Sent, custom_ids
from tests.discord.helpers import signal_data

USER = 3131
DM_CHANNEL = 3232


async def deliver(bot: DiscordBot, fake: FakeDiscord, ctx: HubContext, **overrides: object) -> Sent:
    result = await ctx.publisher.publish(signal_data(**overrides))
    fake.dm_channels.setdefault(USER, DM_CHANNEL)
    await bot.channel.send(Alert(1, 1, f"dm:{USER}", result.signal))
    return fake.messages_to(DM_CHANNEL)[-1]


async def test_win_press_records_for_the_presser(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    sent = await deliver(bot, fake, ctx, signal_id="btn-1", ticker="MRNA")
    win, loss, skip = custom_ids(sent)
    reply = await fake.reply(await fake.press(sent, win, user_id=USER))
    assert reply.ephemeral and "**win** on MRNA" in reply.content

    reply = await fake.reply(await fake.press(sent, skip, user_id=USER))
    assert "skipped" in reply.content and "changed" in reply.content

    # Someone else pressing Loss on a forwarded alert records for them, not for USER.
    await fake.reply(await fake.press(sent, loss, user_id=USER + 1))
    mine = await ctx.services.feedback.user_stats(
        (await ctx.services.accounts.resolve("discord", USER)).id
    )
    theirs = await ctx.services.feedback.user_stats(
        (await ctx.services.accounts.resolve("discord", USER + 1)).id
    )
    assert (mine.outcomes.skipped, mine.outcomes.wins, mine.outcomes.losses) == (1, 0, 0)
    assert theirs.outcomes.losses == 1


async def test_button_still_works_after_a_restart(
    make_bot: BotFactory, fake: FakeDiscord, ctx: HubContext
) -> None:
    first = await make_bot()
    sent = await deliver(first, fake, ctx, signal_id="btn-restart", ticker="NVAX")
    await first.stop()

    second = await make_bot()  # a new client, a new gateway session
    assert second.client is not first.client
    assert len(fake.identifies) == 2
    reply = await fake.reply(await fake.press(sent, custom_ids(sent)[1], user_id=USER))
    assert "**loss** on NVAX" in reply.content
    user = await ctx.services.accounts.resolve("discord", USER)
    assert (await ctx.services.feedback.user_stats(user.id)).outcomes.losses == 1


async def test_long_signal_id_is_carried_by_seq(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    long_id = "L" * 120
    sent = await deliver(bot, fake, ctx, signal_id=long_id, ticker="BNTX")
    ids = custom_ids(sent)
    assert all(len(c) <= CUSTOM_ID_MAX and "#" in c for c in ids)
    reply = await fake.reply(await fake.press(sent, ids[0], user_id=USER))
    assert "**win** on BNTX" in reply.content


async def test_press_on_a_forgotten_signal_explains(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    sent = await deliver(bot, fake, ctx, signal_id="btn-x")
    sent.message["components"][0]["components"][0]["custom_id"] = "csh:o:w:never-stored"
    reply = await fake.reply(await fake.press(sent, "csh:o:w:never-stored", user_id=USER))
    assert reply.ephemeral and "no signal with id 'never-stored'" in reply.content
