"""Small steps the console's browser tests repeat: sign in, fill a form, pick an option."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import socketio
from playwright.async_api import expect

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import BrowserContext, Page


async def sign_in(page: Page, base: str, username: str, password: str, *, path: str = "/") -> None:
    """Sign in through the form and wait until the page after it has loaded."""
    await page.goto(f"{base}/signin?next={path}")
    await page.fill("#field-username", username)
    await page.fill("#field-password", password)
    await page.click("#signin")
    await page.wait_for_url(re.compile(r"^(?!.*signin).*$"))
    await expect(page.locator("#current-user")).to_have_text(username)


async def open_page(page: Page, base: str, path: str) -> None:
    """Go to ``path`` and wait until its title is shown."""
    await page.goto(f"{base}{path}")
    await expect(page.locator("#page-title")).to_be_visible()


async def fill(page: Page, values: dict[str, str]) -> None:
    """Type into the open form's text inputs."""
    for name, value in values.items():
        await page.fill(f"#field-{name}", value)


async def choose(page: Page, field: str, option: str) -> None:
    """Pick ``option`` (its visible text) in the select ``field`` of the open form."""
    await page.click(f"#field-{field}")
    await page.get_by_role("option", name=option, exact=True).click()


async def submit(page: Page) -> None:
    """Submit the open form dialog and wait until it closes."""
    await page.click("#submit")
    await expect(page.locator("[role=dialog]#form-dialog")).to_have_count(0)


async def toast(page: Page, pattern: str) -> str:
    """Wait for a toast matching ``pattern``; return its text."""
    found = page.locator("[data-sonner-toast]").filter(has_text=re.compile(pattern)).first
    await expect(found).to_be_visible()
    return await found.inner_text()


async def row_with(page: Page, text: str) -> Any:
    """Return the table row containing ``text``, once it is shown."""
    row = page.locator("tr[data-row-id]").filter(has_text=text).first
    await expect(row).to_be_visible()
    return row


async def shoot(page: Page, artifacts: Path, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    await page.wait_for_timeout(400)
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def session_cookie(context: BrowserContext) -> str:
    """Return the HttpOnly session cookie the console set in ``context``."""
    for cookie in await context.cookies():
        if cookie["name"] == "tollgate_session":
            return str(cookie["value"])
    msg = "no session cookie"
    raise AssertionError(msg)


async def call_handlers(
    base: str, cookie: str, events: list[tuple[str, dict[str, Any]]], *, path: str
) -> list[dict[str, Any]]:
    """Call console event handlers over one websocket, as a hand-made client would.

    Returns every state update the server sent back.
    """
    updates: list[dict[str, Any]] = []
    client = socketio.AsyncClient(reconnection=False)

    @client.on("event", namespace="/_event")
    async def _on_event(data: Any) -> None:
        updates.append(data if isinstance(data, dict) else {"raw": data})

    await client.connect(
        f"{base}?token=test-{secrets.token_hex(8)}",
        socketio_path="/_event",
        transports=["websocket"],
        namespaces=["/_event"],
        headers={"Cookie": f"tollgate_session={cookie}", "Origin": base},
        wait_timeout=10,
    )
    try:
        for handler, payload in events:
            await client.emit(
                "event",
                {
                    "name": handler,
                    "payload": payload,
                    "router_data": {"pathname": path, "query": {}, "asPath": path},
                },
                namespace="/_event",
            )
            await client.sleep(1.5)
    finally:
        await client.disconnect()
    return updates
