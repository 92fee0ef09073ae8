"""The validation rules behind the REST refusals, checked on the core directly (what
the job, the CLI, the chat bots and the WebSocket share)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.filters import SignalFilter
from domain.signals import METADATA_MAX_DEPTH, Signal, SignalType, normalize_catalyst


def parse(**fields: Any) -> Signal:
    return Signal.parse({"ticker": "ABCD", "confidence": 0.5, **fields})


def test_metadata_refusals_name_the_path() -> None:
    with pytest.raises(InvalidInput, match=r"metadata: numbers must be finite at metadata\.a\[1\]"):
        parse(metadata={"a": [1, float("nan")]})
    with pytest.raises(InvalidInput, match=r'key metadata\["b\\u0000"\] must not contain NUL'):
        parse(metadata={"b\x00": 1})
    with pytest.raises(InvalidInput, match="is not JSON") as err:
        parse(metadata={"when": datetime.now(UTC)})
    assert err.value.field == "metadata"
    with pytest.raises(InvalidInput, match="is not JSON"):
        parse(metadata={"amount": Decimal("1.5")})
    with pytest.raises(InvalidInput, match="metadata"):
        parse(metadata={1: "int key"})


def test_metadata_depth_bound_counts_the_object_itself() -> None:
    value: Any = 1
    for _ in range(METADATA_MAX_DEPTH - 1):
        value = [value]
    assert parse(metadata={"x": value}).metadata == {"x": value}
    with pytest.raises(InvalidInput, match=f"deeper than {METADATA_MAX_DEPTH} levels"):
        parse(metadata={"x": [value]})


def test_metadata_is_stored_as_plain_json() -> None:
    signal = parse(metadata={"t": (1, 2), "e": SignalType.BUY, "b": True, "n": None})
    assert signal.metadata == {"t": [1, 2], "e": "BUY", "b": True, "n": None}
    assert type(signal.metadata["e"]) is str


def test_a_signal_with_unservable_metadata_is_served_with_a_placeholder() -> None:
    deep: dict[str, Any] = {}
    for _ in range(300):
        deep = {"a": deep}
    stored = parse(signal_id="old").model_copy(update={"metadata": deep, "seq": 7})
    public = stored.to_public()
    assert public["signal_id"] == "old" and public["seq"] == 7
    assert "metadata_error" in public["metadata"]


def test_catalysts_and_signal_types_are_ascii_before_upper_casing() -> None:
    assert normalize_catalyst(" m&a  deal ") == "M&A DEAL"
    for bad in ("fuſion", "straße"):  # would upper-case to FUSION, STRASSE
        with pytest.raises(ValueError, match="ASCII"):
            normalize_catalyst(bad)
        with pytest.raises(InvalidInput, match="catalyst_type"):
            parse(catalyst_type=bad)
    with pytest.raises(InvalidInput, match="signal_types"):
        SignalFilter.from_mapping({"signal_types": ["ſell"]})
    assert SignalFilter.from_mapping({"signal_types": ["sell"]}).signal_types == ("SELL",)


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_filter_texts_refuse_what_cannot_be_stored(bad: str) -> None:
    for field in ("tickers", "exclude_tickers", "catalyst_types", "signal_types", "sectors"):
        with pytest.raises(InvalidInput, match=field):
            SignalFilter.from_mapping({field: [f"X{bad}"]})
        with pytest.raises(InvalidInput, match=field):
            SignalFilter().with_field(field, f"X{bad}")
