"""The fake Bot API answers overlapping getUpdates calls as Telegram does: 409 Conflict."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from tests.telegram import fake_bot_api as fake_api
from tests.telegram.fake_bot_api import FakeBotApi

CONFLICT = {
    "ok": False,
    "error_code": 409,
    "description": "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
}


def get_updates_calls(fake: FakeBotApi) -> int:
    return sum(1 for method, _ in fake.calls if method == "getUpdates")


async def until(check: object) -> None:
    async with asyncio.timeout(5):  # a guard against hanging, not a timing assertion
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_second_get_updates_ends_the_long_polling_one_with_409(fake: FakeBotApi) -> None:
    url = f"{fake.base_url}{fake.token}/getUpdates"
    async with httpx.AsyncClient(timeout=30) as http:
        first = asyncio.create_task(http.post(url, data={"timeout": 20}))
        await until(lambda: get_updates_calls(fake) == 1)  # the first one is long-polling
        second = asyncio.create_task(http.post(url, data={"timeout": 20}))
        ended = await first
        assert ended.status_code == 409
        assert ended.json() == CONFLICT
        assert fake.conflicts == 1

        # The newer call proceeds: it is still polling and gets the next update.
        assert not second.done()
        update_id = fake.push_update(fake_api.command("/help", chat_id=1001))
        answered = await second
    assert answered.status_code == 200
    body = answered.json()
    assert body["ok"] is True
    assert [u["update_id"] for u in body["result"]] == [update_id]
    assert fake.conflicts == 1


async def test_sequential_get_updates_never_conflict(fake: FakeBotApi) -> None:
    url = f"{fake.base_url}{fake.token}/getUpdates"
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(3):
            response = await http.post(url, data={"timeout": 0})
            assert response.status_code == 200
        fake.push_update(fake_api.command("/help", chat_id=1001))
        response = await http.post(url, data={"timeout": 20})
    assert response.status_code == 200
    assert len(response.json()["result"]) == 1
    assert fake.conflicts == 0


async def test_a_poller_that_has_gone_is_not_a_conflict(fake: FakeBotApi) -> None:
    """A stopped or killed poller's long-poll ends quietly when the next one arrives."""
    url = f"{fake.base_url}{fake.token}/getUpdates"
    async with httpx.AsyncClient(timeout=30) as gone:
        first = asyncio.create_task(gone.post(url, data={"timeout": 20}))
        await until(lambda: get_updates_calls(fake) == 1)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
    poll = fake._long_poll
    assert poll is not None
    await until(lambda: not poll.client_connected)  # the server has seen the disconnect
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url, data={"timeout": 0})
    assert response.status_code == 200
    assert fake.conflicts == 0
