"""Groups and channels: the administrator rule, channel posts and migration."""

from __future__ import annotations

from core.context import HubContext
from tests.telegram import fake_bot_api as fake_api
from tests.telegram.conftest import Chat
from tests.telegram.fake_bot_api import FakeBotApi

GROUP = -100200300


async def test_only_admins_change_a_group(tg: Chat, fake: FakeBotApi, ctx: HubContext) -> None:
    fake.set_member(GROUP, 11, "administrator")
    fake.set_member(GROUP, 12, "creator")
    # 13 is a plain member
    denied = await tg.ask("/subscribe", chat_id=GROUP, user_id=13)
    assert "Only this group's administrators" in denied.text
    assert await ctx.services.subscriptions.get("telegram", str(GROUP)) is None
    assert ("getChatMember", {"chat_id": GROUP, "user_id": 13}) in [
        (m, {k: p[k] for k in ("chat_id", "user_id")})
        for m, p in fake.calls
        if m == "getChatMember"
    ]
    assert "Subscribed" in (await tg.ask("/subscribe", chat_id=GROUP, user_id=11)).text
    for command in ("/set min_confidence 0.9", "/reset", "/unsubscribe"):
        reply = await tg.ask(command, chat_id=GROUP, user_id=13)
        assert "Only this group's administrators" in reply.text
    # anyone may read
    assert "none" in (await tg.ask("/filters", chat_id=GROUP, user_id=13)).text
    assert "No signals" in (await tg.ask("/recent", chat_id=GROUP, user_id=13)).text
    # the creator and admins may change
    assert (
        "min_confidence=0.9"
        in (await tg.ask("/set min_confidence 0.9", chat_id=GROUP, user_id=12)).text
    )
    assert "Unsubscribed" in (await tg.ask("/unsubscribe", chat_id=GROUP, user_id=11)).text


async def test_configured_admins_and_anonymous_admins(
    tg: Chat, fake: FakeBotApi, ctx: HubContext
) -> None:
    # 4242 is in admin_user_ids (see the bot fixture)
    assert "Subscribed" in (await tg.ask("/subscribe", chat_id=GROUP, user_id=4242)).text
    # an anonymous administrator posts as the group itself
    update = fake_api.command("/set max_price 20", chat_id=GROUP, user_id=1087968824)
    update["message"]["sender_chat"] = fake_api.chat(GROUP)
    before = len(fake.sent_to(GROUP))
    fake.push_update(update)
    reply = (await fake.wait_sent(before + 1, chat_id=GROUP))[-1]
    assert "max_price=20" in reply.text


async def test_member_lookup_failure_denies(tg: Chat, fake: FakeBotApi) -> None:
    fake.fail("getChatMember", fake_api.bad_request("user not found"))
    reply = await tg.ask("/subscribe", chat_id=GROUP, user_id=14)
    assert "Only this group's administrators" in reply.text


async def test_channel_posts(tg: Chat, fake: FakeBotApi, ctx: HubContext) -> None:
    channel = -100999
    reply = await tg.ask("/subscribe", chat_id=channel, kind="channel")
    assert "Subscribed" in reply.text
    assert (
        "min_confidence=0.8"
        in (await tg.ask("/set min_confidence 0.8", chat_id=channel, kind="channel")).text
    )
    await tg.silent("/unsubscribe@other_bot", chat_id=channel, kind="channel")
    info = await ctx.services.subscriptions.get("telegram", str(channel))
    assert info is not None and info.active


async def test_migration_message_moves_the_subscription(
    tg: Chat, fake: FakeBotApi, ctx: HubContext
) -> None:
    old, new = -4001, -1004001
    fake.set_member(old, 11, "administrator")
    await tg.ask("/subscribe", chat_id=old, user_id=11, kind="group")
    fake.push_update(fake_api.migration(old, new))

    async def moved() -> bool:
        return await ctx.services.subscriptions.get("telegram", str(new)) is not None

    # the migration is processed before the next update, which the probe waits for
    await tg.ask("/help", chat_id=new, user_id=11)
    assert await moved()
    assert await ctx.services.subscriptions.get("telegram", str(old)) is None
