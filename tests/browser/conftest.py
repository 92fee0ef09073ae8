"""Browser tests: a real uvicorn server (the API tests' ``hub`` fixture) and the
system Chromium (``/usr/bin/chromium``) driven by Playwright's async API.

Playwright's own browser download is never used. Without ``/usr/bin/chromium`` the
browser tests skip, saying so; CI installs it (``.ci/run``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.api.conftest import hub, make_hub  # noqa: F401  (fixtures)

CHROMIUM = Path("/usr/bin/chromium")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: drives the system Chromium (/usr/bin/chromium) through Playwright; "
        "skipped when it is absent; deselect with -m 'not browser'",
    )


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser test: {CHROMIUM} is absent; install Debian's chromium "
            "(apt-get install -y chromium), as .ci/run does"
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()
