"""Money movements: the append-only ledger and the holds placed before serving."""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base


class LedgerEntry(Base):
    """One change to a tenant's balance; rows are never updated or deleted.

    ``amount`` is signed nano-dollars (credits positive, charges negative) and
    ``balance_after`` the tenant's balance once it applied.
    """

    __tablename__ = "ledger_entry"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    """``topup``, ``charge``, ``adjustment`` or ``redeem``."""
    reference: Mapped[str | None] = mapped_column(String(64), default=None)
    """The request id for a charge; unique among charges, so nothing is billed twice."""
    note: Mapped[str] = mapped_column(Text, default="")


class Hold(Base):
    """Money set aside for a request in flight, released at settlement or expiry."""

    __tablename__ = "hold"

    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime.datetime] = mapped_column(index=True)
