"""Operator options kept in the ``setting`` table, one JSON value per name.

Defaults live here; a stored value overrides its default. Writing a setting notifies
``tollgate_config``, so running gateways reload within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.models import Setting

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ("DEFAULTS", "read_settings", "write_settings")

DEFAULTS: Final[dict[str, Any]] = {
    "site_name": "Tollgate",
    "default_group": "default",
    "signup_balance": "0",
    "log_retention_days": 90,
    "session_hours": 12,
}
"""Every known option and its value when none is stored."""


async def read_settings(session: AsyncSession) -> dict[str, Any]:
    """Return every known option, stored values over defaults."""
    rows = await session.execute(select(Setting.name, Setting.value))
    stored: dict[str, Any] = {row.name: row.value for row in rows}
    return {name: stored.get(name, default) for name, default in DEFAULTS.items()}


async def write_settings(session: AsyncSession, values: Mapping[str, Any]) -> dict[str, Any]:
    """Store the known options among ``values``; unknown names are ignored."""
    for name, value in values.items():
        if name not in DEFAULTS:
            continue
        stmt = insert(Setting).values(name=name, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Setting.name],
            set_={"value": value, "updated_at": stmt.excluded.updated_at},
        )
        await session.execute(stmt)
    await session.commit()
    return await read_settings(session)
