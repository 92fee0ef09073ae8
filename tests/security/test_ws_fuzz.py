"""A hypothesis fuzzer for the WebSocket protocol, against a real server.

Random frames (deep nesting, huge numbers, NaN, NUL and lone surrogates, wrong
types in every field, binary frames, oversized frames, random text) go to ``/ws``,
before and after authentication. Whatever is sent: the server never closes with
1011, never logs an ERROR or a traceback, and either answers (an error frame for
what it refuses) or closes with a documented code (4xxx, 1008, 1009).

The hub runs in its own thread and event loop; hypothesis drives a synchronous
client. About 15 s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from core.context import HubContext
from tests.conftest import settings_for
from tests.threaded_hub import ThreadedHub

MAX_MESSAGE_BYTES = 4096
#: Close codes the protocol documents (examples/README.md) for what a client sends.
DOCUMENTED_CLOSES = {1008, 1009, 4000, 4001, 4029}
SERVER_TYPES = {
    "welcome",
    "signal",
    "heartbeat",
    "subscribed",
    "resumed",
    "feedback_recorded",
    "error",
}
PROBE = json.dumps({"type": "probe"})


async def _prepare(ctx: HubContext) -> str:
    user = await ctx.services.accounts.create_user("fuzzer")
    key, _ = await ctx.auth.create_key(user.id, ("read", "feedback"))
    for i in range(3):
        await ctx.publisher.publish(
            {"signal_id": f"s{i}", "ticker": "ABCD", "confidence": 0.5 + i / 10}
        )
    return key


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    hub_settings = settings_for(
        tmp_path_factory.mktemp("ws-fuzz"),
        # The fuzzer fails authentication on purpose, and sends fast.
        api={"max_message_bytes": MAX_MESSAGE_BYTES, "auth_failures_per_minute": 1_000_000},
        limits={"max_messages_per_client_per_sec": 10_000, "ws_inbox_size": 64},
    )
    with ThreadedHub(hub_settings, _prepare, "ws-fuzz-hub") as hub:
        yield hub


# ---- frames ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["type", "filters", "signal_id", "outcome", "return_pct", "after_seq", "token", "tickers"]
)
message_types = st.sampled_from(["subscribe", "feedback", "resume", "pong", "auth"]) | st.text(
    max_size=40
)
filter_fields = st.sampled_from(
    [
        "min_confidence",
        "tickers",
        "exclude_tickers",
        "catalyst_types",
        "signal_types",
        "sectors",
        "min_rvol",
        "min_price",
        "max_price",
        "nope",
    ]
)
hostile_strings = st.sampled_from(
    ["\\u0000", "\\ud800", "\\udfff", "\\ud83d", "a\\u0000b", "\\ud800\\u0041", "\\\\u0000"]
)


@st.composite
def structured(draw: st.DrawFn) -> str:
    """A protocol-shaped message with wrong types and odd values in its fields."""
    kind = draw(message_types)
    body: dict[str, Any] = {"type": kind}
    if kind == "subscribe" or draw(st.booleans()):
        body["filters"] = draw(
            st.dictionaries(filter_fields, json_values, max_size=4) | json_values
        )
    if kind == "feedback" or draw(st.booleans()):
        body["signal_id"] = draw(st.sampled_from(["s0", "s1", "missing"]) | json_values)
        body["outcome"] = draw(
            st.sampled_from(["win", "loss", "skipped"])
            | st.fixed_dictionaries({"outcome": json_values, "return_pct": json_values})
            | json_values
        )
        body["return_pct"] = draw(json_values)
    if kind == "resume" or draw(st.booleans()):
        body["after_seq"] = draw(json_values)
    extra = draw(st.dictionaries(field_names, json_values, max_size=2))
    return json.dumps({**extra, **body})


@st.composite
def with_raw_value(draw: st.DrawFn) -> str:
    """A message whose field holds a raw JSON literal json.dumps would never write."""
    raw = draw(
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999"])
        | (st.sampled_from([31, 309, 400, 4300, 5000]) | st.integers(20, 5000)).map(
            lambda n: "9" * n
        )
        | st.integers(min_value=20, max_value=300).map(lambda n: "0." + "1" * n)
        | hostile_strings.map(lambda s: f'"{s}"')
        | hostile_strings.map(lambda s: f'{{"{s}":1}}')
    )
    template = draw(
        st.sampled_from(
            [
                '{"type":"feedback","signal_id":"s1","outcome":"win","return_pct":%s}',
                '{"type":"feedback","signal_id":%s,"outcome":"win"}',
                '{"type":"feedback","signal_id":"s1","outcome":{"outcome":"loss","return_pct":%s}}',
                '{"type":"subscribe","filters":{"min_price":%s}}',
                '{"type":"subscribe","filters":{"tickers":[%s]}}',
                '{"type":"resume","after_seq":%s}',
                '{"type":%s}',
                '{"type":"pong","x":%s}',
                '{"type":"auth","token":%s}',
                "[%s]",
                "%s",
            ]
        )
    )
    return template.replace("%s", raw)


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([33, 1000, 2000, 20_000]) | st.integers(20, 3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    inner = opener * depth + "1" + closer * depth
    where = draw(
        st.sampled_from(
            [
                "%s",
                '{"type":"subscribe","filters":%s}',
                '{"type":"feedback","signal_id":"s1","outcome":%s}',
                '{"type":"auth","token":%s}',
                '{"type":"pong","x":%s}',
            ]
        )
    )
    truncated = draw(st.booleans())
    text = where.replace("%s", inner)
    return text[: len(text) // 2] if truncated else text


frames = st.one_of(
    structured(),
    with_raw_value(),
    nested(),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(min_value=MAX_MESSAGE_BYTES, max_value=MAX_MESSAGE_BYTES * 3).map(
        lambda n: '{"type":"subscribe","filters":{"sectors":["' + "x" * n + '"]}}'
    ),
)


# ---- the property -------------------------------------------------------------------


def answers_until_probe(ws: ClientConnection) -> int | None:
    """Read until the probe's error (None) or the server closes (its close code)."""
    try:
        while True:
            message = json.loads(ws.recv(timeout=10))
            assert isinstance(message, dict) and message.get("type") in SERVER_TYPES, message
            if message["type"] == "error":
                assert isinstance(message.get("message"), str) and message["message"]
                if "'probe'" in message["message"]:
                    return None
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code


def server_errors(caplog: pytest.LogCaptureFixture, since: int) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records[since:]
        if r.levelno >= logging.ERROR or r.exc_info
    ]


@pytest.mark.timeout(120)
def test_no_frame_makes_a_1011_or_a_traceback(
    fuzz_hub: ThreadedHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = f"ws://127.0.0.1:{fuzz_hub.port}/ws"

    @given(batch=st.lists(frames, min_size=1, max_size=4), authenticated=st.booleans())
    # The probe's findings, always tried first.
    @example(batch=['{"type":"auth","token":' + "[" * 2000 + "]" * 2000 + "}"], authenticated=False)
    @example(batch=["[" * 2000 + "]" * 2000], authenticated=True)
    @example(
        batch=[
            '{"type":"feedback","signal_id":"s1","outcome":"win","return_pct":' + "9" * 400 + "}"
        ],
        authenticated=True,
    )
    @example(
        batch=['{"type":"feedback","signal_id":"s\\u0000","outcome":"win"}'], authenticated=True
    )
    @example(batch=['{"type":"subscribe","filters":{"sectors":["\\ud800"]}}'], authenticated=True)
    @example(batch=['{"type":"auth","token":"catalyst_\\ud800"}'], authenticated=False)
    @example(batch=[b"\x00\xff", '{"type":"pong","pad":"' + "x" * 3000 + '"}'], authenticated=True)
    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(batch: list[str | bytes], authenticated: bool) -> None:
        since = len(caplog.records)
        query = f"?token={fuzz_hub.key}" if authenticated else ""
        with connect(url + query, open_timeout=10, close_timeout=2, max_size=None) as ws:
            if authenticated:
                assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
            code: int | None = None
            try:
                for frame in batch:
                    ws.send(frame)
                ws.send(PROBE)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
            if code is None:
                code = answers_until_probe(ws)
            if not authenticated:
                # Unauthenticated, the first frame decides: an auth error and 4001
                # (or 1009 for a frame beyond the protocol's size limit).
                assert code in (4001, 1009), code
            elif code is not None:
                assert code in DOCUMENTED_CLOSES, code
        assert not server_errors(caplog, since)

    exercise()
    assert not server_errors(caplog, 0)
