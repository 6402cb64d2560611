"""Who pays: groups (price ratios), tenants (balances) and their API keys."""

from __future__ import annotations

import datetime
from decimal import Decimal

from sqlalchemy import ARRAY, BigInteger, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base


class Group(Base):
    """A pricing group; every price is multiplied by its ratio for its tenants."""

    __tablename__ = "tenant_group"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    ratio: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(1))
    """Multiplier applied to every price, e.g. ``0.8`` for a 20% discount."""


class Tenant(Base):
    """A customer account with a prepaid balance.

    ``balance`` always equals the sum of the tenant's ledger; ``held`` is the sum of its
    open holds. Both are nano-dollars.
    """

    __tablename__ = "tenant"

    name: Mapped[str] = mapped_column(String(128), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tenant_group.id"))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")


class ApiKey(Base):
    """A tenant's API key, stored as a SHA-256 hash plus a display prefix."""

    __tablename__ = "api_key"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Hex SHA-256 of the full key; the key itself is never stored."""
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the key, shown to people to tell keys apart."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime.datetime | None] = mapped_column(default=None)
    models: Mapped[list[str] | None] = mapped_column(ARRAY(Text), default=None)
    """Model names this key may use; every model when unset."""
    spend_limit: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """Most this key may spend in its lifetime, nano-dollars; unlimited when unset."""
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    rpm_limit: Mapped[int | None] = mapped_column(default=None)
    """Requests per minute; unlimited when unset."""
