"""Settings: TOML file, environment overrides, clear errors, production secrets."""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from core.settings import Settings, load_settings
from domain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_embedded_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.database.url == "sqlite+aiosqlite:///./catalyst.db"
    assert s.scheduler.source == "demo" and s.console.enabled
    assert s.api.port == 8000 and s.limits.max_connections_per_ip == 300


def test_toml_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[scheduler]\ninterval_seconds = 5\nsource = "jsonl"\n[api]\nport = 9000\n')
    monkeypatch.setenv("CATALYST_API__PORT", "9100")
    monkeypatch.setenv("CATALYST_DATABASE__URL", "postgresql://u@127.0.0.1/db")
    s = load_settings(cfg)
    assert s.scheduler.interval_seconds == 5 and s.scheduler.source == "jsonl"
    assert s.api.port == 9100
    assert s.database.url == "postgresql+asyncpg://u@127.0.0.1/db"


def test_config_toml_in_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text("[dispatcher]\nttl_seconds = 42\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().dispatcher.ttl_seconds == 42


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[scheduler]\ninterval_seconds = -1\n",
            "scheduler.interval_seconds: Input should be greater than 0",
        ),
        ("[api]\nport = 70000\n", "api.port"),
        ('[scheduler]\nsource = "nonsense"\n', "scheduler.source"),
        ('[databse]\nurl = "x"\n', "databse: unknown key"),
        (
            '[database]\nurl = "mysql://x"\n',
            "database.url: must be a sqlite:/// or postgresql:// URL",
        ),
        ("[telegram]\nenabled = true\n", "telegram.token: required"),
        ("this is not toml", "is not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert message in str(err.value)


def test_bad_environment_value_names_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_LIMITS__MAX_CONNECTIONS_PER_IP", "many")
    with pytest.raises(ConfigError, match="limits.max_connections_per_ip"):
        load_settings()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("secret", ["", "secret", "changeme", "short-but-not-placeholder"])
def test_production_refuses_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_ENV", "production")
    monkeypatch.setenv("CATALYST_AUTH__JWT_SECRET", secret)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "auth.jwt_secret" in str(err.value)
    assert len(secret) < 8 or secret not in str(err.value)


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_ENV", "production")
    monkeypatch.setenv("CATALYST_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
    assert load_settings().env == "production"


def test_secrets_are_masked_when_printed() -> None:
    s = Settings(telegram={"token": "123456:SECRET-TOKEN"})
    assert "SECRET-TOKEN" not in repr(s) and "SECRET-TOKEN" not in str(s.model_dump())


def _keys(model: BaseModel, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= _keys(value, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def _toml_keys(data: dict[str, object], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _toml_keys(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_example_config_documents_every_key_with_its_default() -> None:
    data = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert _toml_keys(data) == _keys(Settings())
    example = Settings(**data)
    defaults = Settings()
    assert example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 40,
        "password" * 5,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
        "x" * 16 + "0123456789abcdefghij",
        "aabbccddaabbccddaabbccddaabbccdd11",
    ],
)
def test_production_refuses_long_but_weak_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret: str
) -> None:
    """Length alone is not randomness: repeated units, runs and low entropy fail."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_ENV", "production")
    monkeypatch.setenv("CATALYST_AUTH__JWT_SECRET", secret)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "auth.jwt_secret" in str(err.value) and secret not in str(err.value)


def test_production_accepts_random_hex_and_urlsafe_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_ENV", "production")
    for secret in [secrets.token_hex(16) for _ in range(50)] + [secrets.token_urlsafe(32)]:
        monkeypatch.setenv("CATALYST_AUTH__JWT_SECRET", secret)
        assert load_settings().env == "production"


def test_lists_from_the_environment_may_be_comma_separated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_TELEGRAM__ADMIN_USER_IDS", "1, 2")
    monkeypatch.setenv("CATALYST_API__CORS_ORIGINS", "http://x.com,https://y.org")
    monkeypatch.setenv("CATALYST_DISCORD__GUILD_IDS", "[7, 8]")
    settings = load_settings()
    assert settings.telegram.admin_user_ids == [1, 2]
    assert settings.api.cors_origins == ["http://x.com", "https://y.org"]
    assert settings.discord.guild_ids == [7, 8]
    (tmp_path / "config.toml").write_text('[api]\ncors_origins = ["http://toml.example"]\n')
    monkeypatch.delenv("CATALYST_API__CORS_ORIGINS")
    assert load_settings().api.cors_origins == ["http://toml.example"]


def test_errors_name_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_TELEGRAM__ADMIN_USER_IDS", "1,bob")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "telegram.admin_user_ids.1 (from CATALYST_TELEGRAM__ADMIN_USER_IDS)" in str(err.value)
    monkeypatch.delenv("CATALYST_TELEGRAM__ADMIN_USER_IDS")
    monkeypatch.setenv("CATALYST_API__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"api\.port \(from CATALYST_API__PORT\)"):
        load_settings()


def test_logging_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALYST_LOGGING__LEVEL", "debug")
    assert load_settings().logging.level == "DEBUG"


def test_precedence_environment_then_overrides_then_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[api]\nport = 9000\nhost = "0.0.0.0"\n[dispatcher]\nttl_seconds = 42\n')
    s = load_settings(cfg, api={"port": 9001})
    assert (s.api.port, s.api.host, s.dispatcher.ttl_seconds) == (9001, "0.0.0.0", 42)
    monkeypatch.setenv("CATALYST_API__PORT", "9002")
    s = load_settings(cfg, api={"port": 9001})
    assert (s.api.port, s.api.host) == (9002, "0.0.0.0")


def test_settings_built_directly_read_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text("[api]\nport = 9000\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().api.port == 8000
    assert load_settings().api.port == 9000
    assert Settings().api.port == 8000  # load_settings leaves nothing behind


def test_unreadable_config_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*: not a file"):
        load_settings(tmp_path)
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes(b'[api]\nhost = "\xff"\n')
    with pytest.raises(ConfigError, match="cannot read config file .*UnicodeDecodeError"):
        load_settings(cfg)


def test_errors_never_show_a_secret_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[telegram]\nenabled = "SECRET-VALUE"\ntoken = 123456\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "telegram.enabled" in str(err.value) and "telegram.token" in str(err.value)
    assert "SECRET-VALUE" not in str(err.value) and "123456" not in str(err.value)
