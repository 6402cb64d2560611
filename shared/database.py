"""Database URLs, the SQLAlchemy engine and schema migration.

The gateway's hot path talks to PostgreSQL through asyncpg directly; the CLI, the console
and the migrations use SQLAlchemy on the same driver. Both take the same libpq-style URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ("asyncpg_dsn", "create_engine", "migrate", "session_factory", "sqlalchemy_url")

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def asyncpg_dsn(url: str) -> str:
    """Return ``url`` in the plain ``postgresql://`` form asyncpg accepts."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    return urlunsplit((scheme, *parts[1:]))


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the ``postgresql+asyncpg`` driver SQLAlchemy needs."""
    parts = urlsplit(asyncpg_dsn(url))
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


def create_engine(url: str, *, pool: bool = True) -> AsyncEngine:
    """Build an async SQLAlchemy engine on asyncpg for ``url``.

    A unix-socket ``host`` query parameter is handed to asyncpg as its host.
    """
    parts = urlsplit(sqlalchemy_url(url))
    query = dict(parse_qsl(parts.query))
    connect_args: dict[str, object] = {}
    if "host" in query:
        connect_args["host"] = query.pop("host")
    if "port" in query:
        connect_args["port"] = int(query.pop("port"))
    clean = urlunsplit((*parts[:3], urlencode(query), parts.fragment))
    if pool:
        return create_async_engine(clean, connect_args=connect_args, pool_pre_ping=True)
    return create_async_engine(clean, connect_args=connect_args, poolclass=NullPool)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (blocking; call it outside an event loop)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)
