"""The stream's wire vocabulary: its close codes and the messages the server sends.

The shapes are the design document's (``welcome``, ``signal``, ``heartbeat``,
``subscribed``, ``resumed``, ``feedback_recorded``, ``error``), and
``signal_update``: a signal already sent, corrected or retracted by its producer,
its ``data`` the same shape as ``signal``'s (``status`` and ``revision`` say what
changed). Every message is compact JSON without ASCII escaping, serialized by
:func:`dumps`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from domain.signals import Signal

#: Close codes used by the stream.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1008
CLOSE_HEARTBEAT = 4000
CLOSE_AUTH = 4001
CLOSE_TOO_MANY = 4029


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signal_message(signal: Signal) -> str:
    return dumps({"type": "signal", "data": signal.to_public()})


def update_message(signal: Signal) -> str:
    """A correction or retraction of a signal (``revision`` > 0), as it is now."""
    return dumps({"type": "signal_update", "data": signal.to_public()})


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def welcome(client_id: str) -> str:
    """The first message of every connection. Both values are ASCII without quotes or
    escapes (hex id, ISO time), so no JSON encoder is needed on the connect path."""
    return (
        f'{{"type":"welcome","client_id":"{client_id}",'
        f'"timestamp":"{datetime.now(UTC).isoformat()}"}}'
    )


HEARTBEAT = dumps({"type": "heartbeat"})
