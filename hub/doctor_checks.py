"""``catalyst doctor``'s result type and its local checks: the configuration, the
database and its schema, the jsonl source file, and the clocks.

The platform checks (Telegram, Discord) are in :mod:`hub.doctor_platforms`; the
order, the printing and the command line in :mod:`hub.doctor`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.settings import Settings, load_settings
from domain.errors import ConfigError
from storage.database import Database
from storage.migrate import current_revision, head_revision

#: The fix for a database that is missing or behind.
UPGRADE_FIX = "run catalyst db upgrade (it creates the tables and applies every migration)"
#: Clock difference (seconds) with the database past which doctor warns, and fails.
CLOCK_WARN_SECONDS = 2.0
CLOCK_FAIL_SECONDS = 5.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``fix`` says what to do when it is not OK."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.SKIP, detail)


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """The exception's class and the first line of its message, shortened."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text_ = f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


def masked_url(url: str) -> str:
    """``url`` (a database or web address) with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_passwords(url: str) -> list[str]:
    """The password in ``url`` as written and percent-decoded (empty list: none)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


# ---- configuration -------------------------------------------------------------
CONFIG_FIX = (
    "correct the key named above in the config file or its CATALYST_* environment "
    "variable (config.example.toml documents every key)"
)
SECRET_FIX = (
    "set CATALYST_AUTH__JWT_SECRET (or auth.jwt_secret) to the output of "
    'python -c "import secrets; print(secrets.token_urlsafe(32))"'
)


def check_config(source: str | Path | Settings | None) -> tuple[CheckResult, Settings | None]:
    """Load (or take) the settings and apply the production secret checks."""
    name = "configuration"
    if isinstance(source, Settings):
        where = "the given settings"
    else:
        where = str(source) if source is not None else "./config.toml"
        if source is None and not Path(where).is_file():
            where = "the defaults"
        where += " and CATALYST_* variables"
    try:
        if isinstance(source, Settings):
            settings = source
            settings.check_secrets()
        else:
            settings = load_settings(source)
    except ConfigError as exc:
        fix = SECRET_FIX if str(exc).startswith("auth.jwt_secret") else CONFIG_FIX
        return fail(name, str(exc), fix), None
    if settings.env == "production":
        secrets = "production: the JWT secret is strong"
    else:
        secrets = "development: production secret checks do not apply"
    return ok(name, f"loaded {where}; {secrets}"), settings


# ---- database ------------------------------------------------------------------
def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


async def check_database(settings: Settings, seconds: float) -> tuple[CheckResult, Database | None]:
    """Reachable and at the head revision. Returns the connected database (for the
    clock check; the caller disposes of it) unless it could not be reached."""
    name = "database"
    url = settings.database.url
    shown = masked_url(url)
    if settings.is_sqlite:
        path = _sqlite_file(url)
        if path is not None and not path.is_file():
            return fail(
                name, f"{shown}: the file {path.resolve()} does not exist", UPGRADE_FIX
            ), None
    db = Database(url, busy_timeout_ms=settings.database.sqlite_busy_timeout_ms)
    try:
        db.connect()
        async with asyncio.timeout(seconds):
            current = await current_revision(db)
    except Exception as exc:
        await db.dispose()
        return (
            fail(
                name,
                f"cannot reach {shown}: {describe_error(exc)}",
                "check database.url (CATALYST_DATABASE__URL), that the server runs and "
                "accepts connections from here, and the user name and password",
            ),
            None,
        )
    head = head_revision()
    if current == head:
        return ok(name, f"{shown} is reachable; the schema is at revision {head} (current)"), db
    if current is None:
        detail = f"{shown} is reachable but has no tables yet (this version needs {head})"
    else:
        detail = (
            f"{shown} is reachable; its schema is at revision {current}, this version needs {head}"
        )
    return fail(name, detail, UPGRADE_FIX), db


# ---- jsonl source --------------------------------------------------------------
def check_jsonl(settings: Settings) -> CheckResult:
    name = "jsonl source"
    scheduler = settings.scheduler
    if scheduler.source != "jsonl":
        return skip(name, f"not configured (scheduler.source is {scheduler.source!r})")
    path = Path(scheduler.jsonl.path).resolve()
    where = "set scheduler.jsonl.path (CATALYST_SCHEDULER__JSONL__PATH) to Catalyst-Bot's "
    if not path.exists():
        return fail(
            name,
            f"{path} does not exist",
            where + "data/accepted_items.jsonl, or start Catalyst-Bot so it creates the file",
        )
    if not path.is_file():
        return fail(name, f"{path} is not a file", where + "accepted items file")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        return fail(
            name,
            f"{path} cannot be read: {exc.strerror or exc.__class__.__name__}",
            "let the user running the hub read the file (and its folders)",
        )
    return ok(name, f"{path} exists and is readable ({path.stat().st_size} bytes)")


# ---- clocks --------------------------------------------------------------------
def _utcnow() -> datetime:
    return datetime.now(UTC)


async def check_clock(
    db: Database, seconds: float, now: Callable[[], datetime] | None = None
) -> CheckResult:
    """Compare the database's now() with this machine's UTC clock."""
    name = "clock"
    clock = now or _utcnow
    query = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')" if db.is_sqlite else "SELECT now()"
    try:
        async with asyncio.timeout(seconds), db.engine.connect() as conn:
            before = clock()
            value = (await conn.execute(text(query))).scalar_one()
            after = clock()
    except Exception as exc:
        return fail(
            name,
            f"cannot read the database's clock: {describe_error(exc)}",
            "check that the database answers (see the database check)",
        )
    db_time = datetime.fromisoformat(value) if isinstance(value, str) else value
    if db_time.tzinfo is None:
        db_time = db_time.replace(tzinfo=UTC)
    local = before + (after - before) / 2
    skew = (db_time - local).total_seconds()
    # The round trip bounds how precisely the two can be compared.
    off = max(0.0, abs(skew) - (after - before).total_seconds() / 2)
    side = "ahead of" if skew > 0 else "behind"
    source = " (SQLite reads this machine's clock)" if db.is_sqlite else ""
    detail = f"the database clock is {abs(skew):.1f}s {side} this machine's UTC clock{source}"
    fix = (
        "synchronise both clocks with NTP (e.g. timedatectl set-ntp true, or chrony) "
        "on this machine and on the database server"
    )
    if off > CLOCK_FAIL_SECONDS:
        return fail(name, f"{detail}; more than {CLOCK_FAIL_SECONDS:g}s apart", fix)
    if off > CLOCK_WARN_SECONDS:
        return warn(name, f"{detail}; more than {CLOCK_WARN_SECONDS:g}s apart", fix)
    return ok(name, detail)
