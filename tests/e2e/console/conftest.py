"""Fixtures of the console's browser tests: one console process, one headless Chromium.

The console is built and started once per session against the session's database and
stopped by its PID. The browser is Debian's Chromium (``/usr/bin/chromium``), never one
Playwright downloads; screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from console.server import ensure_first_admin, serve_console, stop_console, wait_until_ready
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


@pytest.fixture(scope="session")
def admin_password(database_url: str) -> str:
    """The first admin's one-time password, created as ``make up`` would."""
    password = ensure_first_admin(database_url)
    assert password is not None, "the session database already had an admin"
    return password


@pytest.fixture(scope="session")
def console_url(database_url: str, admin_password: str) -> Iterator[str]:
    """A running console on a free port of 127.0.0.1."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="tollgate-console-", suffix=".log", delete=False)  # noqa: SIM115
    # A build of its own, so that a console already running from console/.web (make up,
    # another test session) is not rebuilt under its feet.
    work_dir = Path(tempfile.mkdtemp(prefix="tollgate-console-"))
    process = serve_console(database_url, "127.0.0.1", port, log=log, work_dir=work_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url)
    except BaseException:
        stop_console(process)
        print(Path(log.name).read_text(errors="replace")[-4000:])  # noqa: T201
        raise
    try:
        yield url
    finally:
        stop_console(process)
        shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile: no cookies, no storage."""
    opened = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    """A tab in a fresh profile."""
    return await context.new_page()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
