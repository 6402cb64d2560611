"""The usage log: one row per request, partitioned by month."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from shared.models.base import metadata

__all__ = ("usage_log",)

usage_log = Table(
    "usage_log",
    metadata,
    Column("id", BigInteger, Identity(), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("tenant_id", BigInteger, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("channel_id", BigInteger),
    Column("model", Text, nullable=False),
    Column("upstream_model", Text),
    Column("endpoint", String(64), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("cached_input_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("estimated", Boolean, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("first_byte_ms", Integer),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    PrimaryKeyConstraint("id", "created_at"),
    postgresql_partition_by="RANGE (created_at)",
)
"""Usage rows; ``status`` is ``ok``, ``error`` or ``truncated``; ``cost`` in nano-dollars."""
