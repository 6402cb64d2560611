"""Where requests go: upstream channels and the prices of the models they serve."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import ARRAY, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base


class Channel(Base):
    """An upstream account of one protocol kind that serves a list of models."""

    __tablename__ = "channel"

    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    """Upstream protocol: ``openai``, ``anthropic``, ``gemini`` or ``workers-ai``."""
    base_url: Mapped[str] = mapped_column(Text)
    """The base URL as the provider's own SDK takes it (``…/v1`` for OpenAI-compatible)."""
    api_key: Mapped[str] = mapped_column(Text, default="")
    models: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    """Model names clients may ask for on this channel."""
    model_map: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Client model name → upstream model name, where they differ."""
    priority: Mapped[int] = mapped_column(default=0)
    """Lower numbers are tried first."""
    weight: Mapped[int] = mapped_column(default=1)
    """Share of traffic among channels of the same priority."""
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    groups: Mapped[list[str] | None] = mapped_column(ARRAY(Text), default=None)
    """Groups whose tenants may use this channel; every group when unset."""
    relay_url: Mapped[str | None] = mapped_column(Text, default=None)
    """Edge relay that forwards this channel's calls, when set."""
    relay_secret: Mapped[str | None] = mapped_column(Text, default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Per-channel options that change without a migration (timeouts, headers)."""


class ModelPrice(Base):
    """A model's price, in USD per million tokens, looked up by the client's model name."""

    __tablename__ = "model_price"

    model: Mapped[str] = mapped_column(String(256), unique=True)
    input: Mapped[Decimal] = mapped_column(Numeric(20, 9))
    cached_input: Mapped[Decimal | None] = mapped_column(Numeric(20, 9), default=None)
    output: Mapped[Decimal] = mapped_column(Numeric(20, 9))
