"""Helpers for tests: free ports, process control, and provisioning through the services."""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import openai
from sqlalchemy import text

from shared.services import admin

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 30.0,
    log_path: str | None = None,
) -> None:
    """Poll ``url`` until it answers, failing early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = Path(log_path).read_text(errors="replace")[-3000:] if log_path else ""
            msg = f"process exited with {process.returncode} before {url} answered\n{log}"
            raise RuntimeError(msg)
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    msg = f"{url} did not answer within {timeout} s"
    raise RuntimeError(msg)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process we started, by its PID: SIGINT, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class Setup(msgspec.Struct):
    """A provisioned tenant with a key and a model routed to the simulator."""

    tenant: str
    tenant_id: int
    key: str
    key_id: int
    model: str


class Provisioner:
    """Creates what a test needs through the shared admin services."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], gateway_url: str, simulator_url: str
    ) -> None:
        self.sessions = sessions
        self.gateway_url = gateway_url
        self.simulator_url = simulator_url
        self.tenant_ids: list[int] = []

    def openai(self, key: str, **kwargs: Any) -> openai.AsyncOpenAI:
        """Return an official OpenAI client pointed at the gateway."""
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=f"{self.gateway_url}/v1", api_key=key, **kwargs)

    def upstream(self, fault: str | None = None) -> str:
        """Return the simulator's OpenAI base URL, with a fault spec when given."""
        if fault:
            return f"{self.simulator_url}/_fault/{fault}/v1"
        return f"{self.simulator_url}/v1"

    async def tenant(self, balance: str = "10", group: str = "default") -> tuple[str, int]:
        name = f"tenant-{secrets.token_hex(4)}"
        async with self.sessions() as session:
            row = await admin.add_tenant(session, name, balance=balance, group=group)
        self.tenant_ids.append(row.id)
        return name, row.id

    async def group(self, ratio: str) -> str:
        name = f"group-{secrets.token_hex(4)}"
        async with self.sessions() as session:
            await admin.add_group(session, name, ratio)
        return name

    async def price(self, model: str, input: str, output: str, cached: str | None = None) -> None:
        async with self.sessions() as session:
            await admin.set_price(session, model, input=input, output=output, cached_input=cached)

    async def channel(
        self,
        models: list[str],
        *,
        base_url: str | None = None,
        priority: int = 0,
        weight: int = 1,
        model_map: dict[str, str] | None = None,
        kind: str = "openai",
    ) -> int:
        async with self.sessions() as session:
            row = await admin.add_channel(
                session,
                f"channel-{secrets.token_hex(4)}",
                kind=kind,
                base_url=base_url or self.upstream(),
                api_key="sk-upstream-test",
                models=models,
                model_map=model_map,
                priority=priority,
                weight=weight,
            )
        return row.id

    async def key(self, tenant: str, **kwargs: Any) -> tuple[int, str]:
        async with self.sessions() as session:
            row, full = await admin.add_key(session, tenant, **kwargs)
        return row.id, full

    async def setup(
        self,
        *,
        balance: str = "10",
        input_price: str = "2",
        output_price: str = "8",
        fault: str | None = None,
        upstream: str | None = None,
        channel: bool = True,
        group: str = "default",
        key_options: dict[str, Any] | None = None,
    ) -> Setup:
        """Provision a tenant, a key and a fresh model served by the simulator."""
        model = f"gpt-{secrets.token_hex(3)}"
        tenant, tenant_id = await self.tenant(balance, group)
        await self.price(model, input_price, output_price)
        if channel:
            await self.channel([model], base_url=upstream or self.upstream(fault))
        key_id, key = await self.key(tenant, **(key_options or {}))
        setup = Setup(tenant, tenant_id, key, key_id, model)
        if channel:
            await self.wait_visible(key, model)
        return setup

    async def wait_visible(self, key: str, model: str, *, present: bool = True) -> None:
        """Wait until every gateway worker lists (or stops listing) ``model`` for ``key``."""
        deadline = time.monotonic() + 10
        streak = 0
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                response = await client.get(
                    f"{self.gateway_url}/v1/models", headers={"authorization": f"Bearer {key}"}
                )
                listed = response.status_code == 200 and any(
                    m["id"] == model for m in response.json()["data"]
                )
                streak = streak + 1 if listed == present else 0
                if streak >= 8:
                    return
                await asyncio.sleep(0.02)
        msg = f"model {model} did not become {'visible' if present else 'hidden'} in time"
        raise AssertionError(msg)

    async def books(self, tenant_id: int) -> dict[str, int]:
        """Return a tenant's balance, held, ledger sum and open holds, in nano-dollars."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT balance, held, "
                        "(SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE tenant_id = :t),"
                        "(SELECT coalesce(sum(amount), 0) FROM hold WHERE tenant_id = :t) "
                        "FROM tenant WHERE id = :t"
                    ),
                    {"t": tenant_id},
                )
            ).one()
        return {"balance": row[0], "held": row[1], "ledger": int(row[2]), "holds": int(row[3])}

    async def usage_rows(self, tenant_id: int) -> list[dict[str, Any]]:
        """Return the tenant's usage-log rows, oldest first."""
        async with self.sessions() as session:
            rows = await session.execute(
                text("SELECT * FROM usage_log WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id}
            )
            return [dict(r._mapping) for r in rows]

    async def wait_settled(self, timeout: float = 15.0) -> None:
        """Wait until no hold of this test's tenants is open."""
        if not self.tenant_ids:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.sessions() as session:
                open_holds = await session.scalar(
                    text("SELECT count(*) FROM hold WHERE tenant_id = ANY(:ids)"),
                    {"ids": self.tenant_ids},
                )
            if not open_holds:
                return
            await asyncio.sleep(0.05)
        msg = "holds were still open after the test"
        raise AssertionError(msg)


def nanos(usd: str) -> int:
    """Return nano-dollars of a USD decimal string."""
    return int(Decimal(usd) * 1_000_000_000)


async def replay(
    simulator_url: str,
    chunks: list[str],
    *,
    status: int = 200,
    content_type: str = "text/event-stream",
    close: str = "clean",
    gap: float = 0.0,
) -> str:
    """Register a replay script; return the OpenAI base URL that plays it."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{simulator_url}/_sim/replay",
            json={
                "status": status,
                "headers": {"content-type": content_type},
                "chunks": chunks,
                "gap": gap,
                "close": close,
            },
        )
        response.raise_for_status()
    return f"{simulator_url}/_replay/{response.json()['id']}/v1"


async def simulator_requests(simulator_url: str) -> list[dict[str, Any]]:
    """Return the simulator's request log, newest last."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{simulator_url}/_sim/requests")
        response.raise_for_status()
        return list(response.json())


def sse_data(body: str) -> list[str]:
    """Return the ``data`` payloads of an SSE body, in order."""
    return [
        line[5:].lstrip(" ")
        for line in body.replace("\r\n", "\n").split("\n")
        if line.startswith("data:")
    ]
