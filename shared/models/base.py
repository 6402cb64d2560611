"""The declarative base every Tollgate model derives from."""

from __future__ import annotations

from advanced_alchemy.base import IdentityAuditBase, orm_registry

__all__ = ("Base", "metadata")

metadata = orm_registry.metadata
"""The one ``MetaData`` (with advanced-alchemy's naming convention) Alembic migrates."""


class Base(IdentityAuditBase):
    """A table with a ``BIGINT IDENTITY`` primary key and ``created_at``/``updated_at``."""

    __abstract__ = True
