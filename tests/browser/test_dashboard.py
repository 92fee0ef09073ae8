"""The admin dashboard in a real browser (Debian's Chromium via Playwright), against
a real uvicorn server: log in with an admin key, watch a signal arrive live, trace
it, and retry its dead deliveries. On a phone-sized screen."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    WebSocket,
    expect,
)

from core.context import HubContext
from storage.models import Delivery, DeliveryStatus
from storage.repositories import deliveries as deliveries_repo
from tests.api.conftest import Hub

pytestmark = pytest.mark.browser

BLOCKED = "Forbidden: bot was blocked by the user"
PHONE: ViewportSize = {"width": 390, "height": 844}


async def _kill_telegram_deliveries(ctx: HubContext) -> list[int]:
    """A failing dispatcher round, through the outbox's own calls: claim every due
    telegram delivery and record it dead with the platform's refusal."""
    now = datetime.now(UTC)
    async with ctx.db.transaction() as session:
        claimed = await deliveries_repo.claim_due(
            "telegram", now, now + timedelta(seconds=60), 100, session=session
        )
        for c in claimed:
            assert await deliveries_repo.finish(
                c.delivery_id, c.token, DeliveryStatus.DEAD, session=session, now=now, error=BLOCKED
            )
    return sorted(c.delivery_id for c in claimed)


async def _status(ctx: HubContext, delivery_id: int) -> str:
    async with ctx.db.session() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        return row.status


async def _open_dashboard(browser: Browser, hub: Hub) -> tuple[Page, list[str], list[str]]:
    page = await browser.new_page(viewport=PHONE)
    problems: list[str] = []  # script errors and CSP violations
    sent: list[str] = []  # every URL requested and every WebSocket frame sent

    def on_console(message: ConsoleMessage) -> None:
        # A 404 or 400 answer is logged too: the search asks both ways on purpose.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def on_websocket(ws: WebSocket) -> None:
        sent.append(ws.url)
        ws.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: sent.append(request.url + " " + (request.post_data or "")))
    page.on("websocket", on_websocket)
    page.on("dialog", lambda dialog: dialog.accept())  # "Retry every dead ... delivery?"
    await page.goto(f"http://127.0.0.1:{hub.server.port}/admin")
    return page, problems, sent


async def test_admin_watches_traces_and_retries_in_the_browser(browser: Browser, hub: Hub) -> None:
    expect.set_options(timeout=10_000)
    ctx = hub.ctx
    admin, key = await hub.user("ops", ("read", "admin"), is_admin=True)
    subs = ctx.services.subscriptions
    await subs.subscribe("telegram", "1001", admin.id)
    await subs.subscribe("telegram", "1002", admin.id)

    page, problems, sent = await _open_dashboard(browser, hub)
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()

    # Log in: the key goes to POST /api/v1/auth/token and is forgotten.
    await page.fill("#api-key", key)
    await page.click("#login-button")
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#ws-status")).to_have_text("live")  # subscribed
    assert await page.input_value("#api-key") == ""

    # Channel cards: the outbox channels and the WebSocket stream (this page's socket,
    # open by now: the cards loaded at login may predate it).
    await page.click("#channels-refresh")
    telegram = page.locator('.card[data-channel="telegram"]')
    await expect(telegram.locator('[data-field="active_subscriptions"]')).to_have_text("2")
    websocket = page.locator('.card[data-channel="websocket"]')
    await expect(websocket.locator('[data-field="connections"]')).to_have_text("1")

    # A signal appears live in the feed.
    published = await hub.publish(
        signal_id="dash-1", ticker="DASH", catalyst_type="FDA", headline="DASH wins approval"
    )
    row = page.locator('#feed tr[data-signal-id="dash-1"]')
    await expect(row).to_contain_text("DASH")
    await expect(row).to_contain_text("DASH wins approval")

    # Both telegram deliveries die; one subscriber then leaves (that one cannot go back).
    first, second = await _kill_telegram_deliveries(ctx)
    assert await subs.deactivate("telegram", "1002", "blocked by user")

    # Its trace: every delivery with a status badge.
    await row.locator(".trace-button").click()
    trace = page.locator("#trace")
    await expect(trace.locator("tr")).to_have_count(2)
    await expect(trace.locator(f'tr[data-delivery-id="{first}"] .badge-dead')).to_have_text("dead")
    await expect(trace.locator(f'tr[data-delivery-id="{first}"]')).to_contain_text(BLOCKED)
    await expect(page.locator("#trace-signal")).to_contain_text(str(published["seq"]))

    # Dead letters: retry one row, and see the result.
    await page.click("#dead-load")
    dead = page.locator('#dead .dead-group[data-channel="telegram"]')
    await expect(dead.locator("tbody tr")).to_have_count(2)
    await dead.locator(f'tr[data-delivery-id="{first}"] .retry-button').click()
    result = page.locator("#retry-result")
    await expect(result).to_have_text("Retried 1.")
    await expect(dead.locator("tbody tr")).to_have_count(1)  # the list reloaded
    assert await _status(ctx, first) == DeliveryStatus.PENDING.value

    # "Retry all" for the channel: the inactive subscription's row is skipped, saying why.
    await dead.locator(".retry-all").click()
    await expect(result).to_contain_text("Retried 0. Skipped 1:")
    await expect(result).to_contain_text(f"#{second} (subscription inactive")
    assert await _status(ctx, second) == DeliveryStatus.DEAD.value

    # The filter text changes this page's stream only.
    await page.fill("#filter-text", "tickers=ZZZZ min_confidence=0.5")
    await page.click("#filter-form button")
    await expect(page.locator("#filter-status")).to_contain_text("tickers=ZZZZ")
    await hub.publish(signal_id="dash-2", ticker="DASH")
    await hub.publish(signal_id="zz-1", ticker="ZZZZ")
    await expect(page.locator('#feed tr[data-signal-id="zz-1"]')).to_be_visible()
    await expect(page.locator('#feed tr[data-signal-id="dash-2"]')).to_have_count(0)
    await page.fill("#filter-text", "bogus=1")
    await page.click("#filter-form button")
    await expect(page.locator("#filter-status")).to_contain_text("Filter refused: bogus")

    # Search by ticker (REST, the stored filter: untouched, so everything) and by id.
    await page.fill("#search-text", "dash")
    await page.click("#search-form button")
    found = page.locator("#search-results tr")
    await expect(found).to_have_count(2)
    await expect(page.locator('#search-results tr[data-signal-id="dash-2"]')).to_be_visible()
    await page.fill("#search-text", "zz-1")
    await page.click("#search-form button")
    await expect(found).to_have_count(1)
    await expect(page.locator('#search-results tr[data-signal-id="zz-1"]')).to_be_visible()

    # Readable on a phone: nothing wider than the screen but the tables' own scrollers.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        "the page scrolls sideways"
    )

    # The key is nowhere: not in a URL, a frame, storage, or the page; only in the POST body.
    posted = [s for s in sent if key in s]
    assert len(posted) == 1 and posted[0].startswith(
        f"http://127.0.0.1:{hub.server.port}/api/v1/auth/token "
    ), posted
    assert not any(key in s.split(" ", 1)[0] for s in sent)
    stored = await page.evaluate("JSON.stringify([{...sessionStorage}, {...localStorage}])")
    assert key not in stored and key not in await page.content()
    assert not any(re.search(r"[?&](token|api_key|key)=", s) for s in sent), sent
    assert problems == []

    # Logging out drops the token and the data.
    await page.click("#logout")
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#feed tr")).to_have_count(0)
    await page.close()
