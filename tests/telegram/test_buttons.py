"""The Win / Loss / Skip buttons under an alert."""

from __future__ import annotations

from bots.telegram import TelegramBot
from core.context import HubContext
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.fake_bot_api import FakeBotApi, SentMessage


async def deliver_one(ctx: HubContext, bot: TelegramBot, fake: FakeBotApi) -> SentMessage:
    user = await ctx.services.accounts.resolve("telegram", 1001)
    await ctx.services.subscriptions.subscribe("telegram", "1001", user.id)
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    await ctx.publisher.publish(
        {"signal_id": "x" * 128, "ticker": "TEL2_B", "confidence": 0.9, "catalyst_type": "FDA"}
    )
    return (await fake.wait_sent(1, chat_id=1001))[0]


async def press(
    fake: FakeBotApi, alert: SentMessage, label: str, user_id: int
) -> dict[str, object]:
    # The keyboard as the chat shows it now: a chosen button reads "✅ Win".
    data = {text.removeprefix("✅ "): data for text, data in alert.buttons()}[label]
    before = len(fake.answers)
    fake.push_update(fake_api.callback(data, user_id=user_id, message=alert))
    await fake.wait_for(lambda: len(fake.answers) > before)
    return fake.answers[-1]


async def test_press_records_and_second_press_changes(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    alert = await deliver_one(ctx, bot, fake)
    assert [label for label, _data in alert.buttons()] == ["Win", "Loss", "Skip"]
    assert all(len(data.encode()) <= 64 for _label, data in alert.buttons())

    answer = await press(fake, alert, "Win", 1001)
    assert "Recorded Win for TEL2_B" in str(answer["text"])
    await fake.wait_for(lambda: fake.edits)
    edit = fake.edits[-1]
    assert edit["chat_id"] == 1001 and edit["message_id"] == alert.message_id
    labels = [b["text"] for b in edit["reply_markup"]["inline_keyboard"][0]]
    assert labels == ["✅ Win", "Loss", "Skip"]
    user = await ctx.services.accounts.resolve("telegram", 1001)
    stats = await ctx.services.feedback.user_stats(user.id)
    assert stats.outcomes.wins == 1

    answer = await press(fake, alert, "Loss", 1001)
    assert "Changed to Loss" in str(answer["text"])
    await fake.wait_for(lambda: len(fake.edits) == 2)
    labels = [b["text"] for b in fake.edits[-1]["reply_markup"]["inline_keyboard"][0]]
    assert labels == ["Win", "✅ Loss", "Skip"]
    stats = await ctx.services.feedback.user_stats(user.id)
    assert (stats.outcomes.wins, stats.outcomes.losses) == (0, 1)

    # pressing the same choice again is confirmed; the unchanged keyboard is not an error
    answer = await press(fake, alert, "Loss", 1001)
    assert "Changed to Loss" in str(answer["text"])


async def test_another_user_pressing_records_for_that_user(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    alert = await deliver_one(ctx, bot, fake)
    await press(fake, alert, "Skip", 2002)
    other = await ctx.services.accounts.resolve("telegram", 2002)
    stats = await ctx.services.feedback.user_stats(other.id)
    assert stats.outcomes.skipped == 1


async def test_stale_or_foreign_buttons(
    ctx: HubContext, bot: TelegramBot, fake: FakeBotApi
) -> None:
    alert = await deliver_one(ctx, bot, fake)
    fake.push_update(fake_api.callback("fb:win:99999", user_id=1001, message=alert))
    await fake.wait_for(lambda: fake.answers)
    assert "no longer available" in fake.answers[-1]["text"]
    fake.push_update(fake_api.callback("fb:maybe:1", user_id=1001, message=alert))
    await fake.wait_for(lambda: len(fake.answers) == 2)
    assert "no longer valid" in fake.answers[-1]["text"]
    assert not fake.edits
