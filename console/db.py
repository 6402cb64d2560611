"""The console's database sessions, made on first use from ``DATABASE_URL``.

Nothing connects at import: Reflex imports the app to compile the front end, where no
database is needed.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING

from shared.database import create_engine, session_factory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ("database_url", "session")


def database_url() -> str:
    """Return the database URL the console was started with.

    Raises:
        RuntimeError: when neither ``TOLLGATE_DATABASE_URL`` nor ``DATABASE_URL`` is set.
    """
    url = os.environ.get("TOLLGATE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        msg = "set DATABASE_URL (or TOLLGATE_DATABASE_URL) before starting the console"
        raise RuntimeError(msg)
    return url


@functools.cache
def _sessions() -> async_sessionmaker[AsyncSession]:
    return session_factory(create_engine(database_url()))


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[AsyncSession]:
    """Open a database session for one event handler."""
    async with _sessions()() as opened:
        yield opened
