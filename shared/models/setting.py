"""Options that change without a migration, one JSON value per name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

__all__ = ("Setting",)


class Setting(Base):
    """A named option; changes notify running gateways like every configuration table."""

    __tablename__ = "setting"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[Any] = mapped_column(JSONB)
