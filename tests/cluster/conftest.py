"""Fixtures for the multi-process tests: a :class:`Cluster` on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.procs import Cluster


@pytest.fixture
def cluster(fresh_pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Role processes on a new, migrated database; every one is stopped afterwards."""
    group = Cluster(fresh_pg_url, tmp_path)
    try:
        group.upgrade()
        yield group
    finally:
        group.close()
