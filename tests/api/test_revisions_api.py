"""Correcting and retracting a signal over ``POST /api/v1/signals``."""

from __future__ import annotations

from tests.api.conftest import Hub, auth


async def test_a_producer_corrects_then_retracts_a_signal(hub: Hub) -> None:
    _producer, key = await hub.user("producer", ("read", "publish"))
    body = {"signal_id": "r-1", "ticker": "ABCD", "confidence": 0.8, "headline": "Phase 3 met"}
    created = await hub.http.post("/api/v1/signals", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["revision"]) == ("active", 0)

    fixed = await hub.http.post(
        "/api/v1/signals",
        json={"signal_id": "r-1", "headline": "Phase 3 missed"},
        headers=auth(key),
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["headline"] == "Phase 3 missed" and fixed.json()["revision"] == 1
    assert fixed.json()["ticker"] == "ABCD" and fixed.json()["confidence"] == 0.8

    gone = await hub.http.post(
        "/api/v1/signals", json={"signal_id": "r-1", "status": "retracted"}, headers=auth(key)
    )
    assert gone.status_code == 200, gone.text
    assert (gone.json()["status"], gone.json()["revision"]) == ("retracted", 2)
    read = await hub.http.get("/api/v1/signals/r-1", headers=auth(key))
    assert read.status_code == 200 and read.json()["status"] == "retracted"


async def test_bad_revisions_are_clear_errors(hub: Hub) -> None:
    _producer, key = await hub.user("producer", ("read", "publish"))
    cases = [
        ({"signal_id": "missing", "status": "retracted"}, 404, "no signal 'missing' to retract"),
        ({"signal_id": "missing", "headline": "x"}, 422, "ticker"),
        ({"signal_id": "r-2", "ticker": "ABCD", "confidence": 0.5, "status": "gone"}, 422, "status"),
    ]
    for body, code, needle in cases:
        response = await hub.http.post("/api/v1/signals", json=body, headers=auth(key))
        assert response.status_code == code, (body, response.text)
        assert needle in response.text and "Traceback" not in response.text
