"""API keys and JWTs.

API keys look like ``catalyst_<43 url-safe chars>`` and are stored only as their
SHA-256 (they carry 256 bits of entropy, so a fast hash is the right tool, not a
password hash). JWTs are HS256 with numeric ``exp`` and ``iat``, validated by PyJWT.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import update
from sqlmodel import col

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.services.accounts import UserRef
from storage.database import Database
from storage.models import ApiKey, utcnow
from storage.repositories import users as users_repo

log = logging.getLogger(__name__)

KEY_PREFIX = "catalyst_"
SCOPES = ("read", "feedback", "publish", "admin")
DEFAULT_SCOPES = ("read", "feedback")
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "catalyst-signal-hub"
LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes: list[str] = []
    for item in items:
        scope = item.strip().lower()
        if not scope:
            continue
        if scope not in SCOPES:
            raise InvalidInput(
                f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}", field="scope"
            )
        if scope not in scopes:
            scopes.append(scope)
    if not scopes:
        raise InvalidInput(f"give at least one scope of {', '.join(SCOPES)}", field="scope")
    return tuple(scopes)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, with what scopes; ``admin`` implies every scope."""

    user: UserRef
    scopes: frozenset[str]
    key_id: int | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    user_id: int
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked: bool


class AuthService:
    def __init__(self, db: Database, jwt_secret: str, token_ttl_minutes: int = 60) -> None:
        self._db = db
        self._secret = jwt_secret
        self._ttl = timedelta(minutes=token_ttl_minutes)

    # ---- API keys -------------------------------------------------------
    async def create_key(
        self, user_id: int, scopes: tuple[str, ...] = DEFAULT_SCOPES
    ) -> tuple[str, KeyInfo]:
        """Create a key; the plaintext is returned once and never stored."""
        scopes = parse_scopes(list(scopes))
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._db.transaction() as session:
            if await users_repo.get_user(user_id, session=session) is None:
                raise NotFound(f"no user with id {user_id}")
            row = await users_repo.add_api_key(
                ApiKey(
                    user_id=user_id,
                    prefix=key[: len(KEY_PREFIX) + 6],
                    key_hash=hash_key(key),
                    scopes=",".join(scopes),
                ),
                session=session,
            )
            return key, _info(row)

    async def authenticate_key(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        async with self._db.session() as session:
            row = await users_repo.api_key_by_hash(hash_key(key), session=session)
            if row is None or row.revoked_at is not None:
                return None
            user = await users_repo.get_user(row.user_id, session=session)
            if user is None:
                return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_GRANULARITY:
            await self._touch(row.id, now)  # at most one write a minute per key
        scopes = frozenset(row.scopes.split(","))
        if user.is_admin:
            scopes |= {"admin"}
        return Principal(UserRef.of(user), scopes, row.id)

    async def _touch(self, key_id: int | None, now: datetime) -> None:
        """Record when a key was last used; best effort, never fails an authentication."""
        try:
            async with self._db.transaction() as session:
                await session.execute(
                    update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now)
                )
        except Exception:
            log.warning("could not record the last use of API key %s", key_id, exc_info=True)

    async def revoke_key(self, key_id: int, *, user_id: int | None = None) -> KeyInfo:
        """Revoke a key; with ``user_id``, only that user's own key."""
        async with self._db.transaction() as session:
            row = await session.get(ApiKey, key_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                raise NotFound(f"no API key with id {key_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.add(row)
            return _info(row)

    async def list_keys(self, user_id: int) -> list[KeyInfo]:
        async with self._db.session() as session:
            return [_info(r) for r in await users_repo.api_keys_of(user_id, session=session)]

    # ---- JWT ------------------------------------------------------------
    def issue_token(self, principal: Principal) -> tuple[str, int]:
        """A JWT for ``principal``; returns (token, expires_in seconds)."""
        now = datetime.now(UTC)
        payload = {
            "sub": str(principal.user.id),
            "name": principal.user.name,
            "scopes": sorted(principal.scopes),
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "iss": JWT_ISSUER,
        }
        if principal.key_id is not None:
            payload["kid"] = principal.key_id
        token = jwt.encode(payload, self._secret, algorithm=JWT_ALGORITHM)
        return token, int(self._ttl.total_seconds())

    async def authenticate_token(self, token: str) -> Principal | None:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        try:
            user_id = int(payload["sub"])
        except (TypeError, ValueError):
            return None
        async with self._db.session() as session:
            user = await users_repo.get_user(user_id, session=session)
            kid = payload.get("kid")
            if isinstance(kid, int):
                key = await session.get(ApiKey, kid)
                if key is None or key.revoked_at is not None:
                    return None
        if user is None:
            return None
        scopes = frozenset(s for s in payload.get("scopes", []) if s in SCOPES)
        return Principal(UserRef.of(user), scopes, kid if isinstance(kid, int) else None)

    async def authenticate(self, credential: str) -> Principal | None:
        """An API key or a JWT, whichever ``credential`` is."""
        credential = (credential or "").strip()
        if not credential:
            return None
        if credential.startswith(KEY_PREFIX):
            return await self.authenticate_key(credential)
        return await self.authenticate_token(credential)

    @staticmethod
    def require(principal: Principal, scope: str) -> None:
        if not principal.has(scope):
            raise PermissionDenied(f"this key lacks the {scope!r} scope")


def _info(row: ApiKey) -> KeyInfo:
    assert row.id is not None
    return KeyInfo(
        row.id,
        row.user_id,
        row.prefix,
        tuple(row.scopes.split(",")),
        row.created_at,
        row.revoked_at is not None,
    )
