"""Small facts a platform adapter wants to keep across restarts (namespaced key/value)."""

from __future__ import annotations

from domain.errors import InvalidInput
from storage.database import Database
from storage.repositories import memos as memos_repo


class MemoService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, namespace: str) -> dict[str, str]:
        async with self._db.session() as session:
            return await memos_repo.load(namespace, session=session)

    async def put(self, namespace: str, key: str, value: str) -> None:
        if not (0 < len(namespace) <= 32 and 0 < len(key) <= 64 and len(value) <= 128):
            raise InvalidInput("memo namespace, key or value too long")
        async with self._db.transaction() as session:
            await memos_repo.put(namespace, key, value, session=session)
