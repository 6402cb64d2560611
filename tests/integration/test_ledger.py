"""The money functions in PostgreSQL: admission, settlement, reaping, append-only ledger."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from gateway.billing import UsageRecord, admit, reap_holds, settle
from gateway.errors import GatewayError
from gateway.snapshot import KeyEntry
from shared.database import asyncpg_dsn, create_engine, session_factory
from shared.services import admin

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(
        asyncpg_dsn(fresh_database_url), min_size=1, max_size=4
    ) as created:
        yield created


@pytest.fixture
async def key(fresh_database_url: str) -> KeyEntry:
    engine = create_engine(fresh_database_url)
    async with session_factory(engine)() as session:
        tenant = await admin.add_tenant(session, "t", balance="1")
        row, _ = await admin.add_key(session, "t", spend_limit="0.5", rpm_limit=3)
    await engine.dispose()
    return KeyEntry(
        id=row.id,
        tenant_id=tenant.id,
        key_hash=row.key_hash,
        status="active",
        expires_at=None,
        models=None,
        rpm_limit=3,
        name="",
    )


def _record(key: KeyEntry, request_id: str) -> UsageRecord:
    return UsageRecord(
        created_at=datetime.datetime.now(datetime.UTC),
        request_id=request_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        channel_id=None,
        model="m",
        upstream_model="m",
        endpoint="chat.completions",
        stream=False,
        status="ok",
        http_status=200,
        input_tokens=10,
        output_tokens=5,
    )


async def test_settle_replaces_hold_with_exact_charge_once(
    pool: asyncpg.Pool, key: KeyEntry
) -> None:
    await admit(pool, request_id="r1", key=key, amount=300_000_000, ttl=60)
    assert (
        await pool.fetchval("SELECT held FROM tenant WHERE id = $1", key.tenant_id) == 300_000_000
    )

    assert await settle(pool, _record(key, "r1"), 123) == "settled"
    assert await settle(pool, _record(key, "r1"), 123) == "duplicate"

    row = await pool.fetchrow("SELECT balance, held FROM tenant WHERE id = $1", key.tenant_id)
    assert (row["balance"], row["held"]) == (1_000_000_000 - 123, 0)
    assert await pool.fetchval("SELECT count(*) FROM usage_log WHERE request_id = 'r1'") == 1
    assert await pool.fetchval("SELECT spent FROM api_key WHERE id = $1", key.id) == 123


async def test_admit_refuses_beyond_key_spend_limit(pool: asyncpg.Pool, key: KeyEntry) -> None:
    with pytest.raises(GatewayError) as refused:
        await admit(pool, request_id="r1", key=key, amount=600_000_000, ttl=60)

    assert (refused.value.status, refused.value.code) == (429, "insufficient_quota")
    assert await pool.fetchval("SELECT held FROM tenant WHERE id = $1", key.tenant_id) == 0


async def test_admit_counts_requests_per_minute(pool: asyncpg.Pool, key: KeyEntry) -> None:
    headers = [await admit(pool, request_id=f"r{i}", key=key, amount=1, ttl=60) for i in range(3)]
    assert [h["x-ratelimit-remaining-requests"] for h in headers] == ["2", "1", "0"]

    with pytest.raises(GatewayError) as limited:
        await admit(pool, request_id="r4", key=key, amount=1, ttl=60)
    assert (limited.value.status, limited.value.code) == (429, "rate_limit_exceeded")
    assert int(limited.value.headers["retry-after"]) >= 1


async def test_reaper_releases_holds_of_dead_workers(pool: asyncpg.Pool, key: KeyEntry) -> None:
    await admit(pool, request_id="dead", key=key, amount=1000, ttl=0)

    assert await reap_holds(pool) == 1
    row = await pool.fetchrow("SELECT balance, held FROM tenant WHERE id = $1", key.tenant_id)
    assert (row["balance"], row["held"]) == (1_000_000_000, 0)
    assert await pool.fetchval("SELECT held FROM api_key WHERE id = $1", key.id) == 0
    # A late settlement of the reaped request still bills it, once.
    assert await settle(pool, _record(key, "dead"), 50) == "settled_without_hold"
    assert await settle(pool, _record(key, "dead"), 50) == "duplicate"
    assert (
        await pool.fetchval("SELECT balance FROM tenant WHERE id = $1", key.tenant_id)
        == 1_000_000_000 - 50
    )


async def test_ledger_is_append_only(pool: asyncpg.Pool, key: KeyEntry) -> None:
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pool.execute("UPDATE ledger_entry SET amount = 0")
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pool.execute("DELETE FROM ledger_entry")


async def test_usage_log_is_partitioned_by_month(pool: asyncpg.Pool) -> None:
    partitions = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'usage_log'::regclass ORDER BY 1"
    )
    names = [r["relname"] for r in partitions]
    this_month = datetime.datetime.now(datetime.UTC).strftime("usage_log_%Y_%m")
    assert this_month in names and "usage_log_default" in names
    assert msgspec.json.encode(names)
