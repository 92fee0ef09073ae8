"""``GET /api/v1/filters/preview``: what a filter would have matched, over HTTP."""

from __future__ import annotations

from tests.api.conftest import Hub, auth


async def test_preview_by_text_json_and_stored_filter(hub: Hub) -> None:
    alice, key = await hub.user("alice")
    for i in range(4):
        await hub.publish(signal_id=f"f{i}", ticker="ABCD", catalyst_type="FDA")
    for i in range(2):
        await hub.publish(signal_id=f"e{i}", ticker="WXYZ", catalyst_type="EARNINGS")
    await hub.ctx.services.feedback.record(alice.id, "f0", "win", "12.5")
    await hub.ctx.services.feedback.record(alice.id, "e0", "loss", "-3")

    response = await hub.http.get(
        "/api/v1/filters/preview", params={"filter": "catalyst_types=FDA"}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["days"] == 30 and body["signals_in_window"] == 6 and body["matched"] == 4
    assert {k: v for k, v in body["filters"].items() if v is not None} == {
        "catalyst_types": ["FDA"]
    }
    assert body["top_catalysts"] == [{"name": "FDA", "count": 4}]
    assert body["top_tickers"] == [{"name": "ABCD", "count": 4}]
    assert body["outcomes"]["wins"] == 1 and body["outcomes"]["losses"] == 0
    assert body["outcomes_reported"] == 1 and body["small_sample"] is True
    assert body["summary"].startswith("Last 30 days: 4 of 6 signals would have matched")

    response = await hub.http.get(
        "/api/v1/filters/preview",
        params={"filters": '{"tickers": ["WXYZ"]}', "days": 7},
        headers=auth(key),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["matched"], response.json()["days"]) == (2, 7)

    # No filter given: the caller's stored stream filter.
    await hub.http.post(
        "/api/v1/config", json={"filters": {"tickers": ["WXYZ"]}}, headers=auth(key)
    )
    response = await hub.http.get("/api/v1/filters/preview", headers=auth(key))
    assert response.json()["matched"] == 2 and response.json()["filter_text"] == "tickers=WXYZ"


async def test_preview_rejects_bad_input_by_name(hub: Hub) -> None:
    _user, key = await hub.user("bob")
    cases = {
        "filter=colour%3Dred": "colour",
        "filter=min_confidence%3D7": "min_confidence",
        "filters=%7Bnot%20json": "filters must be a JSON object",
        "filters=%5B1%5D": "filters must be a JSON object",
        "filters=" + "%5B" * 1900 + "%5D" * 1900: "filters must be a JSON object",
        "days=0": "days",
        "days=366": "days",
        "filter=x%3D1&filters=%7B%7D": "not both",
    }
    for query, needle in cases.items():
        response = await hub.http.get(f"/api/v1/filters/preview?{query}", headers=auth(key))
        assert response.status_code == 422, (query, response.text)
        assert needle in response.text, (query, response.text)
        assert "Traceback" not in response.text
    assert (await hub.http.get("/api/v1/filters/preview")).status_code == 401
