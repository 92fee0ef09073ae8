"""One validated settings object for the whole hub.

Values come from, highest priority first:

1. environment variables with the ``CATALYST_`` prefix and ``__`` for nesting
   (``CATALYST_DATABASE__URL``, ``CATALYST_TELEGRAM__TOKEN``);
2. a TOML file (``--config PATH``, else ``./config.toml`` when present), read by
   pydantic-settings' :class:`~pydantic_settings.TomlConfigSettingsSource`;
3. the defaults below, which are the embedded defaults: SQLite in ``./catalyst.db``,
   the demo source, the console channel, the API on 127.0.0.1:8000.

``config.example.toml`` documents every key. :func:`load_settings` turns any bad
value into a :class:`~domain.errors.ConfigError` whose message names the key.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import math
import os
import tomllib
from collections import Counter
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from domain.errors import ConfigError

#: JWT secrets that are obviously not secret; refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "secret", "changeme", "change-me", "change_me", "dev", "development", "placeholder"}
)


#: The TOML file :func:`load_settings` is reading (None: no file). ``Settings(...)``
#: built directly reads no file, as before.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("catalyst_config_file", default=None)

#: Least estimated entropy, in bits, of a production JWT secret.
MIN_SECRET_BITS = 90


def _comma_list(value: Any) -> Any:
    """A list from the environment: ``a,b`` or JSON ``["a","b"]`` (TOML lists pass)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError('is not a JSON list; write a,b or ["a","b"]') from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


#: Lists that an environment variable may give as comma-separated values.
StrList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
IntList = Annotated[list[int], NoDecode, BeforeValidator(_comma_list)]


def weak_secret_reason(secret: str) -> str | None:
    """Why ``secret`` is too weak for production, or None. A random secret of 32+
    characters (``python -c "import secrets; print(secrets.token_urlsafe(32))"``)
    passes; placeholders, short ones, repeated units, runs such as ``abcdef...``
    and low-entropy text do not."""
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder"
    if len(secret) < 32:
        return "is shorter than 32 characters"
    if secret in (secret + secret)[1:-1]:
        return "repeats a shorter part"
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in itertools.pairwise(secret))
    if steps * 2 > len(secret) - 1:
        return "is mostly runs of neighbouring characters"
    counts = Counter(secret)
    bits = -sum(n * math.log2(n / len(secret)) for n in counts.values())
    if bits < MIN_SECRET_BITS:
        return f"looks like about {bits:.0f} bits of entropy, under {MIN_SECRET_BITS}"
    return None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./catalyst.db"
    echo: bool = False
    #: Apply migrations on start. Always done for the embedded SQLite default.
    auto_migrate: bool = True
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        elif value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class JsonlSourceSettings(_Section):
    #: Catalyst-Bot's accepted items file.
    path: str = "data/accepted_items.jsonl"
    #: Most lines read per run.
    max_items_per_run: int = Field(default=500, ge=1)


class SchedulerSettings(_Section):
    enabled: bool = True
    #: The Catalyst job's source: "demo", "jsonl", or a "module:callable" path.
    source: str = "demo"
    interval_seconds: float = Field(default=30.0, gt=0)
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    #: Demo source: signals per run.
    demo_batch: int = Field(default=3, ge=1, le=50)
    jsonl: JsonlSourceSettings = JsonlSourceSettings()

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        value = value.strip()
        if value in ("demo", "jsonl"):
            return value
        module, sep, attr = value.partition(":")
        if not sep or not module or not attr:
            raise ValueError('must be "demo", "jsonl" or a "module:callable" path')
        return value


class DispatcherSettings(_Section):
    enabled: bool = True
    #: Deliveries older than this expire instead of being sent (news goes stale).
    ttl_seconds: float = Field(default=900.0, gt=0)
    #: Alerts held for a digest (quiet hours, digest period, cap) older than this
    #: are left out of it; the digest says how many.
    digest_ttl_seconds: float = Field(default=43_200.0, gt=0, le=7 * 86_400)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    #: Deliveries claimed per round, per channel.
    batch_size: int = Field(default=200, ge=1, le=5000)
    #: How long a claim is held; a crashed worker's claims are retaken after this.
    lease_seconds: float = Field(default=30.0, gt=0)
    #: How often to look for due work when nothing wakes the dispatcher.
    poll_seconds: float = Field(default=1.0, gt=0)
    #: Sends in flight at once per channel.
    concurrency: int = Field(default=64, ge=1, le=1000)
    #: On stop (SIGTERM), how long in-flight sends may take to finish and be recorded.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


class LiveSettings(_Section):
    """How signals published by any process reach this process's WebSocket clients."""

    #: PostgreSQL: LISTEN/NOTIFY wakes the readers as soon as a publish commits.
    listen: bool = True
    #: How often the table is read anyway: SQLite's only wake, and PostgreSQL's
    #: when ``listen`` is off.
    poll_seconds: float = Field(default=0.25, gt=0, le=60)
    #: PostgreSQL with ``listen``: a safety poll, so a lost notification costs latency only.
    fallback_poll_seconds: float = Field(default=2.0, gt=0, le=600)
    #: Newest signals kept in memory per API process (fed by the live feed) to answer
    #: REST reads without the database when they cover the query; 0 turns it off.
    recent_signals: int = Field(default=2000, ge=0, le=100_000)


class ClusterSettings(_Section):
    """Leader election (PostgreSQL advisory locks; lock files on SQLite) for the work
    exactly one process may do: the Catalyst job, Telegram polling, the Discord
    gateway, and sending for each platform."""

    #: How often a leader checks that its lock connection is alive.
    lock_check_seconds: float = Field(default=2.0, gt=0, le=60)
    #: How often a standby tries to take over.
    standby_retry_seconds: float = Field(default=2.0, gt=0, le=600)


class ConsoleSettings(_Section):
    enabled: bool = True
    #: Subscribe a "console" destination (empty filter) on start, so deliveries show.
    auto_subscribe: bool = True


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    cors_origins: StrList = Field(default_factory=list)
    #: Seconds between WebSocket heartbeats, and of silence before closing (4000).
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    heartbeat_timeout_seconds: float = Field(default=120.0, gt=0)
    #: Largest WebSocket frame accepted from a client, in bytes.
    max_message_bytes: int = Field(default=65536, ge=256)
    #: Messages queued for one WebSocket client before it is dropped as too slow.
    client_queue_size: int = Field(default=1000, ge=1)
    # The edge (api/edge.py, api/edge_protocol.py): what an unauthenticated client may hold.
    #: Largest request body, counted while it streams (chunked too); 413 past it.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    #: A request body must arrive whole within this many seconds, else 408.
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    #: A connection must send a complete request head (or WebSocket handshake) within
    #: this many seconds of opening or of its previous response, else it is closed.
    header_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Open TCP connections per client address (REST and WebSocket together; an IPv6
    #: client counts per /64). Keep it above limits.max_connections_per_ip.
    max_open_connections_per_ip: int = Field(default=400, ge=1)
    #: Failed authentications (REST 401, WebSocket 4001) per client address per minute;
    #: past it the address gets 429 with Retry-After.
    auth_failures_per_minute: int = Field(default=20, ge=1)
    #: Reverse proxies (addresses or CIDR networks, "*" for any) whose X-Forwarded-For
    #: and X-Forwarded-Proto are believed. Empty: the TCP peer is the client.
    trusted_proxies: StrList = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            item = item.strip()
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network") from None
            out.append(item)
        return out


class AuthSettings(_Section):
    #: HS256 secret for JWTs. Must be set (32+ characters) outside development.
    jwt_secret: SecretStr = SecretStr("")
    token_ttl_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    #: How long a verified API key or JWT (and its user) is remembered per process, so
    #: repeated requests skip the database; also how long a key revoked by another
    #: process keeps working for new REST requests. 0 turns the cache off.
    cache_seconds: float = Field(default=2.0, ge=0, le=30)


class LimitsSettings(_Section):
    max_connections_per_ip: int = Field(default=300, ge=1)
    max_messages_per_client_per_sec: int = Field(default=8, ge=1)
    rest_requests_per_minute: int = Field(default=600, ge=1)
    #: WebSocket messages waiting to be handled for one connection (with the errors
    #: answering the refused ones, in order); a client that fills it is closed (1008).
    ws_inbox_size: int = Field(default=32, ge=1, le=10_000)
    #: WebSocket ``resume`` requests per user per minute, all of its connections
    #: together (the connect-time ``?after_seq=`` counts as one).
    ws_resumes_per_minute: int = Field(default=6, ge=1)
    #: How far back a ``resume`` may reach, in signals; older gaps are paged over REST.
    ws_resume_max_signals: int = Field(default=10_000, ge=1)
    #: How often open WebSockets' API keys and users are re-checked (revocation,
    #: one batched query); a JWT's ``exp`` is enforced to the second regardless.
    credential_check_seconds: float = Field(default=10.0, gt=0, le=30)
    #: How long a credential check stays fresh for the check made before each message.
    credential_cache_seconds: float = Field(default=2.0, ge=0, le=30)


class TelegramSettings(_Section):
    enabled: bool = False
    token: SecretStr = SecretStr("")
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    secret_token: SecretStr = SecretStr("")
    admin_user_ids: IntList = Field(default_factory=list)


class DiscordSettings(_Section):
    enabled: bool = False
    token: SecretStr = SecretStr("")
    guild_ids: IntList = Field(default_factory=list)
    admin_user_ids: IntList = Field(default_factory=list)


class StatsSettings(_Section):
    """How the outcome ledger is shown to traders."""

    #: Executed trades a (catalyst, confidence) group needs before alerts carry its
    #: hint, and below which a filter preview flags its outcomes as a small sample.
    min_sample: int = Field(default=10, ge=1, le=100_000)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: "text": one readable line per record; "json": one JSON object per line (ts,
    #: level, logger, message, exception, and extras such as signal_id, seq, delivery_id).
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything the hub reads from configuration."""

    model_config = SettingsConfigDict(
        env_prefix="CATALYST_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    #: "development" allows a generated JWT secret; "production" refuses placeholders.
    env: Literal["development", "production"] = "development"
    database: DatabaseSettings = DatabaseSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    live: LiveSettings = LiveSettings()
    cluster: ClusterSettings = ClusterSettings()
    console: ConsoleSettings = ConsoleSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    stats: StatsSettings = StatsSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the values passed in, which override the
        # TOML file's (only load_settings names one); dotenv and secret files are unused.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE.get())
        return (env_settings, init_settings, toml)

    def check_secrets(self) -> None:
        """Refuse placeholder secrets in production."""
        if self.env == "production":
            reason = weak_secret_reason(self.auth.jwt_secret.get_secret_value())
            if reason is not None:
                raise ConfigError(
                    f"auth.jwt_secret: {reason}; production needs a random secret of at "
                    "least 32 characters (set CATALYST_AUTH__JWT_SECRET, e.g. to the output "
                    'of python -c "import secrets; print(secrets.token_urlsafe(32))")'
                )
        if self.telegram.enabled and not self.telegram.token.get_secret_value():
            raise ConfigError("telegram.token: required when telegram.enabled is true")
        if self.telegram.enabled and self.telegram.mode == "webhook":
            if not self.telegram.webhook_url:
                raise ConfigError("telegram.webhook_url: required in webhook mode")
            if not self.telegram.secret_token.get_secret_value():
                raise ConfigError("telegram.secret_token: required in webhook mode")
        if self.discord.enabled and not self.discord.token.get_secret_value():
            raise ConfigError("discord.token: required when discord.enabled is true")

    @property
    def is_sqlite(self) -> bool:
        return self.database.url.startswith("sqlite")


def _env_name(loc: tuple[int | str, ...]) -> str | None:
    """The CATALYST_* variable that set the value at ``loc``, if one did."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    for depth in range(len(parts), 0, -1):
        name = "CATALYST_" + "__".join(parts[:depth]).upper()
        if any(key.upper() == name for key in os.environ):
            return name
    return None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        env = _env_name(err["loc"])
        if env is not None:
            key = f"{key} (from {env})"
        lines.append(f"{key}: {msg}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate.

    ``config_path`` None means ``./config.toml`` when it exists. ``overrides`` take
    precedence over the file's values (used by tests and the CLI); environment
    variables over both.
    """
    path = Path(config_path) if config_path is not None else Path("config.toml")
    if not path.exists():
        if config_path is not None:
            raise ConfigError(f"config file {path} does not exist")
        file: Path | None = None
    elif not path.is_file():  # the source would skip it silently
        raise ConfigError(f"cannot read config file {path}: not a file")
    else:
        file = path
    token = _CONFIG_FILE.set(file)
    try:
        settings = Settings(**overrides)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.__class__.__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # an environment value that is not the JSON it needs
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        _CONFIG_FILE.reset(token)
    settings.check_secrets()
    return settings
