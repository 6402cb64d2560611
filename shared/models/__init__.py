"""SQLAlchemy models shared by the gateway, the console, the CLI and the migrations."""

from __future__ import annotations

from shared.models.base import Base, metadata
from shared.models.channel import Channel, ModelPrice
from shared.models.ledger import Hold, LedgerEntry
from shared.models.tenancy import ApiKey, Group, Tenant
from shared.models.usage import usage_log

__all__ = (
    "ApiKey",
    "Base",
    "Channel",
    "Group",
    "Hold",
    "LedgerEntry",
    "ModelPrice",
    "Tenant",
    "metadata",
    "usage_log",
)
