"""Redemption codes: prepaid amounts a tenant turns into balance, once."""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

__all__ = ("RedeemCode",)


class RedeemCode(Base):
    """A code worth ``amount`` nano-dollars, stored as the SHA-256 of the code."""

    __tablename__ = "redeem_code"

    batch: Mapped[str] = mapped_column(String(64), index=True)
    """The name of the batch the code was generated in."""
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the code, shown to people to tell codes apart."""
    amount: Mapped[int] = mapped_column(BigInteger)
    """Nano-dollars credited on redemption."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    """``active``, ``redeemed`` or ``void``."""
    expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )
    redeemed_tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), default=None)
    redeemed_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("console_user.id", ondelete="SET NULL"), default=None
    )
    redeemed_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )
