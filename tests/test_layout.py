"""The dependency rule: hub -> bots/api -> core -> storage -> domain, never back.

``domain`` is the pure rules (signals, filters, outcome arithmetic): no database,
no network, no other hub package. So a core rule is testable without a database,
and storage may use the domain types without reaching up into core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_IO = {"sqlalchemy", "sqlmodel", "asyncpg", "aiosqlite", "alembic", "httpx", "websockets",
       "asyncio", "socket", "os", "pathlib", "logging"}
FORBIDDEN = {
    "domain": {"core", "storage", "bots", "api", "hub", "discord", "telegram", "fastapi"} | _IO,
    "core": {"bots", "api", "hub", "discord", "telegram", "fastapi", "starlette", "uvicorn"},
    "storage": {"core", "bots", "api", "hub", "discord", "telegram", "fastapi"},
    "bots": {"api", "hub"},
    "api": {"bots", "hub"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rule(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for name in _imports(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_web_factory_builds_the_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    from hub.web import create_app

    app = create_app()  # builds, connects nothing: no database file yet
    assert "/api/v1/signals" in app.openapi()["paths"]
    assert not (tmp_path / "catalyst.db").exists()
