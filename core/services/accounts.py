"""Users, platform accounts and account linking across platforms.

A chat user is identified by (platform, account id) and gets a hub user on first
contact. ``/link`` issues a one-time code; redeeming it from another platform (or
the API) merges the two users so one user owns every destination. The older user
survives the merge, so API keys and history stay with the account that had them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from domain.errors import InvalidInput, NotFound
from domain.signals import check_text
from storage.database import Database
from storage.models import LinkCode, User, utcnow
from storage.repositories import users as users_repo

LINK_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LINK_CODE_LENGTH = 8
LINK_TTL = timedelta(minutes=15)
USER_NAME_RE = re.compile(r"[A-Za-z0-9_.:@\-]{1,64}\Z")
#: What a redeemed code may look like (issued codes use LINK_ALPHABET); checked
#: before the lookup so NUL or a lone surrogate never reaches the database.
LINK_CODE_RE = re.compile(r"[A-Z0-9]{1,32}\Z")


@dataclass(frozen=True, slots=True)
class UserRef:
    id: int
    name: str
    is_admin: bool

    @classmethod
    def of(cls, user: User) -> UserRef:
        assert user.id is not None
        return cls(user.id, user.name, user.is_admin)


class AccountService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_user(self, name: str, *, is_admin: bool = False) -> UserRef:
        name = name.strip()
        if not USER_NAME_RE.fullmatch(name):
            raise InvalidInput("user name must be 1-64 letters, digits or _.:@-", field="name")
        async with self._db.transaction() as session:
            if await users_repo.get_user_by_name(name, session=session) is not None:
                raise InvalidInput(f"user {name!r} already exists", field="name")
            return UserRef.of(
                await users_repo.create_user(name, is_admin=is_admin, session=session)
            )

    async def get_user(self, user_id: int) -> UserRef | None:
        async with self._db.session() as session:
            user = await users_repo.get_user(user_id, session=session)
            return UserRef.of(user) if user is not None else None

    async def list_users(self) -> list[tuple[UserRef, int, int]]:
        """Every user, with its active API keys and platform accounts counted."""
        async with self._db.session() as session:
            rows = await users_repo.list_users(session=session)
        return [(UserRef.of(user), keys, accounts) for user, keys, accounts in rows]

    async def find_user(self, name_or_id: str) -> UserRef:
        try:
            check_text(name_or_id)
        except ValueError:
            raise NotFound(f"no user named {name_or_id[:64]!r}") from None
        async with self._db.session() as session:
            user = await users_repo.get_user_by_name(name_or_id, session=session)
            if user is None and name_or_id.isdigit():
                user = await users_repo.get_user(int(name_or_id), session=session)
            if user is None:
                raise NotFound(f"no user named {name_or_id!r}")
            return UserRef.of(user)

    async def ensure_user(self, name: str, *, is_admin: bool = False) -> UserRef:
        async with self._db.transaction() as session:
            user = await users_repo.get_user_by_name(name, session=session)
            if user is None:
                user = await users_repo.create_user(name, is_admin=is_admin, session=session)
            return UserRef.of(user)

    async def resolve(self, platform: str, account_id: str | int) -> UserRef:
        """The hub user behind a platform account, created on first contact."""
        account = str(account_id)
        async with self._db.transaction() as session:
            user = await users_repo.account_user(platform, account, session=session)
            if user is not None:
                return UserRef.of(user)
            name = f"{platform}:{account}"[:64]
            user = await users_repo.get_user_by_name(name, session=session)
            if user is None:
                user = await users_repo.create_user(name, session=session)
            assert user.id is not None
            await users_repo.add_account(platform, account, user.id, session=session)
            return UserRef.of(user)

    async def issue_link_code(self, user_id: int, platform: str) -> str:
        code = "".join(secrets.choice(LINK_ALPHABET) for _ in range(LINK_CODE_LENGTH))
        now = utcnow()
        async with self._db.transaction() as session:
            await users_repo.add_link_code(
                LinkCode(
                    code=code,
                    user_id=user_id,
                    platform=platform,
                    created_at=now,
                    expires_at=now + LINK_TTL,
                ),
                session=session,
            )
        return code

    async def redeem_link_code(self, code: str, user_id: int) -> UserRef:
        """Merge the code's issuer and ``user_id`` into one user (the older survives)."""
        normalized = (code or "").strip()
        if normalized.isascii():  # Unicode upper-casing would turn "ß" into "SS"
            normalized = normalized.upper()
        if not LINK_CODE_RE.fullmatch(normalized):
            raise InvalidInput("a link code is 8 letters and digits, e.g. K7PQ2M9X", field="code")
        async with self._db.transaction() as session:
            row = await users_repo.take_link_code(normalized, utcnow(), session=session)
            if row is None:
                raise NotFound("that link code is unknown, used or expired; run /link again")
            if row.user_id == user_id:
                raise InvalidInput("that code was issued to this same account", field="code")
            keep, drop = sorted((row.user_id, user_id))
            await users_repo.merge_users(keep, drop, session=session)
            user = await users_repo.get_user(keep, session=session)
            assert user is not None
            return UserRef.of(user)
