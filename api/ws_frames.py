"""Frames a client sends, checked before anything reads them.

:func:`parse_message` turns a text frame into a JSON object, or says exactly what is
wrong with it, whatever the text is: nesting is bounded (MAX_DEPTH, checked before
parsing), numbers are bounded (MAX_INT_DIGITS, MAX_NUMBER_CHARS) and finite, and
strings (keys too) refuse NUL and lone surrogates, so whatever a message carries
can be stored and served back on SQLite and PostgreSQL alike. :func:`parse_seq`
reads a ``seq`` cursor.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The largest seq a cursor may name (a signed 64-bit integer).
MAX_SEQ = 2**63 - 1
#: Deepest JSON nesting accepted in a client message.
MAX_DEPTH = 32
#: Longest integer (in digits) and longest number literal accepted.
MAX_INT_DIGITS = 30
MAX_NUMBER_CHARS = 40

_BRACKETS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(Exception):
    """A client message that cannot be accepted; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _nesting_ok(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    depth = 0
    for match in _BRACKETS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _parse_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise FrameError(f"number too large: at most {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise FrameError(f"number too long: at most {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise FrameError(f"number out of range: {text[:MAX_NUMBER_CHARS]}")
    return value


def _no_constants(name: str) -> Any:
    raise FrameError(f"{name} is not a JSON number: numbers must be finite")


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise FrameError("strings may not contain NUL (\\u0000)")
    if _SURROGATE.search(value):
        raise FrameError("strings may not contain unpaired surrogates (\\ud800-\\udfff)")


def _check_strings(data: Any) -> None:
    """Every key and string value (nesting is already bounded)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                _check_text(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def parse_message(text: str) -> dict[str, Any]:
    """A client message as a JSON object, or FrameError saying what is wrong with it:
    malformed JSON, nesting deeper than MAX_DEPTH, a number too large or not finite,
    a NUL or an unpaired surrogate in a string, or not an object. Never raises anything
    else, whatever ``text`` is."""
    if not _nesting_ok(text):
        raise FrameError(f"JSON nested too deeply: at most {MAX_DEPTH} levels")
    try:
        data = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constants
        )
    except FrameError:
        raise
    except (ValueError, RecursionError):
        raise FrameError("malformed JSON") from None
    if "\\u" in text:  # NUL and lone surrogates can only come in as escapes
        _check_strings(data)
    if not isinstance(data, dict):
        raise FrameError('send a JSON object such as {"type":"pong"}')
    return data


def parse_seq(value: Any) -> int | None:
    """A cursor (an int, or a string of ASCII digits) within 0..MAX_SEQ; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            return None
        value = int(text)
    if isinstance(value, int) and 0 <= value <= MAX_SEQ:
        return value
    return None
