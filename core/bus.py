"""The in-process live bus: every published signal, to whoever listens (the WebSocket stream).

Listeners are plain callables invoked synchronously in publish order; they must not
block (the WebSocket manager only enqueues). A failing listener is logged and
never stops the others.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from domain.signals import Signal

log = logging.getLogger(__name__)

Listener = Callable[[Signal], None]


class LiveBus:
    """Also remembers the last ``memory`` seqs it carried, so a signal that arrives
    twice (published here and seen again by the database tail) goes out once."""

    def __init__(self, memory: int = 10_000) -> None:
        self._listeners: list[Listener] = []
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._memory = memory

    def seen(self, seq: int) -> bool:
        return seq in self._seen

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unregisters it."""
        self._listeners.append(listener)

        def _unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return _unsubscribe

    def publish(self, signal: Signal) -> None:
        if signal.seq is not None:
            if signal.seq in self._seen:
                return
            self._seen.add(signal.seq)
            self._order.append(signal.seq)
            if len(self._order) > self._memory:
                self._seen.discard(self._order.popleft())
        for listener in list(self._listeners):
            try:
                listener(signal)
            except Exception:
                log.exception("live bus listener failed for signal %s", signal.signal_id)
