"""The in-process live bus: every published signal, to whoever listens (the WebSocket stream).

It carries two kinds of news, to two kinds of listeners:

* a *new* signal, a seq this bus has not carried before (:meth:`LiveBus.subscribe`),
  in seq order, each seq once;
* an *update*: a correction or retraction of a signal stored already, that is a
  higher ``revision`` of a seq (:meth:`LiveBus.subscribe_updates`).

Each (seq, revision) goes out once, and never after a later revision of the same
seq went out: a signal that arrives twice (published here and seen again by the
database tail), or a stale revision arriving after a newer one, goes nowhere.

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


def _unsubscriber(listeners: list[Listener], listener: Listener) -> Callable[[], None]:
    def _unsubscribe() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return _unsubscribe


class LiveBus:
    """Also remembers, for the last ``memory`` seqs it carried, the highest revision
    it carried of each: what it drops and whether a signal is new or an update."""

    def __init__(self, memory: int = 10_000) -> None:
        self._listeners: list[Listener] = []
        self._update_listeners: list[Listener] = []
        #: seq -> the highest revision carried; ``_order`` holds the seqs, oldest first.
        self._revisions: dict[int, int] = {}
        self._order: deque[int] = deque()
        self._memory = memory

    def seen(self, seq: int, revision: int | None = None) -> bool:
        """Whether this bus carried ``seq`` (at ``revision`` or later, when given)."""
        carried = self._revisions.get(seq)
        return carried is not None and (revision is None or revision <= carried)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener`` for new signals; returns a function that unregisters it."""
        self._listeners.append(listener)
        return _unsubscriber(self._listeners, listener)

    def subscribe_updates(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener`` for updates (a signal as it is after a correction or a
        retraction); returns a function that unregisters it."""
        self._update_listeners.append(listener)
        return _unsubscriber(self._update_listeners, listener)

    def publish(self, signal: Signal) -> None:
        """A stored signal, as it is now: new when this bus has not carried its seq
        (whatever its revision), else an update when its revision is higher than
        any carried; otherwise nothing."""
        if signal.seq is None:
            self._emit(self._listeners, signal)
            return
        known = signal.seq in self._revisions
        if self._record(signal.seq, signal.revision):
            self._emit(self._update_listeners if known else self._listeners, signal)

    def publish_update(self, signal: Signal) -> None:
        """A correction or retraction of a signal stored before (perhaps before this
        bus was started, so not necessarily carried by it): an update, unless this
        revision or a later one of it went out already."""
        if signal.seq is not None and self._record(signal.seq, signal.revision):
            self._emit(self._update_listeners, signal)

    def _record(self, seq: int, revision: int) -> bool:
        """Note (seq, revision); False when it (or a later revision) went out already."""
        carried = self._revisions.get(seq)
        if carried is not None:
            if revision <= carried:
                return False
            self._revisions[seq] = revision
            return True
        self._revisions[seq] = revision
        self._order.append(seq)
        if len(self._order) > self._memory:
            self._revisions.pop(self._order.popleft(), None)
        return True

    @staticmethod
    def _emit(listeners: list[Listener], signal: Signal) -> None:
        for listener in list(listeners):
            try:
                listener(signal)
            except Exception:
                log.exception("live bus listener failed for signal %s", signal.signal_id)
