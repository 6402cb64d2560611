"""The run's PostgreSQL: a scratch database, migrated, with one tenant set up to call the simulator.

By default an embedded server is started in a temporary directory (``fsync`` and
synchronous commit off, as the tests run it; ``durable=True`` keeps them on) and pinned to
the cores chosen for it. Given a server URL instead (``--database-url``, or
``TEST_DATABASE_URL`` / ``DATABASE_URL``), a scratch database is created on that server
and dropped at the end, so a run never writes into an existing database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from shared.database import asyncpg_dsn, create_engine, migrate, session_factory
from shared.services import admin

if TYPE_CHECKING:
    from collections.abc import Iterator

MODEL: Final = "gpt-4o-mini"
"""The model the bench asks for; the simulator serves any name."""

BALANCE_USD: Final = "1000000"
"""Opening balance of the bench tenant: far more than any run can spend."""


class Scratch(msgspec.Struct, frozen=True):
    """The run's database."""

    url: str
    postmaster_pid: int | None
    """The embedded server's PID, to account its CPU; None on a server that is not ours."""


class Tenancy(msgspec.Struct, frozen=True):
    """What a client of the gateway needs: a key and a model it may call."""

    key: str
    model: str


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _execute(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(
    server_url: str | None, *, cores: frozenset[int] | None, durable: bool
) -> Iterator[Scratch]:
    """Yield an empty database, on our embedded server or the given one.

    The embedded server is started with this process pinned to ``cores`` for the moment,
    so the postmaster and every backend it forks later run there.
    """
    if server_url:
        name = f"tollgate_bench_{secrets.token_hex(4)}"
        asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
        try:
            yield Scratch(_with_database(server_url, name), None)
        finally:
            asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return

    from shared.postgres import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="tollgate-bench-pg-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", fast_unsafe=not durable)
    own_cores = os.sched_getaffinity(0)
    try:
        if cores:
            os.sched_setaffinity(0, cores)
        try:
            url = server.start()
        finally:
            os.sched_setaffinity(0, own_cores)
        pid = (server.pgdata / "postmaster.pid").read_text().splitlines()[0]
        yield Scratch(url, int(pid))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _provision(url: str, upstream_base_url: str) -> Tenancy:
    engine = create_engine(url, pool=False)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            await admin.add_tenant(session, "bench", balance=BALANCE_USD)
        async with sessions() as session:
            await admin.set_price(session, MODEL, input="0.15", output="0.60")
        async with sessions() as session:
            await admin.add_channel(
                session,
                "bench-simulator",
                kind="openai",
                base_url=upstream_base_url,
                api_key="sk-bench-upstream",
                models=[MODEL],
            )
        async with sessions() as session:
            _, key = await admin.add_key(session, "bench", name="bench")
    finally:
        await engine.dispose()
    return Tenancy(key=key, model=MODEL)


def prepare(url: str, upstream_base_url: str) -> Tenancy:
    """Migrate the database and create the bench tenant, price, channel and key."""
    migrate(url)
    return asyncio.run(_provision(url, upstream_base_url))


async def _audit(url: str) -> tuple[list[str], int]:
    engine = create_engine(url, pool=False)
    try:
        async with session_factory(engine)() as session:
            problems = await admin.audit(session)
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await connection.fetchval("SELECT count(*) FROM usage_log")
        finally:
            await connection.close()
    finally:
        await engine.dispose()
    return [f"{p.tenant}: {p.problem}" for p in problems], int(rows)


def audit(url: str) -> tuple[list[str], int]:
    """Return the books' problems (none expected) and the number of usage rows written."""
    return asyncio.run(_audit(url))
