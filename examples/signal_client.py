"""Example client for the Catalyst Signal Hub stream, in the spirit of the design
document's ``CatalystClient``.

    python examples/signal_client.py --api-key catalyst_... \\
        --url ws://localhost:8000/ws --min-confidence 0.7 --catalyst FDA --catalyst M&A

It connects with the API key in ``?token=``, subscribes with filters, answers
every heartbeat with a pong, prints each signal, and reconnects with ``resume``
(from the last ``seq`` it saw) when the connection drops, so nothing is missed.
Needs only the ``websockets`` package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import websockets
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("signal_client")

SignalHandler = Callable[[dict[str, Any]], Awaitable[None]]


class StreamRefused(Exception):
    """The server refused us for a reason reconnecting cannot fix (bad key, limits)."""


#: Close codes after which reconnecting cannot help.
FATAL_CLOSE_CODES = {4001: "authentication failed", 4029: "too many connections"}


class CatalystClient:
    """Client for the Catalyst signal stream."""

    def __init__(self, api_key: str, ws_url: str = "ws://localhost:8000/ws") -> None:
        self.api_key = api_key
        self.ws_url = ws_url
        self.ws: Any = None
        self.last_seq: int | None = None
        self.received = 0

    async def connect(self) -> dict[str, Any]:
        """Open the connection; returns the server's welcome message."""
        self.ws = await websockets.connect(
            f"{self.ws_url}?token={quote(self.api_key, safe='')}", open_timeout=10
        )
        welcome: dict[str, Any] = json.loads(await self.ws.recv())
        if welcome.get("type") != "welcome":
            raise StreamRefused(welcome.get("message", "the server refused the connection"))
        log.info("connected as client %s", welcome["client_id"])
        return welcome

    async def subscribe(self, filters: dict[str, Any]) -> None:
        """Store ``filters`` as this user's stream filter (it persists across connections)."""
        await self.ws.send(json.dumps({"type": "subscribe", "filters": filters}))

    async def resume(self, after_seq: int) -> None:
        """Ask for every matching signal after ``after_seq`` before going live."""
        await self.ws.send(json.dumps({"type": "resume", "after_seq": after_seq}))

    async def send_feedback(
        self, signal_id: str, outcome: str, return_pct: float | None = None
    ) -> None:
        """Report a trade outcome: win, loss, breakeven or skipped."""
        await self.ws.send(
            json.dumps(
                {
                    "type": "feedback",
                    "signal_id": signal_id,
                    "outcome": {"outcome": outcome, "return_pct": return_pct},
                }
            )
        )

    async def listen(self, on_signal: SignalHandler, max_signals: int | None = None) -> None:
        """Handle messages until the connection closes (or ``max_signals`` arrived)."""
        async for raw in self.ws:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "signal":
                signal = message["data"]
                self.last_seq = signal.get("seq", self.last_seq)
                await on_signal(signal)
                self.received += 1
                if max_signals is not None and self.received >= max_signals:
                    return
            elif kind == "heartbeat":
                await self.ws.send(json.dumps({"type": "pong"}))
            elif kind == "subscribed":
                log.info("filters: %s", message["filters"])
            elif kind == "resumed":
                log.info("replayed %d missed signals", message["replayed"])
            elif kind == "error":
                log.error("server error: %s", message["message"])

    async def run(
        self,
        on_signal: SignalHandler,
        filters: dict[str, Any] | None = None,
        *,
        max_signals: int | None = None,
        reconnect: bool = True,
    ) -> None:
        """Connect, subscribe, listen; on a dropped connection reconnect and resume."""
        delay = 1.0
        while True:
            try:
                await self.connect()
                if filters:
                    await self.subscribe(filters)
                if self.last_seq is not None:
                    await self.resume(self.last_seq)
                delay = 1.0
                await self.listen(on_signal, max_signals)
                if max_signals is not None:
                    return
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in FATAL_CLOSE_CODES:
                    raise StreamRefused(FATAL_CLOSE_CODES[code]) from None
                log.warning("connection closed (%s); reconnecting in %.0f s", code, delay)
            except OSError as exc:
                log.warning("cannot connect (%s); retrying in %.0f s", exc, delay)
            finally:
                await self.close()
            if not reconnect:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def print_signal(signal: dict[str, Any]) -> None:
    """Handle an incoming trading signal: here, print it."""
    price = signal.get("price")
    shown_price = f"${price:.2f}" if price is not None else "-"
    print(
        f"[{signal.get('seq')}] {signal['ticker']:<6} {signal['signal_type']:<5} "
        f"{signal['confidence']:.2f}  {signal['catalyst_type']:<10} "
        f"{shown_price:>8}  {signal.get('headline') or ''}",
        flush=True,
    )
    if signal["confidence"] >= 0.8:
        log.info("HIGH CONFIDENCE SIGNAL - consider executing")


def build_filters(args: argparse.Namespace) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if args.min_confidence is not None:
        filters["min_confidence"] = args.min_confidence
    if args.ticker:
        filters["tickers"] = args.ticker
    if args.catalyst:
        filters["catalyst_types"] = args.catalyst
    if args.min_rvol is not None:
        filters["min_rvol"] = args.min_rvol
    if args.max_price is not None:
        filters["max_price"] = args.max_price
    return filters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print Catalyst signals as they arrive.")
    parser.add_argument("--api-key", required=True, help="an API key (catalyst_...)")
    parser.add_argument("--url", default="ws://localhost:8000/ws")
    parser.add_argument("--min-confidence", type=float)
    parser.add_argument("--ticker", action="append", help="repeat for several")
    parser.add_argument("--catalyst", action="append", help="repeat for several (FDA, M&A...)")
    parser.add_argument("--min-rvol", type=float)
    parser.add_argument("--max-price", type=float)
    parser.add_argument("--max-signals", type=int, help="exit after this many signals")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    client = CatalystClient(args.api_key, args.url)
    try:
        asyncio.run(client.run(print_signal, build_filters(args), max_signals=args.max_signals))
    except KeyboardInterrupt:
        log.info("shutting down")
    except StreamRefused as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
