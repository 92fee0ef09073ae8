"""The filter as users write it: the compact ``field=value`` text, one field at a
time from a chat command, JSON objects; the values each field accepts, the exact
words of every refusal (a user reads them), and the canonical text it renders."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.sources import demo, jsonl
from domain.errors import InvalidInput
from domain.filters import FIELD_HELP, KNOWN_CATALYSTS, MAX_LIST_ITEMS, SignalFilter

FIELDS = ", ".join(FIELD_HELP)


def refusal(call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        call()
    return err.value


# ---- the field catalogue ---------------------------------------------------


def test_fields_are_listed_in_text_order() -> None:
    lists = ("tickers", "exclude_tickers", "catalyst_types", "signal_types", "sectors")
    numbers = ("min_confidence", "min_rvol", "min_price", "max_price")
    assert lists == SignalFilter.LIST_FIELDS
    assert numbers == SignalFilter.NUMBER_FIELDS
    assert list(FIELD_HELP) == [numbers[0], *lists, *numbers[1:]]


@pytest.mark.parametrize("name", list(FIELD_HELP))
def test_each_help_text_ends_with_a_canonical_example(name: str) -> None:
    """The example a help text shows is valid and is exactly how the hub writes it."""
    match = re.fullmatch(r"[a-z][^()]*[^ ] \(e\.g\. ([^)]+)\)", FIELD_HELP[name])
    assert match is not None, FIELD_HELP[name]
    example = match.group(1)
    assert SignalFilter().with_field(name, example).to_text() == f"{name}={example}"


def test_every_catalyst_a_source_produces_is_known() -> None:
    """Discord offers KNOWN_CATALYSTS as choices: none a source emits may be missing."""
    produced = {c for _, c in jsonl._KEYWORD_CATALYSTS} | {"NEWS"} | set(demo.HEADLINES)
    assert produced <= set(KNOWN_CATALYSTS)
    assert len(set(KNOWN_CATALYSTS)) == len(KNOWN_CATALYSTS) == 12
    assert {"GUIDANCE", "ANALYST"} <= set(KNOWN_CATALYSTS)
    for name in KNOWN_CATALYSTS:  # each is already in its normal form
        assert SignalFilter(catalyst_types=(name,)).catalyst_types == (name,)


# ---- list fields -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("aapl", ("AAPL",)),
        (" aapl , tsla ", ("AAPL", "TSLA")),
        ("aapl;tsla,,gme", ("AAPL", "TSLA", "GME")),
        (["aapl", "aapl", " aapl "], ("AAPL",)),
        (("tsla", "aapl"), ("TSLA", "AAPL")),
        (frozenset({"gme"}), ("GME",)),
        ({"amc"}, ("AMC",)),
    ],
)
def test_list_fields_take_lists_or_separated_text(value: Any, expected: tuple[str, ...]) -> None:
    assert SignalFilter.model_validate({"tickers": value}).tickers == expected


def test_tickers_are_deduplicated_after_trimming_not_after_upper_casing() -> None:
    # Trimmed items are compared as written; "aapl" and "AAPL" both normalise to AAPL.
    assert SignalFilter.from_mapping({"exclude_tickers": "aapl,AAPL"}).exclude_tickers == (
        "AAPL",
        "AAPL",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, "tickers: must be a list or a comma-separated string"),
        ({"a": 1}, "tickers: must be a list or a comma-separated string"),
        ([5], "tickers: items must be strings"),
        (["A\x00B"], "tickers: 'A\\x00B' must not contain NUL (\\u0000) characters"),
        ([f"T{i}" for i in range(MAX_LIST_ITEMS + 1)], "tickers: has 101 items; at most 100"),
        ("12AB", "tickers: '12AB' is not a ticker"),
    ],
)
def test_bad_list_values_are_refused_with_the_rule(value: Any, message: str) -> None:
    err = refusal(lambda: SignalFilter.from_mapping({"tickers": value}))
    assert str(err).startswith(message), str(err)
    assert err.field is None


def test_a_list_may_have_exactly_the_maximum_of_items() -> None:
    tickers = [f"T{i}" for i in range(MAX_LIST_ITEMS)]
    assert MAX_LIST_ITEMS == 100
    assert SignalFilter.from_mapping({"tickers": tickers + tickers[:5]}).tickers == tuple(tickers)


def test_a_long_item_is_quoted_shortened_in_the_refusal() -> None:
    err = refusal(lambda: SignalFilter.from_mapping({"sectors": ["x" * 100 + "\x00"]}))
    assert str(err) == f"sectors: {'x' * 64!r} must not contain NUL (\\u0000) characters"


def test_signal_types_are_upper_cased_ascii_only() -> None:
    assert SignalFilter.from_mapping({"signal_types": "buy, Watch"}).signal_types == (
        "BUY",
        "WATCH",
    )
    # "ſell".upper() is "SELL" in Unicode; only ASCII is upper-cased, so it is refused.
    err = refusal(lambda: SignalFilter.from_mapping({"signal_types": ["ſell"]}))
    assert str(err) == "signal_types: 'ſell' is not a signal type; use BUY, SELL or WATCH"
    err = refusal(lambda: SignalFilter.from_mapping({"signal_types": "hold"}))
    assert str(err) == "signal_types: 'hold' is not a signal type; use BUY, SELL or WATCH"


def test_sectors_keep_their_case_collapse_spaces_and_have_at_most_64_characters() -> None:
    flt = SignalFilter.from_mapping({"sectors": ["Health   care", "x" * 64]})
    assert flt.sectors == ("Health care", "x" * 64)
    err = refusal(lambda: SignalFilter.from_mapping({"sectors": ["x" * 65]}))
    assert str(err) == "sectors: a sector name has at most 64 characters"


def test_catalysts_are_normalised() -> None:
    flt = SignalFilter.from_mapping({"catalyst_types": ["m&a", " clinical   trial "]})
    assert flt.catalyst_types == ("M&A", "CLINICAL TRIAL")


# ---- numbers and the price range -------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_confidence": 1.01}, "min_confidence: Input should be less than or equal to 1"),
        ({"min_confidence": -0.01}, "min_confidence: Input should be greater than or equal to 0"),
        ({"min_rvol": -1}, "min_rvol: Input should be greater than or equal to 0"),
        ({"min_price": -1}, "min_price: Input should be greater than or equal to 0"),
        ({"max_price": float("inf")}, "max_price: Input should be a finite number"),
        ({"min_price": 5, "max_price": 2}, "value: min_price must not be above max_price"),
    ],
)
def test_bad_numbers_are_refused(data: dict[str, Any], message: str) -> None:
    assert str(refusal(lambda: SignalFilter.from_mapping(data))) == message


def test_number_edges_are_accepted() -> None:
    flt = SignalFilter.from_mapping(
        {"min_confidence": 1, "min_rvol": 0, "min_price": 5, "max_price": 5}
    )
    assert (flt.min_confidence, flt.min_rvol, flt.min_price, flt.max_price) == (1, 0, 5, 5)
    assert SignalFilter(min_price=5.0).max_price is None
    assert SignalFilter(max_price=0.0).min_price is None


# ---- from_mapping, from_text -----------------------------------------------


def test_from_mapping_drops_nulls_and_refuses_what_is_not_an_object() -> None:
    assert SignalFilter.from_mapping(None) == SignalFilter()
    assert SignalFilter.from_mapping({"tickers": None, "max_price": None}) == SignalFilter()
    assert SignalFilter.from_mapping({"max_price": 3}) == SignalFilter(max_price=3.0)
    err = refusal(lambda: SignalFilter.from_mapping("tickers=AAPL"))  # type: ignore[arg-type]
    assert str(err) == "filters must be a JSON object" and err.field is None
    assert str(refusal(lambda: SignalFilter.from_mapping({"colour": "red"}))) == (
        "colour: is not a known field"
    )


def test_from_text_reads_field_value_tokens() -> None:
    assert SignalFilter.from_text("") == SignalFilter()
    assert SignalFilter.from_text("   ") == SignalFilter()
    assert SignalFilter.from_text("tickers=") == SignalFilter()  # blank: unset
    assert SignalFilter.from_text("max_price=5 max_price=7") == SignalFilter(max_price=7.0)
    flt = SignalFilter.from_text("tickers=aapl;tsla\tmin_rvol=1.5\nsectors=Energy")
    assert flt == SignalFilter(tickers=("AAPL", "TSLA"), min_rvol=1.5, sectors=("Energy",))


def test_from_text_refusals_name_the_fields() -> None:
    err = refusal(lambda: SignalFilter.from_text("max_price=5 tickers"))
    assert str(err) == f"'tickers' is not field=value; fields: {FIELDS}"
    assert err.field is None
    err = refusal(lambda: SignalFilter.from_text("colour=red"))
    assert str(err) == f"unknown filter field 'colour'; use one of: {FIELDS}"
    assert err.field == "colour"
    err = refusal(lambda: SignalFilter.from_text("=5"))
    assert str(err) == f"unknown filter field ''; use one of: {FIELDS}"


# ---- with_field, updated ---------------------------------------------------


def test_with_field_parses_numbers_and_keeps_the_rest() -> None:
    base = SignalFilter(tickers=("AAPL",), max_price=20.0)
    flt = base.with_field("min_price", " 2.5 ")
    assert flt == SignalFilter(tickers=("AAPL",), min_price=2.5, max_price=20.0)
    assert isinstance(flt.min_price, float)
    assert base.with_field("max_price", "   ") == SignalFilter(tickers=("AAPL",))
    assert base.with_field("tickers", "") == SignalFilter(max_price=20.0)
    assert base.with_field("sectors", " Energy ").sectors == ("Energy",)
    assert base.with_field("min_confidence", "1e-1").min_confidence == 0.1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("colour", "red", f"unknown filter field 'colour'; use one of: {FIELDS}"),
        ("colour", None, f"unknown filter field 'colour'; use one of: {FIELDS}"),
        ("min_rvol", "lots", "min_rvol needs a number: lowest relative volume (e.g. 1.5)"),
        ("max_price", "inf", "max_price needs a finite number"),
        ("max_price", "-inf", "max_price needs a finite number"),
        ("min_price", "nan", "min_price needs a finite number"),
        ("max_price", "-1", "max_price: Input should be greater than or equal to 0"),
        ("max_price", "1", "value: min_price must not be above max_price"),
        ("signal_types", "HOLD", "signal_types: 'HOLD' is not a signal type; use BUY, SELL or WATCH"),
    ],
)
def test_with_field_refusals_name_the_field(field: str, value: str | None, message: str) -> None:
    err = refusal(lambda: SignalFilter(min_price=2.0).with_field(field, value))
    assert str(err) == message
    assert err.field == field


def test_updated_applies_json_changes_and_none_clears() -> None:
    base = SignalFilter(tickers=("AAPL",), min_price=1.0)
    assert base.updated({}) == base
    assert base.updated({"tickers": ["tsla", "gme"], "min_price": None, "max_price": 9}) == (
        SignalFilter(tickers=("TSLA", "GME"), max_price=9.0)
    )
    err = refusal(lambda: base.updated({"max_price": 3, "colour": "red"}))
    assert str(err) == f"unknown filter field 'colour'; use one of: {FIELDS}"
    assert err.field == "colour"
    err = refusal(lambda: base.updated({"max_price": 0.5}))
    assert str(err) == "value: min_price must not be above max_price" and err.field is None


# ---- rendering -------------------------------------------------------------


def test_to_mapping_has_the_set_fields_in_order_lists_as_lists() -> None:
    flt = SignalFilter.from_mapping(
        {"max_price": 20, "sectors": ["Energy"], "min_price": 0, "min_confidence": 0.0}
    )
    mapping = flt.to_mapping()
    assert mapping == {"min_confidence": 0.0, "sectors": ["Energy"], "min_price": 0.0, "max_price": 20.0}
    assert list(mapping) == ["min_confidence", "sectors", "min_price", "max_price"]
    assert not flt.is_empty()
    assert SignalFilter(min_price=0.0).is_empty() is False  # zero is set, not unset
    assert SignalFilter().to_mapping() == {} and SignalFilter().is_empty()


def test_to_text_writes_numbers_short_and_lists_comma_separated() -> None:
    flt = SignalFilter(
        min_confidence=0.75,
        tickers=("AAPL", "TSLA"),
        min_rvol=1e-05,
        min_price=1.0,
        max_price=1234567.0,
    )
    assert flt.to_text() == (
        "min_confidence=0.75 tickers=AAPL,TSLA min_rvol=1e-05 min_price=1 max_price=1.23457e+06"
    )
    assert SignalFilter(sectors=("Energy",)).to_text() == "sectors=Energy"
