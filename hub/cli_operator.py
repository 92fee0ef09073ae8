"""The operator's commands: ``catalyst trace`` and ``catalyst dead list|retry``.

``trace SIGNAL_ID`` answers "I didn't get the FDA alert on ABCD": the signal, then
one line per delivery row (alerts and edits) with where it went, what became of it
and why. ``dead list`` shows deliveries given up on; ``dead retry`` puts them back
through the outbox (recorded in the admin actions as ``cli``). The logic is
:class:`core.services.operator.OperatorService`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime

from core.context import HubContext
from core.services.operator import MAX_DEAD_LIST
from domain.errors import InvalidInput, NotFound
from domain.signals import Signal

COMMANDS = frozenset({"trace", "dead"})
CLI_ACTOR = "cli"
#: ``trace`` of an unknown signal.
EXIT_NOT_FOUND = 1
_ENDED = ("dead", "expired", "canceled")


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    trace = sub.add_parser(
        "trace",
        help="show a signal and every delivery it made: where each went, what became of it",
        parents=[common],
    )
    trace.add_argument("signal_id", metavar="SIGNAL_ID", help="the producer's signal id")

    dead = sub.add_parser("dead", help="deliveries given up on (dead letters)")
    dead_sub = dead.add_subparsers(dest="dead_command", metavar="ACTION", required=True)
    dl = dead_sub.add_parser("list", help="list dead deliveries, newest first", parents=[common])
    dl.add_argument("--channel", help="only this channel, e.g. telegram")
    dl.add_argument(
        "--limit", type=int, default=50, help=f"how many, 1-{MAX_DEAD_LIST} (default 50)"
    )
    dr = dead_sub.add_parser(
        "retry",
        help="put dead deliveries back through the outbox (--id N ... or --channel X --all)",
        parents=[common],
    )
    dr.add_argument(
        "--id", dest="ids", type=int, action="append", metavar="N", help="a delivery id (repeat)"
    )
    dr.add_argument("--channel", help="with --all: every dead delivery of this channel")
    dr.add_argument("--all", action="store_true", help="with --channel: retry all its dead rows")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _one_line(text: str | None) -> str:
    return " ".join(text.split()) if text else "-"


def _signal_line(signal: Signal) -> str:
    line = (
        f"signal {signal.signal_id}: {signal.ticker} {signal.signal_type} "
        f"{signal.catalyst_type} confidence {signal.confidence:.2f}, seq {signal.seq}, "
        f"revision {signal.revision}, {signal.status}, at {_when(signal.timestamp)}"
    )
    return f"{line}: {_one_line(signal.headline)}" if signal.headline else line


async def trace(ctx: HubContext, signal_id: str) -> int:
    try:
        found = await ctx.services.operator.trace(signal_id)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(_signal_line(found.signal))
    rows = found.deliveries
    if not rows:
        print("no deliveries: no subscription matched it when it was published")
        return 0
    counts = Counter(r.status for r in rows)
    print(f"{len(rows)} deliveries: " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    print("id\tkind\tplatform\tdestination\tuser\tstatus\tattempts\tcreated\tsent/ended\terror")
    for r in rows:
        if r.sent_at is not None:
            done = f"sent {_when(r.sent_at)}"
        elif r.status in _ENDED:
            done = f"ended {_when(r.ended_at)}"
        else:
            done = f"next {_when(r.next_attempt_at)}"
        kind = r.kind if r.kind == "alert" else f"{r.kind}@{r.revision}"
        print(
            f"{r.id}\t{kind}\t{r.platform}\t{r.destination}\t{r.user_name or '-'}\t{r.status}"
            f"\t{r.attempts}\t{_when(r.created_at)}\t{done}\t{_one_line(r.last_error)}"
        )
    return 0


async def dead_list(ctx: HubContext, channel: str | None, limit: int) -> int:
    rows = await ctx.services.operator.dead_letters(channel, limit)
    if not rows:
        print(f"no dead deliveries{f' on {channel}' if channel else ''}")
        return 0
    print("id\tsignal\tticker\tplatform\tdestination\tkind\tattempts\tcreated\tended\terror")
    for r in rows:
        print(
            f"{r.id}\t{r.signal_id}\t{r.ticker}\t{r.platform}\t{r.destination}\t{r.kind}"
            f"\t{r.attempts}\t{_when(r.created_at)}\t{_when(r.ended_at)}"
            f"\t{_one_line(r.last_error)}"
        )
    return 0


async def dead_retry(ctx: HubContext, args: argparse.Namespace) -> int:
    if args.ids and (args.channel or args.all):
        raise InvalidInput("give --id N ... or --channel X --all, not both")
    if not args.ids and not (args.channel and args.all):
        raise InvalidInput("give --id N (repeat it for more) or --channel X --all")
    result = await ctx.services.operator.retry(
        CLI_ACTOR, delivery_ids=args.ids or None, channel=None if args.ids else args.channel
    )
    ids = ", ".join(str(i) for i in result.retried_ids)
    print(f"retried {result.retried} delivery(ies){f': {ids}' if ids else ''}")
    for delivery_id, reason in result.skipped:
        print(f"skipped {delivery_id}: {reason}")
    if result.retried:
        print("the running hub's dispatcher sends them on its next round")
    return 0


async def run(ctx: HubContext, args: argparse.Namespace) -> int:
    if args.command == "trace":
        return await trace(ctx, args.signal_id)
    if args.dead_command == "list":
        return await dead_list(ctx, args.channel, args.limit)
    return await dead_retry(ctx, args)
