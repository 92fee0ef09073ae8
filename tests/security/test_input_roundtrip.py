"""What is accepted can be served back: hypothesis generates accepted signals
(unicode text, extreme-but-finite floats, big integers, metadata as deep as
allowed, far timestamps with odd offsets), publishes them through REST and reads
each back through REST (by id and the list) and a WebSocket replay, on SQLite and
PostgreSQL. Every read must equal what was published, and what was published
must equal what the producer sent (after the documented normalisations)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.signals import (
    CATALYST_RE,
    HEADLINE_MAX,
    METADATA_MAX_BYTES,
    METADATA_MAX_DEPTH,
    TICKER_RE,
)
from tests.api.conftest import Hub, auth
from tests.security.input_support import backends, hub_on, post_json, replay

PATH = "/api/v1/signals"

#: Every code point PostgreSQL and UTF-8 can store: all but NUL and lone surrogates.
TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


def text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(TEXT, min_size=min_size, max_size=max_size)


FINITE = st.floats(allow_nan=False, allow_infinity=False)
EXTREME = st.sampled_from([1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 1e-300, 0.1])
NON_NEGATIVE = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False) | EXTREME

LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**200), max_value=2**200),
    FINITE,
    EXTREME,
    st.sampled_from([-0.0, -1.7976931348623157e308]),
    text(max_size=20),
)


def json_values(depth: int) -> st.SearchStrategy[Any]:
    """JSON values whose containers nest at most ``depth`` levels (0: a leaf)."""
    if depth <= 0:
        return LEAVES
    inner = st.deferred(lambda: json_values(depth - 1))
    return st.one_of(
        LEAVES,
        st.lists(inner, max_size=3),
        st.dictionaries(text(max_size=12), inner, max_size=3),
    )


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    """Metadata exactly as deep as allowed: a chain of objects and arrays."""
    value: Any = draw(LEAVES)
    for _ in range(METADATA_MAX_DEPTH - 1):
        value = [value] if draw(st.booleans()) else {draw(text(max_size=6)): value}
    return {draw(text(max_size=6)): value}


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


METADATA = st.one_of(
    st.dictionaries(text(max_size=12), json_values(3), max_size=6),
    chains(),
).filter(lambda m: _size(m) <= METADATA_MAX_BYTES)


def timestamps() -> st.SearchStrategy[datetime]:
    offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
        lambda m: timezone(timedelta(minutes=m))
    )
    edges = st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)])
    return edges | st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
    )


_ids = itertools.count()


@st.composite
def signals(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signal_id": f"rt{next(_ids)}-"
        + draw(st.from_regex(r"[A-Za-z0-9._:\-]{0,40}", fullmatch=True)),
        "ticker": draw(st.from_regex(TICKER_RE, fullmatch=True)),
        "confidence": draw(
            st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([0.0, 1.0, 5e-324])
        ),
        "signal_type": draw(st.sampled_from(["BUY", "SELL", "WATCH", "buy", " Watch "])),
        "catalyst_type": draw(st.from_regex(CATALYST_RE, fullmatch=True)),
        "source": draw(text(min_size=1, max_size=64)),
        "timestamp": draw(timestamps()).isoformat(),
        "metadata": draw(METADATA),
    }
    if draw(st.booleans()):
        body["ticker"] = body["ticker"].lower()
    optional = {
        "price": NON_NEGATIVE,
        "rvol": NON_NEGATIVE,
        "sector": text(max_size=64),
        "headline": text(max_size=HEADLINE_MAX),
        "url": text(max_size=200).map(lambda t: "https://" + t),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


def expected(body: dict[str, Any]) -> dict[str, Any]:
    """What the hub must store for ``body``: the documented normalisations only."""
    sector = " ".join(body["sector"].split()) or None if "sector" in body else None
    return {
        "signal_id": body["signal_id"],
        "ticker": body["ticker"].strip().upper(),
        "signal_type": body["signal_type"].strip().upper(),
        "confidence": body["confidence"],
        "catalyst_type": " ".join(body["catalyst_type"].upper().split()),
        "source": body["source"],
        "price": body.get("price"),
        "rvol": body.get("rvol"),
        "sector": sector,
        "headline": body.get("headline"),
        "url": body.get("url"),
        "metadata": body["metadata"],
    }


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(params=backends())
async def shub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    async with hub_on(request.param, tmp_path) as hub:
        yield hub


@pytest.fixture
async def key(shub: Hub) -> str:
    _user, token = await shub.user("producer", ("read", "publish"))
    return token


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(signals(), min_size=1, max_size=3))
async def test_every_accepted_signal_round_trips(
    shub: Hub, key: str, batch: list[dict[str, Any]]
) -> None:
    published: list[dict[str, Any]] = []
    for body in batch:
        response = await post_json(shub, PATH, body, key)
        assert response.status_code == 201, (body, response.text)
        stored = response.json()
        want = expected(body)
        assert {k: stored[k] for k in want} == want
        assert _instant(stored["timestamp"]) == datetime.fromisoformat(body["timestamp"])
        published.append(stored)
    first = published[0]["seq"]
    for stored in published:
        one = await shub.http.get(f"{PATH}/{stored['signal_id']}", headers=auth(key))
        assert one.status_code == 200, one.text
        assert one.json() == stored
    listed = await shub.http.get(
        PATH, params={"after_seq": first - 1, "limit": 100}, headers=auth(key)
    )
    assert listed.status_code == 200, listed.text
    assert listed.json() == published
    assert await replay(shub, key, first - 1) == published
