"""Live fan-out: every published signal to every matching client, none waiting for another.

``ctx.bus`` calls :meth:`Fanout.on_signal` once per published signal, in ``seq``
order; the signal is fanned out on this loop turn's flush, so the publisher (an
ingest request, the scheduler) never waits for clients. It is serialized once and
framed once. Each client whose compiled filter matches gets it: written straight
to its socket when nothing is queued ahead and the socket takes it
(:mod:`api.fastsend`), else appended to the client's bounded queue; a client in the
middle of a resume gets it in its side buffer (:mod:`api.ws_resume`). Nothing in
the broadcast awaits, so no client can delay another. The same flush then writes
what every client has queued (:meth:`api.ws_client.Client.flush`).

An update (:meth:`Fanout.on_update`: a signal the bus carried before, corrected or
retracted) goes the same way, in bus order with the signals, as a
``signal_update`` to every client whose filter matches the signal as it is now.
It is not a new signal: it is not counted as received, not remembered as sent
live, and moves no resume cursor. The messages are built per (signal, kind), from
the signal object the bus carries: a revision is another object, never a cached
form of the seq.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from api.fastsend import text_frame
from api.ws_client import Client
from api.ws_messages import signal_message, update_message
from domain.signals import Signal

if TYPE_CHECKING:
    from core.context import HubContext


class Fanout:
    """The broadcast and the once-per-turn flush of the clients in ``clients``."""

    def __init__(self, ctx: HubContext, clients: Mapping[str, Client]) -> None:
        self._ctx = ctx
        self._clients = clients
        self._ready_clients: list[Client] = []
        #: (signal, whether it is an update), in bus order.
        self._broadcasts: list[tuple[Signal, bool]] = []
        self._flush_scheduled = False

    def ready(self, client: Client) -> None:
        """``client`` has something queued: write it on this loop turn's flush."""
        self._ready_clients.append(client)
        self._schedule_flush()

    def on_signal(self, signal: Signal) -> None:
        """Bus listener: note the signal; it is fanned out on this loop turn's flush."""
        if not self._clients:
            return
        self._broadcasts.append((signal, False))
        self._schedule_flush()

    def on_update(self, signal: Signal) -> None:
        """Bus update listener: a correction or retraction, fanned out likewise."""
        if not self._clients:
            return
        self._broadcasts.append((signal, True))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Fan out the signals published since the last turn, then write queued messages."""
        try:
            while self._broadcasts or self._ready_clients:
                broadcasts, self._broadcasts = self._broadcasts, []
                for signal, update in broadcasts:
                    if update:
                        self._broadcast_update(signal)
                    else:
                        self._broadcast(signal)
                ready, self._ready_clients = self._ready_clients, []
                for client in ready:
                    client.flush()
        finally:
            self._flush_scheduled = False

    def _broadcast(self, signal: Signal) -> None:
        """Serialize and frame once; write or queue to every matching client. Never awaits."""
        text = signal_message(signal)
        frame = text_frame(text.encode())
        seq = signal.seq or 0
        sent = 0
        note = self._ctx.receipts.note
        # A snapshot: a client whose queue overflows here is forgotten at once.
        for client in list(self._clients.values()):
            matcher = client.matcher
            if matcher is not None and not matcher(signal):
                continue
            if client.side_buffer is not None:
                client.buffer_live(seq, text)
                note(client.user_id, seq)
            elif client.offer(text, frame):
                client.recent_live.append(seq)
                note(client.user_id, seq)
                sent += 1
        if sent:
            self._ctx.metrics.ws_messages_sent.labels(type="signal").inc(sent)

    def _broadcast_update(self, signal: Signal) -> None:
        """A ``signal_update`` to every matching client, framed once; never awaits."""
        text = update_message(signal)
        frame = text_frame(text.encode())
        seq = signal.seq or 0
        sent = 0
        for client in list(self._clients.values()):
            matcher = client.matcher
            if matcher is not None and not matcher(signal):
                continue
            if client.side_buffer is not None:
                client.buffer_live(seq, text, signal.revision)
            elif client.offer(text, frame):
                sent += 1
        if sent:
            self._ctx.metrics.ws_messages_sent.labels(type="signal_update").inc(sent)
