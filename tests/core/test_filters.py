from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.filters import FIELD_HELP, SignalFilter
from domain.signals import Signal
from tests.fakes import signal as make


def sig(**kw: object) -> Signal:
    return Signal.parse(make("s", **kw))


def test_empty_filter_matches_everything() -> None:
    assert SignalFilter().matches(sig())
    assert SignalFilter().explain(sig()) is None


@pytest.mark.parametrize(
    ("text", "kw", "reason"),
    [
        ("min_confidence=0.9", {"confidence": 0.8}, "confidence 0.80 is below min_confidence 0.9"),
        (
            "min_confidence=0.805",
            {"confidence": 0.8049},
            "confidence 0.80 is below min_confidence 0.805",
        ),
        ("tickers=TSLA,GME", {}, "ticker AAPL is not in tickers TSLA,GME"),
        ("exclude_tickers=GME,AAPL", {}, "ticker AAPL is in exclude_tickers"),
        ("catalyst_types=M&A,EARNINGS", {}, "catalyst FDA is not in catalyst_types M&A,EARNINGS"),
        ("signal_types=SELL,WATCH", {}, "signal type BUY is not in signal_types SELL,WATCH"),
        ("sectors=Energy,Utilities", {}, "sector Healthcare is not in sectors Energy,Utilities"),
        ("sectors=Energy", {"sector": None}, "sector unknown is not in sectors Energy"),
        ("min_rvol=3", {}, "rvol 2 is below min_rvol 3"),
        ("min_rvol=3", {"rvol": None}, "rvol unknown is below min_rvol 3"),
        ("max_price=5", {}, "price 10 is above max_price 5"),
        ("max_price=5", {"price": None}, "price unknown is above max_price 5"),
        ("min_price=20", {}, "price 10 is below min_price 20"),
        ("min_price=2.5", {"price": 1.25}, "price 1.25 is below min_price 2.5"),
        ("min_price=20", {"price": None}, "price unknown is below min_price 20"),
    ],
)
def test_each_field_rejects_and_explains(text: str, kw: dict[str, object], reason: str) -> None:
    flt = SignalFilter.from_text(text)
    s = sig(**kw)
    assert not flt.matches(s)
    assert flt.explain(s) == reason


def test_explain_names_the_first_failing_condition_in_field_order() -> None:
    flt = SignalFilter.from_text(
        "min_confidence=0.9 tickers=TSLA,GME exclude_tickers=GME catalyst_types=M&A "
        "signal_types=SELL sectors=Energy min_rvol=3 min_price=20 max_price=30"
    )
    fixes: list[tuple[dict[str, object], str]] = [
        ({"confidence": 0.95}, "confidence 0.80 is below min_confidence 0.9"),
        ({"ticker": "GME"}, "ticker AAPL is not in tickers TSLA,GME"),
        ({"ticker": "TSLA"}, "ticker GME is in exclude_tickers"),
        ({"catalyst_type": "M&A"}, "catalyst FDA is not in catalyst_types M&A"),
        ({"signal_type": "SELL"}, "signal type BUY is not in signal_types SELL"),
        ({"sector": "energy"}, "sector Healthcare is not in sectors Energy"),
        ({"rvol": 3.0}, "rvol 2 is below min_rvol 3"),
        ({"price": 31.0}, "price 10 is below min_price 20"),
        ({"price": 30.0}, "price 31 is above max_price 30"),
    ]
    kw: dict[str, object] = {}
    for fix, reason in fixes:
        assert flt.explain(sig(**kw)) == reason
        assert not flt.matches(sig(**kw))
        kw.update(fix)
    assert flt.explain(sig(**kw)) is None
    assert flt.matches(sig(**kw))


def test_matching_is_case_insensitive() -> None:
    flt = SignalFilter.from_mapping(
        {
            "tickers": ["aapl"],
            "catalyst_types": "fda",
            "signal_types": ["buy"],
            "sectors": ["HEALTHCARE"],
        }
    )
    assert flt.tickers == ("AAPL",)
    assert flt.matches(
        sig(ticker="Aapl", catalyst_type="Fda", signal_type="buy", sector="healthcare")
    )


def test_all_conditions_together() -> None:
    flt = SignalFilter.from_text(
        "min_confidence=0.7 tickers=AAPL,TSLA catalyst_types=FDA,M&A min_rvol=1.5 max_price=20"
    )
    assert flt.matches(sig(confidence=0.75, price=19.99, rvol=1.5))
    assert flt.explain(sig(confidence=0.75, price=25)) == "price 25 is above max_price 20"


def test_text_round_trip() -> None:
    text = "min_confidence=0.7 tickers=AAPL,TSLA catalyst_types=FDA,M&A max_price=20"
    flt = SignalFilter.from_text(text)
    assert flt.to_text() == text
    assert SignalFilter.from_text(flt.to_text()) == flt
    assert SignalFilter.from_mapping(flt.to_mapping()) == flt
    assert SignalFilter().to_text() == ""


def test_with_field_sets_and_clears() -> None:
    flt = SignalFilter().with_field("tickers", "aapl, tsla")
    assert flt.tickers == ("AAPL", "TSLA")
    flt = flt.with_field("max_price", "20")
    assert flt.max_price == 20
    assert flt.with_field("tickers", None).tickers == ()
    assert flt.with_field("max_price", "").max_price is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("colour", "red", "unknown filter field 'colour'"),
        ("min_confidence", "high", "min_confidence needs a number"),
        ("min_confidence", "1.5", "less than or equal to 1"),
        ("max_price", "-1", "greater than or equal to 0"),
        ("max_price", "nan", "finite"),
        ("tickers", "12AB", "is not a ticker"),
        ("signal_types", "HOLD", "use BUY, SELL or WATCH"),
    ],
)
def test_bad_values_get_clear_errors(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SignalFilter().with_field(field, value)
    assert message in str(err.value)


def test_bad_text_and_mapping() -> None:
    with pytest.raises(InvalidInput, match="not field=value"):
        SignalFilter.from_text("tickers")
    with pytest.raises(InvalidInput, match="min_price must not be above max_price"):
        SignalFilter.from_text("min_price=5 max_price=2")
    with pytest.raises(InvalidInput, match="filters must be a JSON object"):
        SignalFilter.from_mapping([1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="is not a known field"):
        SignalFilter.from_mapping({"colour": "red"})
    with pytest.raises(InvalidInput, match="at most 100"):
        SignalFilter.from_mapping({"tickers": [f"T{i}" for i in range(101)]})


def test_compiled_matcher_agrees_with_explain() -> None:
    filters = [
        SignalFilter.from_text(t)
        for t in ("", "tickers=AAPL", "min_confidence=0.9", "sectors=healthcare max_price=11")
    ]
    signals = [sig(), sig(confidence=0.95), sig(ticker="TSLA"), sig(price=12), sig(sector=None)]
    for f in filters:
        for s in signals:
            assert f.compile()(s) is (f.explain(s) is None)


def test_help_covers_every_field() -> None:
    assert set(FIELD_HELP) == set(SignalFilter.model_fields)


@pytest.mark.parametrize("name", ["Energy", "unknown", "None", "XXXX", "-"])
def test_a_signal_without_a_sector_matches_no_sectors_filter(name: str) -> None:
    flt = SignalFilter(sectors=(name,))
    assert not flt.matches(sig(sector=None))
    assert flt.explain(sig(sector=None)) == f"sector unknown is not in sectors {name}"
    assert flt.matches(sig(sector=name.lower()))


def test_only_the_first_equals_sign_separates_field_and_value() -> None:
    assert SignalFilter.from_text("sectors=a=b").sectors == ("a=b",)
