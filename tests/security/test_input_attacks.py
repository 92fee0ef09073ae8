"""Regression tests for issue 9's input attacks, one test per attack, on SQLite and
PostgreSQL: every refusal is a 422 naming the field, never a 5xx or a traceback,
and nothing a client sends can stop the log from being served back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.errors import InvalidInput, NotFound
from domain.filters import SignalFilter
from domain.signals import METADATA_MAX_DEPTH, Signal, SignalType
from storage.repositories import signals as signals_repo
from tests.api.conftest import Hub, auth
from tests.security.input_support import backends, hub_on, post_json, replay

PATH = "/api/v1/signals"


@pytest.fixture(params=backends())
async def shub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    async with hub_on(request.param, tmp_path) as hub:
        yield hub


@pytest.fixture(autouse=True)
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No input may leave an error (a traceback) in the log."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def nested(depth: int) -> dict[str, Any]:
    """A metadata object ``depth`` levels deep (the object itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def producer(hub: Hub) -> str:
    _user, key = await hub.user("producer", ("read", "feedback", "publish"))
    return key


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, (field, response.status_code, response.text)
    detail = response.json()["detail"]
    assert field in detail, (field, detail)
    assert "Traceback" not in detail


async def assert_log_serves(hub: Hub, key: str, expected_ids: list[str]) -> None:
    """REST list, REST by id and a WebSocket replay all answer and agree."""
    listed = await hub.http.get(PATH, params={"after_seq": 0}, headers=auth(key))
    assert listed.status_code == 200, listed.text
    assert [s["signal_id"] for s in listed.json()] == expected_ids
    for body in listed.json():
        one = await hub.http.get(f"{PATH}/{body['signal_id']}", headers=auth(key))
        assert one.status_code == 200, one.text
        assert one.json() == body
    replayed = await replay(hub, key, 0)
    assert replayed == listed.json()


# ---- a signal that poisons the log ----------------------------------------------


async def test_deep_metadata_is_refused_and_the_log_still_serves(shub: Hub) -> None:
    key = await producer(shub)
    ok = await post_json(
        shub, PATH, {"signal_id": "before", "ticker": "ABCD", "confidence": 0.5}, key
    )
    assert ok.status_code == 201
    poison = nested(300)  # about 700 bytes: under the 4 KB size limit
    response = await post_json(
        shub,
        PATH,
        {"signal_id": "deep", "ticker": "ABCD", "confidence": 0.5, "metadata": poison},
        key,
    )
    assert_refused(response, "metadata")
    assert f"{METADATA_MAX_DEPTH} levels" in response.json()["detail"]
    just_allowed = nested(METADATA_MAX_DEPTH)
    response = await post_json(
        shub,
        PATH,
        {"signal_id": "deep-ok", "ticker": "ABCD", "confidence": 0.5, "metadata": just_allowed},
        key,
    )
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == just_allowed
    too_deep: list[Any] = [[{"a": [1]}]]
    for _ in range(METADATA_MAX_DEPTH):
        too_deep = [too_deep]
    response = await post_json(
        shub, PATH, {"ticker": "ABCD", "confidence": 0.5, "metadata": {"list": too_deep}}, key
    )
    assert_refused(response, "metadata")
    await assert_log_serves(shub, key, ["before", "deep-ok"])


async def test_a_poisoned_row_stored_before_the_fix_is_served_not_500(shub: Hub) -> None:
    """A row written before validation bounded the depth (straight into the table)
    must not break REST or a replay for everyone after it."""
    key = await producer(shub)
    await shub.publish(signal_id="first")
    poisoned = Signal.model_construct(
        signal_id="old-deep",
        ticker="ABCD",
        signal_type=SignalType.WATCH,
        confidence=0.5,
        catalyst_type="NEWS",
        source="old",
        price=None,
        rvol=None,
        sector=None,
        headline=None,
        url=None,
        timestamp=Signal.parse({"ticker": "A", "confidence": 0}).timestamp,
        metadata=nested(300),
        seq=None,
    )
    async with shub.ctx.db.transaction() as session:
        await signals_repo.insert_signal(poisoned, session=session)
    await shub.publish(signal_id="last")
    await assert_log_serves(shub, key, ["first", "old-deep", "last"])
    served = (await shub.http.get(f"{PATH}/old-deep", headers=auth(key))).json()
    assert "metadata_error" in served["metadata"]


# ---- NUL and lone surrogates (PostgreSQL cannot store them) ------------------------


TEXT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("signal_id", {"signal_id": "a{bad}b"}),
    ("ticker", {"ticker": "AB{bad}CD"}),
    ("catalyst_type", {"catalyst_type": "FDA{bad}"}),
    ("source", {"source": "wire{bad}"}),
    ("sector", {"sector": "Health{bad}care"}),
    ("headline", {"headline": "FDA approves{bad} drug"}),
    ("url", {"url": "https://example.com/{bad}x"}),
    ("metadata", {"metadata": {"k": "v{bad}"}}),
    ("metadata", {"metadata": {"k{bad}": "v"}}),
    ("metadata", {"metadata": {"list": [{"deeper": ["x{bad}"]}]}}),
]


def _fill(value: Any, bad: str) -> Any:
    if isinstance(value, str):
        return value.replace("{bad}", bad)
    if isinstance(value, dict):
        return {_fill(k, bad): _fill(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, bad) for v in value]
    return value


@pytest.mark.parametrize("bad", ["\x00", "\ud800", "\udfff"], ids=["nul", "high", "low"])
async def test_nul_and_lone_surrogates_in_signal_text_are_422(shub: Hub, bad: str) -> None:
    key = await producer(shub)
    for field, change in TEXT_CASES:
        body = {"ticker": "ABCD", "confidence": 0.5, **_fill(change, bad)}
        assert_refused(await post_json(shub, PATH, body, key), field)
    await shub.publish(signal_id="fine")
    await assert_log_serves(shub, key, ["fine"])


async def test_nul_in_feedback_signal_id_is_422(shub: Hub) -> None:
    key = await producer(shub)
    await shub.publish(signal_id="sig-1")
    for bad in ("sig-1\x00", "\x00", "sig\ud800"):
        response = await post_json(
            shub, "/api/v1/feedback", {"signal_id": bad, "outcome": "win"}, key
        )
        assert_refused(response, "signal_id")
    ok = await post_json(shub, "/api/v1/feedback", {"signal_id": "sig-1", "outcome": "win"}, key)
    assert ok.status_code == 200


async def test_nul_in_link_code_is_422(shub: Hub) -> None:
    key = await producer(shub)
    for bad in ("K7PQ\x002M9", "\x00", "K7PQ\udc802M9", "K7PQ2M9ß"):
        assert_refused(await post_json(shub, "/api/v1/link", {"code": bad}, key), "code")
    unknown = await post_json(shub, "/api/v1/link", {"code": "ZZZZZZZZ"}, key)
    assert unknown.status_code == 404


async def test_nul_in_filter_texts_is_422(shub: Hub) -> None:
    key = await producer(shub)
    for field, value in (
        ("sectors", ["Health\x00care"]),
        ("sectors", "Tech,Bio\ud800"),
        ("tickers", ["AB\x00"]),
        ("catalyst_types", ["FDA\x00"]),
        ("signal_types", ["BUY\x00"]),
    ):
        response = await post_json(shub, "/api/v1/config", {"filters": {field: value}}, key)
        assert_refused(response, field)
    with pytest.raises(InvalidInput, match="sectors"):
        SignalFilter.from_text("sectors=Health\x00care")
    config = await shub.http.get("/api/v1/config", headers=auth(key))
    assert config.status_code == 200
    assert not any(config.json()["filters"].values())


async def test_nul_in_a_user_name_is_not_a_database_error(shub: Hub) -> None:
    accounts = shub.ctx.services.accounts
    for bad in ("ali\x00ce", "ali\udcffce"):
        with pytest.raises(InvalidInput, match="name"):
            await accounts.create_user(bad)
        with pytest.raises(NotFound):
            await accounts.find_user(bad)


# ---- NaN and Infinity ------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
async def test_nan_and_infinity_are_422_in_every_number(shub: Hub, bad: float) -> None:
    key = await producer(shub)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("confidence", {"confidence": bad}),
        ("price", {"price": bad}),
        ("rvol", {"rvol": bad}),
        ("metadata", {"metadata": {"score": bad}}),
        ("metadata", {"metadata": {"scores": [1.0, {"x": bad}]}}),
    ]
    for field, change in cases:
        body = {"ticker": "ABCD", "confidence": 0.5, **change}
        assert_refused(await post_json(shub, PATH, body, key), field)
    for field in ("min_confidence", "min_rvol", "min_price", "max_price"):
        response = await post_json(shub, "/api/v1/config", {"filters": {field: bad}}, key)
        assert_refused(response, field)
    response = await post_json(
        shub, "/api/v1/feedback", {"signal_id": "x", "outcome": "win", "return_pct": bad}, key
    )
    assert_refused(response, "return_pct")
    await assert_log_serves(shub, key, [])


# ---- tickers are ASCII --------------------------------------------------------------


async def test_tickers_are_ascii_before_upper_casing(shub: Hub) -> None:
    key = await producer(shub)
    # Each of these upper-cases (Unicode rules) into an ASCII ticker.
    for bad in ("aß", "ﬁ", "ı", "ſ", "ab\u0131c"):
        assert bad.upper().isascii()
        body = {"ticker": bad, "confidence": 0.5}
        assert_refused(await post_json(shub, PATH, body, key), "ticker")
        listed = await shub.http.get(PATH, params={"ticker": bad}, headers=auth(key))
        assert listed.status_code == 400 and "ticker" in listed.json()["detail"]
        response = await post_json(shub, "/api/v1/config", {"filters": {"tickers": [bad]}}, key)
        assert_refused(response, "tickers")
    ok = await post_json(shub, PATH, {"ticker": " $brk.b ", "confidence": 0.5}, key)
    assert ok.status_code == 201 and ok.json()["ticker"] == "BRK.B"


# ---- ids match to the end of the string -----------------------------------------------


async def test_a_trailing_newline_does_not_make_a_new_signal_id(shub: Hub) -> None:
    key = await producer(shub)
    first = await post_json(
        shub, PATH, {"signal_id": "abc", "ticker": "ABCD", "confidence": 0.5}, key
    )
    assert first.status_code == 201
    again = await post_json(
        shub, PATH, {"signal_id": "abc\n", "ticker": "ABCD", "confidence": 0.5}, key
    )
    assert_refused(again, "signal_id")
    with pytest.raises(InvalidInput, match="signal_id"):
        Signal.parse({"signal_id": "abc\n", "ticker": "ABCD", "confidence": 0.5})
    got = await shub.http.get(f"{PATH}/abc%0A", headers=auth(key))
    assert got.status_code == 404
    await assert_log_serves(shub, key, ["abc"])
