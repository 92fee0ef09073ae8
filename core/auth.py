"""API keys and JWTs.

API keys look like ``catalyst_<43 url-safe chars>`` and are stored only as their
SHA-256 (they carry 256 bits of entropy, so a fast hash is the right tool, not a
password hash). JWTs are HS256; PyJWT checks the signature and this module checks
every claim's type itself (numeric ``exp`` and ``iat``, never a digit string).

A credential's power is exactly its scopes: ``admin`` grants the admin endpoints
and nothing else, and only an admin user's key may carry it (refused when the key
is created; dropped at use if the user is no longer an admin).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.api_jws import PyJWS
from sqlalchemy import select, update
from sqlmodel import col

from core.services.accounts import UserRef
from domain.errors import InvalidInput, NotFound, PermissionDenied
from storage.database import Database
from storage.models import ApiKey, User, utcnow
from storage.repositories import users as users_repo

log = logging.getLogger(__name__)

KEY_PREFIX = "catalyst_"
SCOPES = ("read", "feedback", "publish", "admin")
DEFAULT_SCOPES = ("read", "feedback")
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "catalyst-signal-hub"
LAST_USED_GRANULARITY = timedelta(minutes=1)
#: Longer credentials are refused unread (a JWT we issue is about 300 characters).
MAX_CREDENTIAL_CHARS = 4096
#: Clock skew allowed for ``iat`` and ``nbf`` between hub processes.
CLOCK_SKEW_SECONDS = 30
MAX_ID = 2**63 - 1
#: Ids per ``IN (...)`` of the batched credential check.
CHECK_CHUNK = 500
#: Credentials remembered by the authentication cache (the oldest go first).
CACHE_SIZE = 10_000


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
    """Who is calling, with what scopes (exactly those: ``admin`` implies no other)."""

    user: UserRef
    scopes: frozenset[str]
    key_id: int | None = None
    #: A JWT's ``exp`` (Unix time); None for an API key, which lasts until revoked.
    expires_at: float | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims of a correctly signed, unexpired JWT, each of the right type."""

    user_id: int
    scopes: frozenset[str]
    expires_at: float
    key_id: int | None


def _scopes_for(stored: str | Sequence[str], is_admin: bool) -> frozenset[str]:
    """The scopes a credential holds now: the known ones, ``admin`` only for an admin."""
    items = stored.split(",") if isinstance(stored, str) else stored
    scopes = frozenset(s for s in items if s in SCOPES)
    return scopes if is_admin else scopes - {"admin"}


def _number(value: Any) -> float | None:
    """A JSON number claim (NumericDate): an int or a finite float, never a bool or a
    string (PyJWT alone accepts ``"exp": "1999999999"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if -MAX_ID <= value <= MAX_ID else None
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _user_id(value: Any) -> int | None:
    """``sub`` as issued: a string of ASCII digits, or an int."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def parse_claims(payload: Any, now: float) -> TokenClaims | None:
    """Type-check a verified JWT payload; None when any claim is missing, of the wrong
    type, unknown (``scopes``), or says the token is not (or no longer) valid."""
    if not isinstance(payload, dict):
        return None
    exp = _number(payload.get("exp"))
    iat = _number(payload.get("iat"))
    if exp is None or iat is None or now >= exp or iat > now + CLOCK_SKEW_SECONDS:
        return None
    if "nbf" in payload:
        nbf = _number(payload["nbf"])
        if nbf is None or nbf > now + CLOCK_SKEW_SECONDS:
            return None
    iss = payload.get("iss")
    if not isinstance(iss, str) or iss != JWT_ISSUER or "aud" in payload:
        return None
    user_id = _user_id(payload.get("sub"))
    scopes = payload.get("scopes")
    if (
        user_id is None
        or not isinstance(scopes, list)
        or len(scopes) > 2 * len(SCOPES)
        or not all(isinstance(s, str) and s in SCOPES for s in scopes)
    ):
        return None
    kid = payload.get("kid")
    if "kid" in payload and (
        not isinstance(kid, int) or isinstance(kid, bool) or not 0 < kid <= MAX_ID
    ):
        return None
    return TokenClaims(user_id, frozenset(scopes), exp, kid)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    user_id: int
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked: bool


class AuthService:
    """Keys, tokens and who they belong to.

    :meth:`authenticate` remembers each credential it verified for ``cache_seconds``
    (keyed by the credential's SHA-256, never the credential itself), so the requests
    of a busy client cost no database read. That is also how long a key revoked by
    another process (the CLI) keeps working for new requests here; a revocation in
    this process ends it at once, and open WebSockets are re-checked against the
    database regardless (``api.ws``). A cached JWT never outlives its ``exp``.
    Recording a key's last use (once a minute) runs in the background, off the
    request's path: reads never wait for a write."""

    def __init__(
        self,
        db: Database,
        jwt_secret: str,
        token_ttl_minutes: int = 60,
        *,
        cache_seconds: float = 0.0,
    ) -> None:
        self._db = db
        self._secret = jwt_secret
        self._ttl = timedelta(minutes=token_ttl_minutes)
        self._jws = PyJWS()
        self._cache_seconds = cache_seconds
        #: SHA-256 of a credential -> (monotonic deadline, principal); insertion order.
        self._cache: dict[str, tuple[float, Principal]] = {}
        #: Key id -> monotonic time its last use was last recorded (or attempted).
        self._stamped: dict[int, float] = {}
        self._stamping: set[asyncio.Task[None]] = set()
        #: Credentials being checked now (SHA-256 -> the answer), shared by askers.
        self._asking: dict[str, asyncio.Future[Principal | None]] = {}

    @property
    def cache_seconds(self) -> float:
        return self._cache_seconds

    def forget(self, *, key_id: int | None = None, user_id: int | None = None) -> None:
        """Drop cached credentials of a key or a user (after a change in this process)."""
        for digest, (_deadline, p) in list(self._cache.items()):
            if (key_id is not None and p.key_id == key_id) or (
                user_id is not None and p.user.id == user_id
            ):
                self._cache.pop(digest, None)

    def _cached(self, digest: str, now: float) -> Principal | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        deadline, principal = entry
        if now >= deadline or principal.expired():
            self._cache.pop(digest, None)
            return None
        return principal

    def _remember(self, digest: str, principal: Principal, now: float) -> None:
        if self._cache_seconds <= 0:
            return
        self._cache.pop(digest, None)
        if len(self._cache) >= CACHE_SIZE:
            for old in [d for d, (deadline, _p) in self._cache.items() if deadline <= now]:
                del self._cache[old]
            while len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = (now + self._cache_seconds, principal)

    def _stamp_later(self, key_id: int | None, last_used_at: datetime | None = None) -> None:
        """Record the key's use in the background, at most once a minute per key."""
        if key_id is None:
            return
        now = time.monotonic()
        granularity = LAST_USED_GRANULARITY.total_seconds()
        last = self._stamped.get(key_id)
        if last is not None and now - last < granularity:
            return
        stamp = utcnow()
        if (
            last is None
            and last_used_at is not None
            and stamp - last_used_at < LAST_USED_GRANULARITY
        ):
            # Stamped recently (by another process or before a restart).
            self._stamped[key_id] = now - (stamp - last_used_at).total_seconds()
            return
        self._stamped[key_id] = now
        if len(self._stamped) > CACHE_SIZE:
            for old in [k for k, t in self._stamped.items() if now - t >= granularity]:
                del self._stamped[old]
        task = asyncio.get_running_loop().create_task(self._touch(key_id, stamp))
        self._stamping.add(task)
        task.add_done_callback(self._stamping.discard)

    async def settle(self) -> None:
        """Wait for the last-use stamps in flight (shutdown, tests)."""
        while self._stamping:
            await asyncio.gather(*list(self._stamping), return_exceptions=True)

    # ---- API keys -------------------------------------------------------
    async def create_key(
        self, user_id: int, scopes: tuple[str, ...] = DEFAULT_SCOPES
    ) -> tuple[str, KeyInfo]:
        """Create a key; the plaintext is returned once and never stored. The ``admin``
        scope is refused (PermissionDenied) unless the user is an admin."""
        scopes = parse_scopes(list(scopes))
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._db.transaction() as session:
            user = await users_repo.get_user(user_id, session=session)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            if "admin" in scopes and not user.is_admin:
                raise PermissionDenied(
                    f"the admin scope is only for admin users and {user.name!r} is not one; "
                    "choose other scopes (read, feedback, publish), or give the key to an "
                    "admin user (catalyst user create NAME --admin)"
                )
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
        self._stamp_later(row.id, row.last_used_at)  # in the background, once a minute
        return Principal(UserRef.of(user), _scopes_for(row.scopes, user.is_admin), row.id)

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
            info = _info(row)
        self.forget(key_id=key_id)
        return info

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

    def verify_token(self, token: str, now: float | None = None) -> TokenClaims | None:
        """The claims of ``token`` if it is correctly signed, unexpired and every claim
        has the right type; None otherwise (never raises, whatever the token)."""
        if len(token) > MAX_CREDENTIAL_CHARS or not token.isascii():
            return None
        try:
            payload = json.loads(self._jws.decode(token, self._secret, algorithms=[JWT_ALGORITHM]))
        except Exception:  # malformed in any way (bad base64, JSON, signature...): invalid
            return None
        return parse_claims(payload, time.time() if now is None else now)

    async def authenticate_token(self, token: str) -> Principal | None:
        claims = self.verify_token(token)
        if claims is None:
            return None
        async with self._db.session() as session:
            user = await users_repo.get_user(claims.user_id, session=session)
            if user is None:
                return None
            if claims.key_id is not None:
                key = await session.get(ApiKey, claims.key_id)
                if key is None or key.revoked_at is not None or key.user_id != user.id:
                    return None
        return Principal(
            UserRef.of(user),
            _scopes_for(tuple(claims.scopes), user.is_admin),
            claims.key_id,
            claims.expires_at,
        )

    async def still_valid(self, principals: Sequence[Principal]) -> list[bool]:
        """Whether each principal's credential still stands: a JWT has not expired, its
        API key exists, is not revoked and still belongs to its user, the user exists
        (and is still an admin when the principal holds ``admin``). One query per
        CHECK_CHUNK keys (a join with their users), plus one for JWTs without a key."""
        keys: dict[int, tuple[int, bool, bool]] = {}  # key id -> (user id, revoked, admin)
        users: dict[int, bool] = {}  # user id -> admin
        key_ids = sorted({p.key_id for p in principals if p.key_id is not None})
        keyless = sorted({p.user.id for p in principals if p.key_id is None})
        async with self._db.session() as session:
            for start in range(0, len(key_ids), CHECK_CHUNK):
                chunk = key_ids[start : start + CHECK_CHUNK]
                key_rows = await session.execute(
                    select(
                        col(ApiKey.id),
                        col(ApiKey.user_id),
                        col(ApiKey.revoked_at),
                        col(User.is_admin),
                    )
                    .join(User, col(User.id) == col(ApiKey.user_id))
                    .where(col(ApiKey.id).in_(chunk))
                )
                for key_id, user_id, revoked_at, is_admin in key_rows:
                    if key_id is not None:
                        keys[key_id] = (user_id, revoked_at is not None, bool(is_admin))
            for start in range(0, len(keyless), CHECK_CHUNK):
                chunk = keyless[start : start + CHECK_CHUNK]
                user_rows = await session.execute(
                    select(col(User.id), col(User.is_admin)).where(col(User.id).in_(chunk))
                )
                for uid, admin_flag in user_rows:
                    if uid is not None:
                        users[uid] = bool(admin_flag)
        now = time.time()
        out: list[bool] = []
        for p in principals:
            if p.expired(now):
                out.append(False)
                continue
            if p.key_id is not None:
                row = keys.get(p.key_id)
                ok = row is not None and row[0] == p.user.id and not row[1]
                admin = row is not None and row[2]
            else:
                ok = p.user.id in users
                admin = users.get(p.user.id, False)
            out.append(ok and (admin or "admin" not in p.scopes))
        return out

    async def authenticate(self, credential: str) -> Principal | None:
        """An API key or a JWT, whichever ``credential`` is."""
        credential = (credential or "").strip()
        if not credential or len(credential) > MAX_CREDENTIAL_CHARS or not credential.isascii():
            return None
        digest = hash_key(credential)
        now = time.monotonic()
        principal = self._cached(digest, now)
        if principal is not None:
            if credential.startswith(KEY_PREFIX):
                self._stamp_later(principal.key_id)
            return principal
        asking = self._asking.get(digest)
        if asking is not None:  # the same credential is being checked: share the answer
            return await asyncio.shield(asking)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._asking[digest] = future
        try:
            if credential.startswith(KEY_PREFIX):
                principal = await self.authenticate_key(credential)
            else:
                principal = await self.authenticate_token(credential)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
            raise
        finally:
            del self._asking[digest]
        future.set_result(principal)
        if principal is not None:
            self._remember(digest, principal, now)
        return principal

    @staticmethod
    def require(principal: Principal, scope: str) -> None:
        if not principal.has(scope):
            raise PermissionDenied(f"this key lacks the {scope!r} scope")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared answer's exception as seen (its askers get it; there may be none)."""
    if not future.cancelled():
        future.exception()


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
