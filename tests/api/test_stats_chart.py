"""``GET /api/v1/stats/chart.png`` and the chart behind every platform's ``/stats``."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from PIL import Image

from core.charts import SIZE
from domain.outcomes import cumulative_returns
from tests.api.conftest import Hub, HubFactory, auth


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    return image


def test_cumulative_returns_sum_executed_trades_in_order() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        (t0, "win", 10.0),
        (t0 + timedelta(days=1), "skipped", None),
        (t0 + timedelta(days=2), "loss", -4.0),
        (t0 + timedelta(days=3), "win", None),  # no return given: no point
        (t0 + timedelta(days=4), "breakeven", 0.5),
    ]
    assert cumulative_returns(rows) == [
        (t0, 10.0),
        (t0 + timedelta(days=2), 6.0),
        (t0 + timedelta(days=4), 6.5),
    ]


async def test_chart_is_a_png_of_the_documented_size(hub: Hub) -> None:
    alice, key = await hub.user("alice")
    bob, _ = await hub.user("bob")
    for i, catalyst in enumerate(["FDA", "FDA", "EARNINGS", "M&A"]):
        await hub.publish(signal_id=f"c{i}", catalyst_type=catalyst)
    await hub.ctx.services.feedback.record(alice.id, "c0", "win", "12.5")
    await hub.ctx.services.feedback.record(alice.id, "c2", "loss", "-3")
    await hub.ctx.services.feedback.record(bob.id, "c1", "win", "4")

    response = await hub.http.get("/api/v1/stats/chart.png", headers=auth(key))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = decode(response.content)
    assert (image.format, image.size) == ("PNG", SIZE)
    assert len(set(image.convert("RGB").getdata())) > 20  # bars and a line, not a blank page

    # A user with no reports still gets a chart (the empty states say what to do).
    _carol, carol_key = await hub.user("carol")
    empty = await hub.http.get("/api/v1/stats/chart.png", headers=auth(carol_key))
    assert empty.status_code == 200 and decode(empty.content).size == SIZE
    assert (await hub.http.get("/api/v1/stats/chart.png")).status_code == 401


async def test_hints_list_the_groups_with_enough_outcomes(make_hub: HubFactory) -> None:
    hub = await make_hub()
    users = [await hub.user(f"t{i}") for i in range(10)]
    _reader, key = users[0]
    for i in range(10):
        await hub.publish(signal_id=f"h{i}", catalyst_type="FDA", confidence=0.85)
    await hub.publish(signal_id="few", catalyst_type="EARNINGS", confidence=0.85)
    for i, (user, _key) in enumerate(users):
        await hub.ctx.services.feedback.record(user.id, f"h{i}", "win" if i < 7 else "loss", "2")
        await hub.ctx.services.feedback.record(user.id, "few", "win", "5")  # 10 on one signal
    await hub.ctx.services.feedback.record(users[0][0].id, "h1", "loss", "-4")  # a second report
    response = await hub.http.get("/api/v1/stats/hints", headers=auth(key))
    assert response.status_code == 200, response.text
    by_catalyst = {h["catalyst_type"]: h for h in response.json()}
    assert set(by_catalyst) == {"FDA", "EARNINGS"}
    fda = by_catalyst["FDA"]
    assert fda["confidence_bucket"] == "0.8-0.9"
    assert fda["line"] == "FDA, 80–90%: 7 W / 4 L reported, avg +1.45%"
    assert fda["stats"]["trades_executed"] == 11
    assert (await hub.http.get("/api/v1/stats/hints")).status_code == 401


def test_names_with_dollar_signs_are_text_not_math() -> None:
    """A user or catalyst named like a malformed matplotlib formula still renders."""
    from core.charts import render_stats_chart
    from domain.outcomes import GroupStats, summarize

    when = datetime(2026, 11, 1, tzinfo=UTC)
    for name in ("$x^$", r"$\undefinedcmd$", "a$b"):
        png = render_stats_chart(
            [GroupStats(name, summarize([("win", 1.0)]))], [(when, 1.0)], who=name
        )
        assert decode(png).size == SIZE


async def test_the_configured_min_sample_decides_when_a_hint_appears(
    make_hub: HubFactory,
) -> None:
    """``[stats] min_sample`` from the settings reaches the hints the API (and every
    alert, through the same OutcomeHints) shows: 3 here, not the default 10."""
    hub = await make_hub(stats={"min_sample": 3})
    users = [await hub.user(f"m{i}") for i in range(3)]
    for i in range(3):
        await hub.publish(signal_id=f"f{i}", catalyst_type="FDA", confidence=0.85)
        await hub.publish(signal_id=f"e{i}", catalyst_type="EARNINGS", confidence=0.85)
    for i, (user, _key) in enumerate(users):
        await hub.ctx.services.feedback.record(
            user.id, f"f{i}", "win" if i else "loss", "3" if i else "-3"
        )
        if i < 2:  # EARNINGS stays one report short
            await hub.ctx.services.feedback.record(user.id, f"e{i}", "win", "1")
    response = await hub.http.get("/api/v1/stats/hints", headers=auth(users[0][1]))
    assert [h["line"] for h in response.json()] == ["FDA, 80–90%: 2 W / 1 L reported, avg +1.00%"]
