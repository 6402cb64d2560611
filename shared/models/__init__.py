"""SQLAlchemy models shared by the gateway, the console, the CLI and the migrations."""

from __future__ import annotations

from shared.models.base import Base, metadata
from shared.models.channel import Channel, ModelPrice
from shared.models.ledger import Hold, LedgerEntry
from shared.models.redeem import RedeemCode
from shared.models.setting import Setting
from shared.models.tenancy import ApiKey, Group, Tenant
from shared.models.usage import usage_log
from shared.models.user import ConsoleSession, ConsoleUser, SigninFailure

__all__ = (
    "ApiKey",
    "Base",
    "Channel",
    "ConsoleSession",
    "ConsoleUser",
    "Group",
    "Hold",
    "LedgerEntry",
    "ModelPrice",
    "RedeemCode",
    "Setting",
    "SigninFailure",
    "Tenant",
    "metadata",
    "usage_log",
)
