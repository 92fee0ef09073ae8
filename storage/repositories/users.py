"""Users, their platform accounts, API keys and account-link codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import (
    Account,
    ApiKey,
    LinkCode,
    StreamReceipt,
    Subscription,
    TradeOutcome,
    User,
)
from storage.repositories import receipts


async def get_user(user_id: int, *, session: AsyncSession) -> User | None:
    return await session.get(User, user_id)


async def list_users(*, session: AsyncSession) -> list[tuple[User, int, int]]:
    """Every user with its number of active API keys and of platform accounts."""
    keys = (
        select(func.count())
        .where(col(ApiKey.user_id) == col(User.id), col(ApiKey.revoked_at).is_(None))
        .scalar_subquery()
    )
    accounts = select(func.count()).where(col(Account.user_id) == col(User.id)).scalar_subquery()
    rows = await session.execute(select(User, keys, accounts).order_by(col(User.id)))
    return [(user, int(k), int(a)) for user, k, a in rows.all()]


async def get_user_by_name(name: str, *, session: AsyncSession) -> User | None:
    return (await session.execute(select(User).where(col(User.name) == name))).scalar_one_or_none()


async def create_user(name: str, *, is_admin: bool = False, session: AsyncSession) -> User:
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def account_user(platform: str, account_id: str, *, session: AsyncSession) -> User | None:
    stmt = (
        select(User)
        .join(Account, col(Account.user_id) == col(User.id))
        .where(col(Account.platform) == platform, col(Account.account_id) == account_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_account(
    platform: str, account_id: str, user_id: int, *, session: AsyncSession
) -> Account:
    account = Account(platform=platform, account_id=account_id, user_id=user_id)
    session.add(account)
    await session.flush()
    return account


async def merge_users(keep_id: int, drop_id: int, *, session: AsyncSession) -> None:
    """Move everything ``drop_id`` owns to ``keep_id``. Outcomes ``keep_id`` already
    has for the same signal win; the dropped user row stays, owning nothing."""
    for model in (Account, ApiKey, Subscription, LinkCode):
        await session.execute(
            update(model).where(col(model.user_id) == drop_id).values(user_id=keep_id)
        )
    kept = select(col(TradeOutcome.signal_seq)).where(col(TradeOutcome.user_id) == keep_id)
    await session.execute(
        update(TradeOutcome)
        .where(col(TradeOutcome.user_id) == drop_id, col(TradeOutcome.signal_seq).not_in(kept))
        .values(user_id=keep_id)
    )
    moved = await receipts.received(drop_id, session=session)
    if moved:
        await receipts.add({keep_id: moved}, session=session)
        await session.execute(delete(StreamReceipt).where(col(StreamReceipt.user_id) == drop_id))


async def add_link_code(code: LinkCode, *, session: AsyncSession) -> None:
    session.add(code)
    await session.flush()


async def take_link_code(code: str, now: datetime, *, session: AsyncSession) -> LinkCode | None:
    """Mark an unused, unexpired code used and return it; None if not redeemable."""
    row = await session.get(LinkCode, code)
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    session.add(row)
    await session.flush()
    return row


async def add_api_key(key: ApiKey, *, session: AsyncSession) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def api_key_by_hash(key_hash: str, *, session: AsyncSession) -> ApiKey | None:
    stmt = select(ApiKey).where(col(ApiKey.key_hash) == key_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def api_keys_of(user_id: int, *, session: AsyncSession) -> list[ApiKey]:
    stmt = select(ApiKey).where(col(ApiKey.user_id) == user_id).order_by(col(ApiKey.id))
    return list((await session.execute(stmt)).scalars().all())
