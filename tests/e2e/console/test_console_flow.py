"""The console end to end: an operator sets everything up in the browser, a tenant sees it.

The module's first fixture plays the operator through the real pages (group, price,
channels with their test button, tenant, tenant user, key, codes); the tests then call the
gateway with the key, and look at logs, dashboard and the tenant's view, including what a
tenant must not see, by URL and by calling event handlers directly.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import openai
import pytest
from playwright.async_api import expect
from sqlalchemy import select, text

from console.pages.admin.keys import KeysTable
from console.pages.admin.tenants import AdjustForm, TenantsTable
from console.pages.tenant.keys import MyKeysTable
from shared.database import create_engine, session_factory
from shared.models import ApiKey, Tenant
from shared.money import format_usd
from shared.services import admin
from tests.e2e.console.helpers import (
    call_handlers,
    choose,
    fill,
    open_page,
    row_with,
    session_cookie,
    shoot,
    sign_in,
    submit,
    toast,
)
from tests.support import Provisioner, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from playwright.async_api import Browser

pytestmark = pytest.mark.e2e


class World(dict[str, Any]):
    """What the operator made in the browser, by name."""


@pytest.fixture(scope="module")
async def sessions(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def world(
    browser: Browser,
    console_url: str,
    admin_password: str,
    gateway_url: str,
    simulator_url: str,
    sessions: Any,
    artifacts: Path,
) -> World:
    """Set up a group, price, channels, tenant, tenant user, key and codes in the browser."""
    tag = secrets.token_hex(3)
    w = World(
        group=f"group-{tag}",
        model=f"gpt-console-{tag}",
        channel=f"sim-{tag}",
        dead=f"dead-{tag}",
        tenant=f"acme-{tag}",
        user=f"acme-{tag}-user",
        password=secrets.token_urlsafe(12),
        batch=f"batch-{tag}",
    )
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    base = console_url

    # A wrong password is refused visibly, then the printed credentials work.
    await page.goto(f"{base}/channels")
    await page.wait_for_url(re.compile(r"/signin\?next=/channels"))
    await fill(page, {"username": "admin", "password": "not-the-password"})
    await page.click("#signin")
    await expect(page.locator("#signin-message")).to_contain_text("wrong")
    await shoot(page, artifacts, "signin")
    await fill(page, {"password": admin_password})
    await page.click("#signin")
    await page.wait_for_url(re.compile(r"/channels"))
    await expect(page.locator("#current-user")).to_have_text("admin")

    # Group, with a visible validation error first.
    await open_page(page, base, "/groups")
    await page.click("#new")
    await fill(page, {"name": "no spaces allowed", "ratio": "-1"})
    await page.click("#submit")
    await expect(page.locator("#error-name")).to_contain_text("no spaces")
    await expect(page.locator("#error-ratio")).to_be_visible()
    await shoot(page, artifacts, "groups-validation")
    await fill(page, {"name": w["group"], "ratio": "1"})
    await submit(page)
    await row_with(page, w["group"])

    # Price.
    await open_page(page, base, "/prices")
    await page.click("#new")
    await fill(page, {"model": w["model"], "input": "2", "output": "8"})
    await submit(page)
    await row_with(page, w["model"])
    await shoot(page, artifacts, "prices")

    # A channel to the simulator, whose test succeeds; one to a dead port, whose test fails.
    await open_page(page, base, "/channels")
    for name, url, model in (
        (w["channel"], f"{simulator_url}/v1", w["model"]),
        (w["dead"], f"http://127.0.0.1:{free_port()}/v1", f"dead-{tag}"),
    ):
        await page.click("#new")
        await fill(page, {"name": name, "base_url": url, "api_key": "sk-up", "models": model})
        await submit(page)
        row = await row_with(page, name)
        w[f"{name}:id"] = await row.get_attribute("data-row-id")
    ok_id, dead_id = w[f"{w['channel']}:id"], w[f"{w['dead']}:id"]
    await page.click(f"#test-{ok_id}")
    await expect(page.locator(f"#test-result-{ok_id}")).to_contain_text(
        re.compile(r"Answered in \d+ ms")
    )
    await page.click(f"#test-{dead_id}")
    await expect(page.locator(f"#test-result-{dead_id}")).to_contain_text(
        re.compile(r"Failed after \d+ ms")
    )
    await page.click(f"#disable-{dead_id}")
    await expect(page.locator(f"#enable-{dead_id}")).to_be_visible()
    await shoot(page, artifacts, "channels")

    # Tenant, then a console user for it.
    await open_page(page, base, "/tenants")
    await page.click("#new")
    await fill(page, {"name": w["tenant"], "balance": "10"})
    await choose(page, "group", w["group"])
    await submit(page)
    row = await row_with(page, w["tenant"])
    tenant_row_id = await row.get_attribute("data-row-id")
    await page.click(f"#adjust-{tenant_row_id}")
    await fill(page, {"amount": "5", "reason": "welcome credit"})
    await page.click("#submit")
    await toast(page, r"Balance is now 15 USD")
    await shoot(page, artifacts, "tenants")
    await open_page(page, base, f"/ledger?f_tenant={w['tenant']}")
    await row_with(page, "welcome credit (by admin)")
    await open_page(page, base, "/users")
    await page.click("#new")
    await fill(page, {"username": w["user"], "password": w["password"]})
    await choose(page, "role", "Tenant user")
    await choose(page, "tenant", w["tenant"])
    await submit(page)
    await row_with(page, w["user"])
    await shoot(page, artifacts, "users")

    # A key for the tenant, shown once.
    await open_page(page, base, "/keys")
    await page.click("#new")
    await choose(page, "tenant", w["tenant"])
    await fill(page, {"name": "from-console"})
    await page.click("#submit")
    await expect(page.locator("#new-key")).to_contain_text("sk-tg-")
    w["key"] = (await page.inner_text("#new-key")).strip()
    await shoot(page, artifacts, "keys-new")
    await page.click("#key-done")
    await row_with(page, "from-console")

    # A batch of redemption codes, exported once.
    await open_page(page, base, "/codes")
    await page.click("#new")
    await fill(page, {"batch": w["batch"], "count": "2", "amount": "5"})
    await page.click("#submit")
    await expect(page.locator(".generated-code")).to_have_count(2)
    w["codes"] = [c.strip() for c in await page.locator(".generated-code").all_inner_texts()]
    async with page.expect_download() as download:
        await page.click("#export")
    assert w["codes"][0] in (await (await download.value).path()).read_text()
    await page.click("#codes-done")
    await row_with(page, w["batch"])
    await shoot(page, artifacts, "codes")
    await context.close()

    async with sessions() as session:
        w["tenant_id"] = await session.scalar(select(Tenant.id).where(Tenant.name == w["tenant"]))
    return w


@pytest.fixture(scope="module")
async def billed(world: World, gateway_url: str, simulator_url: str, sessions: Any) -> World:
    """Call the gateway with the key made in the browser, through the OpenAI SDK."""
    provisioner = Provisioner(sessions, gateway_url, simulator_url)
    await provisioner.wait_visible(world["key"], world["model"])
    client = openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key=world["key"], max_retries=0)
    reply = await client.chat.completions.create(
        model=world["model"], messages=[{"role": "user", "content": "hello from the console test"}]
    )
    assert reply.choices[0].message.content
    provisioner.tenant_ids.append(world["tenant_id"])
    await provisioner.wait_settled()
    async with sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT id, request_id, cost FROM usage_log WHERE tenant_id = :t "
                    "ORDER BY id DESC LIMIT 1"
                ),
                {"t": world["tenant_id"]},
            )
        ).one()
        tenant = await session.get(Tenant, world["tenant_id"])
    world.update(log_id=row[0], request_id=row[1], cost=row[2], balance=tenant.balance)
    assert row[2] > 0
    return world


@pytest.fixture(scope="module")
async def other(billed: World, gateway_url: str, simulator_url: str, sessions: Any) -> World:
    """Another tenant, with a key and one request of its own."""
    name = f"other-{secrets.token_hex(3)}"
    async with sessions() as session:
        tenant = await admin.add_tenant(session, name, balance="3")
        key_row, key = await admin.add_key(session, name, name="other-key")
    provisioner = Provisioner(sessions, gateway_url, simulator_url)
    await provisioner.wait_visible(key, billed["model"])
    client = openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0)
    await client.chat.completions.create(
        model=billed["model"], messages=[{"role": "user", "content": "other tenant"}]
    )
    provisioner.tenant_ids.append(tenant.id)
    await provisioner.wait_settled()
    async with sessions() as session:
        log_id = await session.scalar(
            text("SELECT max(id) FROM usage_log WHERE tenant_id = :t"), {"t": tenant.id}
        )
        balance = (await session.get(Tenant, tenant.id)).balance
    return World(name=name, id=tenant.id, key_id=key_row.id, log_id=log_id, balance=balance)


async def test_request_appears_in_logs_and_dashboard(
    browser: Browser, console_url: str, admin_password: str, billed: World, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, "admin", admin_password)

    await open_page(page, console_url, f"/logs?f_tenant={billed['tenant']}")
    row = await row_with(page, billed["model"])
    await expect(row).to_contain_text(format_usd(billed["cost"]))
    await shoot(page, artifacts, "logs")
    await page.click(f"#detail-{billed['log_id']}")
    await expect(page.locator("#log-detail")).to_contain_text(billed["request_id"])
    await shoot(page, artifacts, "log-detail")

    await open_page(page, console_url, "/")
    await expect(page.locator("#stat-requests")).not_to_have_text("0")
    await expect(page.locator("#by-model")).to_contain_text(billed["model"])
    await shoot(page, artifacts, "dashboard")

    for path, name in (("/ledger", "ledger"), ("/settings", "settings")):
        await open_page(page, console_url, path)
        await shoot(page, artifacts, name)
    await context.close()


async def test_tenant_sees_own_balance_usage_and_logs(
    browser: Browser, console_url: str, billed: World, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, billed["user"], billed["password"], path="/tenant")

    await open_page(page, console_url, "/tenant")
    await expect(page.locator("#balance")).to_have_text(format_usd(billed["balance"]))
    await expect(page.locator("#month-spend")).to_have_text(format_usd(billed["cost"]))
    await expect(page.locator("#tenant-name")).to_have_text(billed["tenant"])
    await shoot(page, artifacts, "tenant-overview")

    await open_page(page, console_url, "/tenant/usage")
    await shoot(page, artifacts, "tenant-usage")

    await open_page(page, console_url, "/tenant/logs")
    await row_with(page, billed["model"])
    await expect(page.locator("#logs-table thead")).not_to_contain_text("Channel")
    await shoot(page, artifacts, "tenant-logs")

    await open_page(page, console_url, "/tenant/keys")
    await row_with(page, "from-console")
    await shoot(page, artifacts, "tenant-keys")
    await context.close()


async def test_tenant_sees_nothing_of_another_tenant(
    browser: Browser, console_url: str, billed: World, other: World, sessions: Any
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, billed["user"], billed["password"], path="/tenant")

    # Editing URLs: another tenant's filters, request and the admin pages.
    # A tenant filter is not offered to tenants: it is ignored, only their own rows show.
    await open_page(page, console_url, f"/tenant/logs?f_tenant={other['name']}")
    await row_with(page, billed["model"])
    await expect(page.locator("tr[data-row-id]")).to_have_count(1)
    await open_page(page, console_url, f"/tenant/logs?f_key={other['key_id']}")
    await expect(page.locator("#table-empty")).to_be_visible()
    await open_page(page, console_url, f"/tenant/logs/detail?id={other['log_id']}")
    await expect(page.locator("#log-missing")).to_be_visible()
    await open_page(page, console_url, "/tenant/logs")
    await expect(page.locator("tr[data-row-id]")).to_have_count(1)
    for admin_path in ("/tenants", "/logs", "/keys", f"/logs/detail?id={other['log_id']}"):
        await page.goto(f"{console_url}{admin_path}")
        await page.wait_for_url(re.compile(r"/tenant/?$"))
    assert other["name"] not in await page.content()

    # Calling event handlers directly with the tenant's own session cookie.
    cookie = await session_cookie(context)
    updates = await call_handlers(
        console_url,
        cookie,
        [
            (f"{TenantsTable.get_full_name()}.load", {}),
            (f"{KeysTable.get_full_name()}.revoke", {"key_id": str(other["key_id"])}),
            (f"{MyKeysTable.get_full_name()}.revoke", {"key_id": str(other["key_id"])}),
            (f"{AdjustForm.get_full_name()}.start_for", {"tenant": other["name"]}),
            (
                f"{AdjustForm.get_full_name()}.submit",
                {"form": {"amount": "-1", "reason": "taken by a tenant"}},
            ),
        ],
        path="/tenants",
    )
    assert updates, "the console answered nothing"
    assert other["name"] not in str([u.get("delta") for u in updates])
    async with sessions() as session:
        key = await session.get(ApiKey, other["key_id"])
        tenant = await session.get(Tenant, other["id"])
    assert key.status == "active"
    assert tenant.balance == other["balance"]
    await context.close()


async def test_tenant_redeems_code_once(
    browser: Browser, console_url: str, billed: World, sessions: Any, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, billed["user"], billed["password"], path="/tenant")
    async with sessions() as session:
        before = (await session.get(Tenant, billed["tenant_id"])).balance

    await open_page(page, console_url, "/tenant/redeem")
    await page.fill("#field-code", billed["codes"][0])
    await page.click("#redeem")
    await toast(page, r"5 USD added")
    await row_with(page, billed["codes"][0][:9])
    await shoot(page, artifacts, "tenant-redeem")
    await page.fill("#field-code", billed["codes"][0])
    await page.click("#redeem")
    await toast(page, r"not valid")

    async with sessions() as session:
        after = (await session.get(Tenant, billed["tenant_id"])).balance
        problems = await admin.audit(session)
    assert after - before == 5_000_000_000
    assert problems == []
    await open_page(page, console_url, "/tenant")
    await expect(page.locator("#balance")).to_have_text(format_usd(after))
    await context.close()


async def test_language_switches_and_is_remembered(
    browser: Browser, console_url: str, billed: World, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, billed["user"], billed["password"], path="/tenant")
    await open_page(page, console_url, "/tenant")
    await expect(page.locator("#page-title")).to_have_text("Overview")

    await page.click("#language")
    await page.get_by_role("option", name="简体中文").click()
    await expect(page.locator("#page-title")).to_have_text("概览")
    await expect(page.locator("#signout")).to_contain_text("退出登录")
    await shoot(page, artifacts, "tenant-overview-zh")

    await page.reload()
    await expect(page.locator("#page-title")).to_have_text("概览")
    await open_page(page, console_url, "/tenant/keys")
    await expect(page.locator("#page-title")).to_have_text("API 密钥")
    await context.close()


async def test_signout_ends_the_session(
    browser: Browser, console_url: str, billed: World, sessions: Any
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    await sign_in(page, console_url, billed["user"], billed["password"], path="/tenant")
    cookie = await session_cookie(context)
    await page.click("#signout")
    await page.wait_for_url(re.compile(r"/signin"))
    async with sessions() as session:
        left = await session.scalar(
            text(
                "SELECT count(*) FROM console_session WHERE token_hash = encode(sha256(:t), 'hex')"
            ),
            {"t": cookie.encode()},
        )
    assert left == 0
    await page.goto(f"{console_url}/tenant")
    await page.wait_for_url(re.compile(r"/signin"))
    await context.close()
