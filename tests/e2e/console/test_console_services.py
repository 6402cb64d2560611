"""The console's services on a real PostgreSQL: users, sessions, throttling, codes, scoping."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from sqlalchemy import text

from shared.database import asyncpg_dsn, create_engine, session_factory
from shared.errors import ConflictError, NotFoundError
from shared.services import admin, catalog, options, redeem, reports, users
from shared.services.listings import ListQuery, list_keys

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration


@pytest.fixture
async def sessions(fresh_database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(fresh_database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def test_first_admin_is_created_once(sessions: Any) -> None:
    async with sessions() as session:
        password = await users.ensure_first_admin(session)
        again = await users.ensure_first_admin(session)
    assert password is not None
    assert len(password) >= 12
    assert again is None


async def test_ticket_is_exchanged_once_for_a_session(sessions: Any) -> None:
    async with sessions() as session:
        await users.create_user(session, "ops", "correct horse battery", role="admin")
        ticket = await users.sign_in(session, "ops", "correct horse battery", "127.0.0.1")
        token = await users.exchange_ticket(session, ticket)
        with pytest.raises(NotFoundError):
            await users.exchange_ticket(session, ticket)
        principal = await users.resolve_session(session, token)
        assert principal is not None
        assert principal.is_admin
        assert await users.resolve_session(session, ticket) is None
        stored = await session.scalar(text("SELECT password_hash FROM console_user"))
        assert stored.startswith("$argon2id$")
        await users.sign_out(session, token)
        assert await users.resolve_session(session, token) is None


async def test_failed_signins_are_throttled_per_user(sessions: Any) -> None:
    async with sessions() as session:
        await users.create_user(session, "ops", "correct horse battery", role="admin")
        for _ in range(users.MAX_FAILURES_PER_USER):
            with pytest.raises(users.AuthenticationError):
                await users.sign_in(session, "ops", "wrong", "10.0.0.1")
        with pytest.raises(users.SigninThrottledError) as refused:
            await users.sign_in(session, "ops", "correct horse battery", "10.0.0.2")
    assert 0 < refused.value.retry_after <= 15 * 60 + 1


async def test_unknown_user_and_disabled_user_are_refused_alike(sessions: Any) -> None:
    async with sessions() as session:
        user = await users.create_user(session, "ops", "correct horse battery", role="admin")
        await users.set_user_status(session, user.id, "disabled")
        for name in ("ops", "nobody"):
            with pytest.raises(users.AuthenticationError, match="user name or password is wrong"):
                await users.sign_in(session, name, "correct horse battery", "127.0.0.1")


async def test_code_redeems_once_through_the_ledger(sessions: Any) -> None:
    async with sessions() as session:
        tenant_id = (await admin.add_tenant(session, "acme", balance="1")).id
        codes = await redeem.generate_codes(session, "launch", count=2, amount="2.5")
        credited = await redeem.redeem_code(session, tenant_id, codes[0].code)
        with pytest.raises(NotFoundError):
            await redeem.redeem_code(session, tenant_id, codes[0].code)
        await redeem.void_code(session, codes[1].id)
        with pytest.raises(NotFoundError):
            await redeem.redeem_code(session, tenant_id, codes[1].code)
        report = await admin.balance_report(session, "acme")
        problems = await admin.audit(session)
        kinds = (await session.execute(text("SELECT kind FROM ledger_entry ORDER BY id"))).all()
    assert credited == 2_500_000_000
    assert report["balance"] == report["ledger_sum"] == "3.5"
    assert problems == []
    assert [k for (k,) in kinds] == ["topup", "redeem"]


async def test_tenant_scope_hides_other_tenants_keys(sessions: Any) -> None:
    async with sessions() as session:
        mine = await admin.add_tenant(session, "mine")
        theirs = await admin.add_tenant(session, "theirs")
        await admin.add_key(session, "mine", name="my-key")
        their_key, _ = await admin.add_key(session, "theirs", name="their-key")
        page = await list_keys(session, ListQuery(tenant_id=mine.id, filters={"tenant": "theirs"}))
        assert page.rows == []
        page = await list_keys(session, ListQuery(tenant_id=mine.id))
        assert [row["name"] for row in page.rows] == ["my-key"]
        with pytest.raises(NotFoundError):
            await catalog.revoke_key(session, their_key.id, tenant_id=mine.id)
        assert await reports.log_detail(session, 1, tenant_id=theirs.id) is None


async def test_group_in_use_cannot_be_deleted(sessions: Any) -> None:
    async with sessions() as session:
        group = await admin.add_group(session, "vip", "0.8")
        await admin.add_tenant(session, "acme", group="vip")
        with pytest.raises(ConflictError):
            await catalog.delete_group(session, group.id)


async def test_console_changes_notify_gateways(fresh_database_url: str, sessions: Any) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(fresh_database_url))
    await listener.add_listener(
        "tollgate_config", lambda *args: received.put_nowait(json.loads(args[-1]))
    )
    try:
        async with sessions() as session:
            await options.write_settings(session, {"site_name": "Acme AI"})
            channel = await admin.add_channel(
                session,
                "sim",
                kind="openai",
                base_url="http://127.0.0.1:9/v1",
                api_key="",
                models=["m"],
            )
            await catalog.set_channel_status(session, channel.id, "disabled")
        seen = [await asyncio.wait_for(received.get(), timeout=1) for _ in range(3)]
    finally:
        await listener.close()
    assert [(n["table"], n["op"]) for n in seen] == [
        ("setting", "INSERT"),
        ("channel", "INSERT"),
        ("channel", "UPDATE"),
    ]
