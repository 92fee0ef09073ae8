"""``my_chat_member``: a user who blocks the bot, or a group that removes it,
deactivates that chat's subscription at once, not at the next failed send."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.context import HubContext
from tests.telegram.conftest import Chat
from tests.telegram.fake_bot_api import BOT_ID, BOT_USERNAME, FakeBotApi

GROUP = -100777


def my_chat_member(chat: dict[str, Any], by: int, old: str, new: str) -> dict[str, Any]:
    bot = {"id": BOT_ID, "is_bot": True, "first_name": "Catalyst", "username": BOT_USERNAME}
    new_member: dict[str, Any] = {"user": bot, "status": new}
    if new == "kicked":
        new_member["until_date"] = 0
    return {
        "my_chat_member": {
            "chat": chat,
            "from": {"id": by, "is_bot": False, "first_name": "U"},
            "date": int(time.time()),
            "old_chat_member": {"user": bot, "status": old},
            "new_chat_member": new_member,
        }
    }


@pytest.mark.parametrize(
    ("chat_id", "chat", "status", "reason"),
    [
        (1001, {"id": 1001, "type": "private", "first_name": "U"}, "kicked", "blocked"),
        (GROUP, {"id": GROUP, "type": "supergroup", "title": "G"}, "left", "removed"),
        (GROUP, {"id": GROUP, "type": "supergroup", "title": "G"}, "kicked", "removed"),
    ],
)
async def test_blocking_or_removing_the_bot_deactivates_at_once(
    tg: Chat,
    fake: FakeBotApi,
    ctx: HubContext,
    chat_id: int,
    chat: dict[str, Any],
    status: str,
    reason: str,
) -> None:
    fake.set_member(GROUP, 11, "administrator")
    await tg.ask("/subscribe", chat_id=chat_id, user_id=11 if chat_id < 0 else None)
    assert (await ctx.services.subscriptions.get("telegram", str(chat_id))).active  # type: ignore[union-attr]
    fake.push_update(my_chat_member(chat, 11, "member", status))

    async def inactive() -> bool:
        sub = await ctx.services.subscriptions.get("telegram", str(chat_id))
        return sub is not None and not sub.active

    # Updates are handled in order: once a later probe is answered, this one was too.
    await tg.ask("/help", chat_id=1002)
    assert await inactive()
    stored = await ctx.services.subscriptions.get("telegram", str(chat_id))
    assert stored is not None and reason in (stored.deactivated_reason or "")


async def test_being_added_changes_nothing_and_polling_asks_for_the_updates(
    tg: Chat, fake: FakeBotApi, ctx: HubContext
) -> None:
    fake.set_member(GROUP, 11, "administrator")
    await tg.ask("/subscribe", chat_id=GROUP, user_id=11)
    chat = {"id": GROUP, "type": "supergroup", "title": "G"}
    fake.push_update(my_chat_member(chat, 11, "left", "member"))  # added back
    await tg.ask("/help", chat_id=1002)
    assert (await ctx.services.subscriptions.get("telegram", str(GROUP))).active  # type: ignore[union-attr]
    polls = [params for method, params in fake.calls if method == "getUpdates"]
    assert polls and "my_chat_member" in str(polls[-1].get("allowed_updates"))
