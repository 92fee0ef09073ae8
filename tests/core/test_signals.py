from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.signals import METADATA_MAX_BYTES, Signal


def test_valid_signal_is_normalised() -> None:
    s = Signal.parse(
        {
            "ticker": " $brk.b ",
            "signal_type": "buy",
            "confidence": 0.5,
            "catalyst_type": "m&a",
            "timestamp": "2026-01-02T10:00:00+02:00",
        }
    )
    assert s.ticker == "BRK.B"
    assert s.signal_type == "BUY"
    assert s.catalyst_type == "M&A"
    assert s.timestamp.isoformat() == "2026-01-02T08:00:00+00:00"
    assert s.to_public()["timestamp"] == "2026-01-02T08:00:00Z"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ticker": "1ABC", "confidence": 0.5}, "ticker: '1ABC' is not a ticker"),
        (
            {"ticker": "AAPL", "confidence": 1.5},
            "confidence: Input should be less than or equal to 1",
        ),
        ({"ticker": "AAPL", "confidence": -0.1}, "confidence"),
        ({"ticker": "AAPL", "confidence": 0.5, "price": -1}, "price"),
        ({"ticker": "AAPL", "confidence": 0.5, "rvol": -2}, "rvol"),
        (
            {"ticker": "AAPL", "confidence": 0.5, "timestamp": "2026-01-01T00:00:00"},
            "must include a timezone",
        ),
        ({"ticker": "AAPL", "confidence": 0.5, "signal_type": "HOLD"}, "BUY, SELL, WATCH"),
        ({"ticker": "AAPL", "confidence": 0.5, "signal_id": "bad id!"}, "signal_id"),
        ({"ticker": "AAPL", "confidence": 0.5, "url": "ftp://x"}, "url: must start with http"),
        ({"ticker": "AAPL", "confidence": 0.5, "colour": "red"}, "colour: is not a known field"),
        ({"confidence": 0.5}, "ticker: Field required"),
        (
            {"ticker": "AAPL", "confidence": 0.5, "metadata": {"x": "y" * METADATA_MAX_BYTES}},
            f"at most {METADATA_MAX_BYTES} bytes",
        ),
    ],
)
def test_rejections_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Signal.parse(data)
    assert message in str(err.value)


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        Signal.parse(["AAPL"])  # type: ignore[arg-type]


def test_seq_from_producer_is_ignored() -> None:
    assert Signal.parse({"ticker": "AAPL", "confidence": 0.5, "seq": 99}).seq is None


def test_out_of_range_timestamp_is_a_validation_error() -> None:
    with pytest.raises(InvalidInput, match="timestamp: is out of range"):
        Signal.parse(
            {"ticker": "AAPL", "confidence": 0.5, "timestamp": "9999-12-31T23:59:59-23:59"}
        )
