"""The compact text form of a filter, ``field=value field=value``: parsing user
text into raw field values and rendering values back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from domain.errors import InvalidInput
from domain.filters.fields import (
    FIELD_HELP,
    MAX_LIST_ITEMS,
    NUMBER_FIELDS,
    check_field_name,
)
from domain.signals import check_text


def parse_text(text: str) -> dict[str, str | None]:
    """``field=value`` tokens as raw values (a blank value is ``None``); the
    model validates them."""
    values: dict[str, str] = {}
    for token in text.split():
        field, sep, value = token.partition("=")
        if not sep:
            raise InvalidInput(f"{token!r} is not field=value; fields: {', '.join(FIELD_HELP)}")
        check_field_name(field)
        values[field] = value
    return {k: (v or None) for k, v in values.items()}


def parse_field_value(field: str, value: str | None) -> Any:
    """One field's user text as a raw value: blank clears (``None``; a list
    field validates it as empty), numbers must be finite, lists stay text."""
    check_field_name(field)
    text = (value or "").strip()
    if not text:
        return None
    if field not in NUMBER_FIELDS:
        return text
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(f"{field} needs a number: {FIELD_HELP[field]}", field=field) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field} needs a finite number", field=field)
    return number


def split_items(value: Any) -> list[str]:
    """A list field's value (a list, or text separated by ``,`` or ``;``) as
    stripped, de-duplicated items; raises ValueError with the rule."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.replace(";", ",").split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise ValueError("must be a list or a comma-separated string")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("items must be strings")
        try:
            check_text(item)
        except ValueError as exc:
            raise ValueError(f"{item[:64]!r} {exc}") from None
        item = item.strip()
        if item and item not in out:
            out.append(item)
    if len(out) > MAX_LIST_ITEMS:
        raise ValueError(f"has {len(out)} items; at most {MAX_LIST_ITEMS}")
    return out


def render_text(mapping: Mapping[str, Any]) -> str:
    """The set fields of a filter mapping as ``field=value`` tokens."""
    parts = []
    for name, value in mapping.items():
        rendered = ",".join(value) if isinstance(value, list) else format_number(value)
        parts.append(f"{name}={rendered}")
    return " ".join(parts)


def format_number(value: float) -> str:
    return f"{value:g}"


def format_optional(value: float | None) -> str:
    return "unknown" if value is None else format_number(value)
