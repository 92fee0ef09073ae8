"""The filter fields: their names, kinds and help texts."""

from __future__ import annotations

from domain.errors import InvalidInput

MAX_LIST_ITEMS = 100

#: One line per field: what it does and an example, for help texts. Its order is
#: the order of the compact text form and of the stored mapping.
FIELD_HELP: dict[str, str] = {
    "min_confidence": "lowest confidence to receive, 0..1 (e.g. 0.7)",
    "tickers": "only these tickers (e.g. AAPL,TSLA)",
    "exclude_tickers": "never these tickers (e.g. GME,AMC)",
    "catalyst_types": "only these catalysts (e.g. FDA,M&A,EARNINGS)",
    "signal_types": "only these signal types: BUY, SELL, WATCH (e.g. BUY)",
    "sectors": "only these sectors (e.g. Healthcare,Technology)",
    "min_rvol": "lowest relative volume (e.g. 1.5)",
    "min_price": "lowest price (e.g. 1)",
    "max_price": "highest price (e.g. 20)",
}

LIST_FIELDS: tuple[str, ...] = (
    "tickers",
    "exclude_tickers",
    "catalyst_types",
    "signal_types",
    "sectors",
)
NUMBER_FIELDS: tuple[str, ...] = (
    "min_confidence",
    "min_rvol",
    "min_price",
    "max_price",
)

KNOWN_CATALYSTS = (
    "FDA",
    "M&A",
    "EARNINGS",
    "OFFERING",
    "SEC_FILING",
    "PARTNERSHIP",
    "CONTRACT",
    "CLINICAL_TRIAL",
    "BUYBACK",
    "GUIDANCE",
    "ANALYST",
    "NEWS",
)


def check_field_name(field: str) -> None:
    """Raise :class:`InvalidInput` naming the known fields unless ``field`` is one."""
    if field not in FIELD_HELP:
        raise InvalidInput(
            f"unknown filter field {field!r}; use one of: {', '.join(FIELD_HELP)}",
            field=field,
        )
