"""The ``catalyst`` command line.

Every command reads the same settings (``--config PATH``, else ``./config.toml``
when present, then ``CATALYST_*`` environment variables) and migrates the
embedded SQLite database first when needed, so each works in a fresh folder.
User mistakes print ``error: ...`` and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from core.auth import DEFAULT_SCOPES, parse_scopes
from core.context import HubContext
from core.logs import configure_logging, secrets_of
from core.scheduler import collect
from core.settings import Settings, load_settings
from core.sources.loader import load_source
from domain.errors import HubError
from domain.signals import Signal
from hub import cli_operator, doctor
from hub.build import build_context, prepare_database

EXIT_USAGE = 2


class CliError(Exception):
    pass


CONFIG_HELP = (
    "TOML settings file (default: $CATALYST_CONFIG, else ./config.toml if present; "
    "CATALYST_* environment variables override it)"
)


def _parser() -> argparse.ArgumentParser:
    # ``--config`` is accepted before the command and after it (on every command):
    # SUPPRESS keeps a command's missing --config from hiding the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    p = argparse.ArgumentParser(
        prog="catalyst",
        description="Catalyst Signal Hub: publish trading signals and deliver them to "
        "Discord, Telegram, WebSocket and REST subscribers.",
    )
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", help="run everything that is enabled, in one process", parents=[common]
    )
    run.add_argument(
        "--roles",
        help="comma-separated subset of api,dispatcher,bots,scheduler (default: all)",
    )
    run.add_argument("--host", help="address the API listens on (default: api.host)")
    run.add_argument(
        "--port", type=int, help="port the API listens on, e.g. $PORT (default: api.port)"
    )

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations", parents=[common])

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    uc = user_sub.add_parser("create", help="create a user", parents=[common])
    uc.add_argument("name", help="1-64 letters, digits or _.:@-")
    uc.add_argument("--admin", action="store_true", help="give the user admin rights")
    user_sub.add_parser(
        "list", help="list users with their active keys and linked accounts", parents=[common]
    )

    key = sub.add_parser("key", help="manage API keys")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    kc = key_sub.add_parser("create", help="create an API key (printed once)", parents=[common])
    kc.add_argument("user", help="user name")
    kc.add_argument(
        "--scope",
        default=",".join(DEFAULT_SCOPES),
        help=(
            "comma-separated scopes from read,feedback,publish,admin (default: read,feedback); "
            "a key can do exactly what its scopes say, and admin is for admin users only"
        ),
    )
    kl = key_sub.add_parser("list", help="list a user's API keys", parents=[common])
    kl.add_argument("user", help="user name")
    kr = key_sub.add_parser("revoke", help="revoke an API key by id", parents=[common])
    kr.add_argument("key_id", type=int, help="the id shown by 'key list'")

    pub = sub.add_parser(
        "publish", help="publish a signal from flags or a JSON file", parents=[common]
    )
    pub.add_argument(
        "--file",
        metavar="PATH",
        help="a JSON object, a JSON array, or JSON lines; - reads standard input",
    )
    pub.add_argument(
        "--signal-id",
        help="producer id; publishing the same id twice is a no-op, and with other "
        "fields corrects the stored signal",
    )
    pub.add_argument("--ticker", help="ticker symbol, e.g. AAPL")
    pub.add_argument("--type", dest="signal_type", help="BUY, SELL or WATCH (default WATCH)")
    pub.add_argument("--confidence", type=float, help="0..1")
    pub.add_argument("--catalyst", dest="catalyst_type", help="FDA, M&A, EARNINGS, ...")
    pub.add_argument("--source", help="where the signal came from (default cli)")
    pub.add_argument("--price", type=float)
    pub.add_argument("--rvol", type=float, help="relative volume")
    pub.add_argument("--sector")
    pub.add_argument("--headline")
    pub.add_argument("--url")
    pub.add_argument(
        "--status",
        choices=("active", "retracted"),
        help="with --signal-id alone: 'retracted' withdraws a published signal",
    )

    src = sub.add_parser("source", help="the Catalyst job's source")
    src_sub = src.add_subparsers(dest="source_command", metavar="ACTION", required=True)
    src_sub.add_parser(
        "run-once",
        help="run the configured source once and print what it would publish",
        parents=[common],
    )
    cli_operator.add_commands(sub, common)
    doctor.add_parser(sub, common)
    return p


async def _with_context(
    settings: Settings, fn: Callable[[HubContext], Awaitable[int]], *, migrate: bool = True
) -> int:
    ctx = build_context(settings)
    try:
        if migrate:
            await prepare_database(ctx)
        return await fn(ctx)
    finally:
        await ctx.db.dispose()


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _read_signals_file(path: str) -> list[Any]:
    if path == "-":
        path, text = "standard input", sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"{path} is not UTF-8 text") from None
    stripped = text.strip()
    if not stripped:
        raise CliError(f"{path} is empty")
    try:
        data = json.loads(stripped)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        items = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CliError(f"{path} line {number} is not JSON: {exc.msg}") from None
        return items


SIGNAL_FLAGS = (
    "signal_id",
    "ticker",
    "signal_type",
    "confidence",
    "catalyst_type",
    "source",
    "price",
    "rvol",
    "sector",
    "headline",
    "url",
    "status",
)


def _flag_name(field: str) -> str:
    return {"signal_type": "--type", "catalyst_type": "--catalyst"}.get(
        field, "--" + field.replace("_", "-")
    )


def _publish_items(args: argparse.Namespace) -> list[Any]:
    if args.file is None:
        return [_signal_from_flags(args)]
    given = [_flag_name(f) for f in SIGNAL_FLAGS if getattr(args, f) is not None]
    if given:
        raise CliError(
            f"--file cannot be combined with {', '.join(given)}: put those fields in the file"
        )
    return _read_signals_file(args.file)


def _signal_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    revising = args.signal_id is not None and args.status is not None
    if not revising and (args.ticker is None or args.confidence is None):
        raise CliError(
            "give --ticker and --confidence (or --file PATH; or --signal-id ID "
            "--status retracted to withdraw a signal)"
        )
    fields = SIGNAL_FLAGS
    data = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if not revising:
        data.setdefault("source", "cli")
    return data


async def _publish(ctx: HubContext, items: list[Any]) -> int:
    if not items:
        print("published nothing: the file holds no signals ([])")
        return 0
    failures = 0
    for index, item in enumerate(items):
        try:
            result = await ctx.publisher.publish(item)
        except HubError as exc:
            failures += 1
            print(f"error: item {index}: {exc}", file=sys.stderr)
            continue
        if result.revised:
            state = "retracted" if result.signal.retracted else "corrected"
        else:
            state = "published" if result.created else "already published"
        print(
            f"{state}: {result.signal.signal_id} seq={result.signal.seq} "
            f"deliveries={result.deliveries}"
        )
    return EXIT_USAGE if failures else 0


async def _source_run_once(ctx: HubContext) -> int:
    scheduler = ctx.settings.scheduler
    source = load_source(scheduler, ctx.db)
    try:
        items = await collect(source)
    except Exception as exc:  # the user's own source code failed: say how, briefly
        raise CliError(
            f"the source {scheduler.source!r} failed: {type(exc).__name__}: {exc}"[:500]
        ) from None
    bad = 0
    for index, item in enumerate(items):
        try:
            print(json.dumps(Signal.parse(item).to_public()))
        except HubError as exc:
            bad += 1
            print(f"error: item {index} would be rejected: {exc}", file=sys.stderr)
    print(f"{len(items) - bad} signal(s) would be published, {bad} rejected", file=sys.stderr)
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command
    if cmd == "run":
        from hub.runtime import Hub, parse_roles

        try:
            roles = parse_roles(args.roles)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        settings = _with_listen_address(settings, args.host, args.port)
        configure_logging(settings)
        try:
            asyncio.run(Hub(settings, roles).run_until_signalled())
        except (HubError, CliError):
            raise
        except Exception as exc:  # a start-up failure: say what, without a traceback
            logging.getLogger("hub").debug("start-up failed", exc_info=True)
            message = f"could not start: {exc.__class__.__name__}: {exc}"
            for secret in secrets_of(settings):
                if secret:
                    message = message.replace(secret, "***")
            raise CliError(message) from None
        return 0
    if cmd == "db":

        async def upgrade(ctx: HubContext) -> int:
            applied = await prepare_database(ctx, force=True)
            if applied:
                print(f"applied migration(s) {', '.join(applied)}; the database is up to date")
            else:
                print("the database was already up to date; nothing applied")
            return 0

        return asyncio.run(_with_context(settings, upgrade, migrate=False))
    if cmd == "user":

        async def create_user(ctx: HubContext) -> int:
            user = await ctx.services.accounts.create_user(args.name, is_admin=args.admin)
            print(f"created user {user.name} (id {user.id}{', admin' if user.is_admin else ''})")
            return 0

        async def list_users(ctx: HubContext) -> int:
            users = await ctx.services.accounts.list_users()
            if not users:
                print("no users yet: catalyst user create NAME [--admin]")
                return 0
            print("id\tname\tadmin\tactive keys\tlinked accounts")
            for user, keys, accounts in users:
                print(
                    f"{user.id}\t{user.name}\t{'yes' if user.is_admin else 'no'}\t{keys}\t{accounts}"
                )
            return 0

        return asyncio.run(
            _with_context(settings, create_user if args.user_command == "create" else list_users)
        )
    if cmd == "key":
        return asyncio.run(_with_context(settings, lambda ctx: _key(ctx, args)))
    if cmd == "publish":
        items = _publish_items(args)
        return asyncio.run(_with_context(settings, lambda ctx: _publish(ctx, items)))
    if cmd == "source":
        jsonl = settings.scheduler.jsonl.path
        if settings.scheduler.source == "jsonl" and not Path(jsonl).is_file():
            raise CliError(
                f"scheduler.jsonl.path: {jsonl} does not exist (or is not a file); "
                "the scheduler would wait for it to appear"
            )
        return asyncio.run(_with_context(settings, _source_run_once))
    if cmd in cli_operator.COMMANDS:
        return asyncio.run(_with_context(settings, lambda ctx: cli_operator.run(ctx, args)))
    raise CliError(f"unknown command {cmd}")  # pragma: no cover - argparse prevents it


def _with_listen_address(settings: Settings, host: str | None, port: int | None) -> Settings:
    """``settings`` with ``catalyst run --host/--port`` applied to ``[api]``."""
    update: dict[str, Any] = {}
    if host is not None:
        if not host.strip():
            raise CliError("--host: give an address, e.g. 0.0.0.0")
        update["host"] = host.strip()
    if port is not None:
        if not 0 <= port <= 65535:
            raise CliError(f"--port: {port} is not a port (0-65535)")
        update["port"] = port
    if not update:
        return settings
    return settings.model_copy(update={"api": settings.api.model_copy(update=update)})


async def _key(ctx: HubContext, args: argparse.Namespace) -> int:
    if args.key_command == "create":
        scopes = parse_scopes(args.scope)
        user = await ctx.services.accounts.find_user(args.user)
        key, info = await ctx.auth.create_key(user.id, scopes)
        print(f"API key {info.id} for {user.name} (scopes {','.join(info.scopes)}).")
        print("Store it now; it is shown only once:")
        print(key)
        return 0
    if args.key_command == "list":
        user = await ctx.services.accounts.find_user(args.user)
        keys = await ctx.auth.list_keys(user.id)
        if not keys:
            print(f"{user.name} has no API keys: catalyst key create {user.name}")
            return 0
        print("id\tprefix\tscopes\tstate\tcreated")
        for k in keys:
            state = "revoked" if k.revoked else "active"
            print(f"{k.id}\t{k.prefix}…\t{','.join(k.scopes)}\t{state}\t{k.created_at:%Y-%m-%d}")
        return 0
    info = await ctx.auth.revoke_key(args.key_id)
    print(f"revoked API key {info.id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":  # reports a configuration that does not load itself
        return asyncio.run(doctor.main(args))
    try:
        settings = load_settings(args.config or os.environ.get("CATALYST_CONFIG") or None)
        return _dispatch(args, settings)
    except (HubError, CliError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
