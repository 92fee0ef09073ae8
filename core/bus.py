"""The in-process live bus: every published signal, to whoever listens (the WebSocket stream).

Listeners are plain callables invoked synchronously in publish order; they must not
block (the WebSocket manager only enqueues). A failing listener is logged and
never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.signals import Signal

log = logging.getLogger(__name__)

Listener = Callable[[Signal], None]


class LiveBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unregisters it."""
        self._listeners.append(listener)

        def _unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return _unsubscribe

    def publish(self, signal: Signal) -> None:
        for listener in list(self._listeners):
            try:
                listener(signal)
            except Exception:
                log.exception("live bus listener failed for signal %s", signal.signal_id)
