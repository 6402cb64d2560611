"""Redemption codes: generate a batch, redeem one, void the unused.

A code is shown (and exported) once, when its batch is generated; only its SHA-256 is
stored, like an API key. Redeeming marks the code used and credits the tenant through
``tollgate_credit`` with kind ``redeem``, in one transaction, so a code pays out once and
the tenant's balance still equals the sum of its ledger.
"""

from __future__ import annotations

import datetime
import secrets
from typing import TYPE_CHECKING, Final

import msgspec
from sqlalchemy import select, text, update

from shared.errors import InvalidInputError, NotFoundError
from shared.models import RedeemCode
from shared.money import format_usd, parse_usd, usd_to_nanos
from shared.services.users import hash_secret

if TYPE_CHECKING:
    from decimal import Decimal

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ("CODE_PREFIX", "GeneratedCode", "generate_codes", "redeem_code", "void_code")

CODE_PREFIX: Final = "tg-"
MAX_BATCH: Final = 1000
"""Codes one batch may hold."""


class GeneratedCode(msgspec.Struct, frozen=True):
    """A new code as handed to the operator, once."""

    id: int
    code: str
    amount: str
    """USD."""


def _new_code() -> str:
    return CODE_PREFIX + secrets.token_urlsafe(18)


async def generate_codes(
    session: AsyncSession,
    batch: str,
    *,
    count: int,
    amount: str | Decimal,
    expires_at: datetime.datetime | None = None,
) -> list[GeneratedCode]:
    """Create ``count`` codes worth ``amount`` USD each; returns them with their secrets.

    Raises:
        InvalidInputError: for a count outside 1..1000 or an amount that is not positive.
    """
    if not 1 <= count <= MAX_BATCH:
        msg = f"a batch holds 1 to {MAX_BATCH} codes, got {count}"
        raise InvalidInputError(msg)
    try:
        nanos = usd_to_nanos(parse_usd(amount))
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if nanos <= 0:
        msg = f"a code must be worth more than 0 USD, got {amount}"
        raise InvalidInputError(msg)
    codes = [_new_code() for _ in range(count)]
    rows = [
        RedeemCode(
            batch=batch,
            code_hash=hash_secret(code),
            prefix=code[: len(CODE_PREFIX) + 6],
            amount=nanos,
            status="active",
            expires_at=expires_at,
        )
        for code in codes
    ]
    session.add_all(rows)
    await session.commit()
    return [
        GeneratedCode(row.id, code, format_usd(nanos))
        for row, code in zip(rows, codes, strict=True)
    ]


async def redeem_code(
    session: AsyncSession, tenant_id: int, code: str, *, user_id: int | None = None
) -> int:
    """Redeem ``code`` for the tenant; returns the nano-dollars credited.

    Raises:
        NotFoundError: when the code is unknown, already used, void or expired (one
            message for all, so codes cannot be probed).
    """
    row = (
        await session.execute(
            update(RedeemCode)
            .where(
                RedeemCode.code_hash == hash_secret(code.strip()),
                RedeemCode.status == "active",
                (RedeemCode.expires_at.is_(None))
                | (RedeemCode.expires_at > datetime.datetime.now(datetime.UTC)),
            )
            .values(
                status="redeemed",
                redeemed_tenant_id=tenant_id,
                redeemed_user_id=user_id,
                redeemed_at=datetime.datetime.now(datetime.UTC),
            )
            .returning(RedeemCode.id, RedeemCode.amount, RedeemCode.prefix)
        )
    ).one_or_none()
    if row is None:
        await session.rollback()
        msg = "this code is not valid: unknown, already redeemed, void or expired"
        raise NotFoundError(msg)
    code_id, amount, prefix = row
    await session.execute(
        text("SELECT tollgate_credit(:tenant, :amount, 'redeem', :note, :reference)"),
        {
            "tenant": tenant_id,
            "amount": amount,
            "note": f"redeemed code {prefix}…",
            "reference": f"code:{code_id}",
        },
    )
    await session.commit()
    return int(amount)


async def void_code(session: AsyncSession, code_id: int) -> RedeemCode:
    """Void an unused code so that it can no longer be redeemed.

    Raises:
        NotFoundError: when there is no unused code with this id.
    """
    row = await session.scalar(
        select(RedeemCode).where(RedeemCode.id == code_id, RedeemCode.status == "active")
    )
    if row is None:
        msg = f"no unused code {code_id}"
        raise NotFoundError(msg)
    row.status = "void"
    await session.commit()
    return row
