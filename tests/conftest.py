"""Fixtures shared by the whole suite: a real PostgreSQL, the simulator and a running gateway.

One PostgreSQL server per session (``TEST_DATABASE_URL`` when set, else the embedded
one), migrated once into a template database. The gateway and the simulator are real
processes on 127.0.0.1, started once per session and stopped by PID. Tests isolate
themselves by creating their own tenants, keys, channels and model names.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from shared.database import asyncpg_dsn, create_engine, migrate, session_factory
from shared.services.admin import audit
from tests.support import Provisioner, free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A server URL (database ``postgres``) for the whole session."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    from shared.postgres import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="tollgate-test-pg-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", fast_unsafe=True)
    url = server.start()
    try:
        yield _with_database(url, "postgres")
    finally:
        server.stop()


async def _create_database(server_url: str, name: str, template: str | None = None) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}" STRATEGY file_copy' if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def template_url(pg_url: str) -> str:
    """A migrated template database, made once per session."""
    name = f"tollgate_template_{secrets.token_hex(4)}"
    asyncio.run(_create_database(pg_url, name))
    url = _with_database(pg_url, name)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def database_url(pg_url: str, template_url: str) -> str:
    """The database the session's gateway serves from."""
    name = f"tollgate_e2e_{secrets.token_hex(4)}"
    template = urlsplit(template_url).path.lstrip("/")
    asyncio.run(_create_database(pg_url, name, template))
    return _with_database(pg_url, name)


@pytest.fixture
async def fresh_database_url(pg_url: str, template_url: str) -> AsyncIterator[str]:
    """A database of one's own, copied from the template and dropped afterwards."""
    name = f"tollgate_t_{secrets.token_hex(4)}"
    template = urlsplit(template_url).path.lstrip("/")
    await _create_database(pg_url, name, template)
    yield _with_database(pg_url, name)
    connection = await asyncpg.connect(asyncpg_dsn(pg_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The provider simulator's root URL."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "gateway.simulator", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_sim/health", process)
        yield url
    finally:
        stop_process(process)


GATEWAY_ENV = {
    "TOLLGATE_GATEWAY_FIRST_BYTE_TIMEOUT": "3",
    "TOLLGATE_GATEWAY_DISCONNECT_GRACE": "1",
    "TOLLGATE_GATEWAY_REAP_INTERVAL": "2",
    # BC22's remote images are served by a test server on 127.0.0.1.
    "TOLLGATE_GATEWAY_ALLOW_PRIVATE_IMAGE_URLS": "true",
}


def start_gateway(
    database_url: str, *, workers: int = 2, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``tollgate up`` on a free port; return the process and its base URL."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="tollgate-gw-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gateway",
            "up",
            "--no-console",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env={**os.environ, **GATEWAY_ENV, **(env or {}), "DATABASE_URL": database_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, log_path=log.name)
    except BaseException:
        stop_process(process)
        raise
    return process, url


@pytest.fixture(scope="session")
def gateway_url(database_url: str) -> Iterator[str]:
    """A running two-worker gateway on the session database."""
    process, url = start_gateway(database_url)
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture
async def provision(
    database_url: str, gateway_url: str, simulator_url: str
) -> AsyncIterator[Provisioner]:
    """Create tenants, prices, channels and keys; checks the books after the test."""
    engine = create_engine(database_url)
    provisioner = Provisioner(session_factory(engine), gateway_url, simulator_url)
    try:
        yield provisioner
        await provisioner.wait_settled()
        async with session_factory(engine)() as session:
            problems = await audit(session)
        assert problems == [], problems
    finally:
        await engine.dispose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for raw requests."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
