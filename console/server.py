"""Start the console as a process, offline, and make sure a first admin exists.

The console is a Reflex app run in production mode: one port on 127.0.0.1 serves the
built pages, the ``/_event`` websocket and the ``/auth`` routes. Reflex is told where bun
is (the npm package pinned in the root ``package.json``) and is kept from reaching the
internet: no version check, no telemetry, no registry latency probe, no public-IP probe.
The first start builds the front end (tens of seconds on two cores); later starts rebuild
only what changed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Final

import httpx

__all__ = (
    "CONSOLE_DIR",
    "console_env",
    "ensure_first_admin",
    "serve_console",
    "stop_console",
    "wait_until_ready",
)

CONSOLE_DIR: Final = Path(__file__).resolve().parent
REFLEX_ROOT: Final = CONSOLE_DIR / "reflex_root"
"""Reflex's working directory (``rxconfig.py``); the build goes to ``console/.web``."""
ROOT: Final = CONSOLE_DIR.parent
DEFAULT_PORT: Final = 3000
START_TIMEOUT: Final = 600.0
"""Seconds a start may take, a first build with empty caches included."""
_DEFAULT_REGISTRY: Final = "https://registry.npmjs.org/"


def _npm_registry() -> str:
    given = os.environ.get("NPM_CONFIG_REGISTRY")
    if given:
        return given
    npm = shutil.which("npm")
    if npm:
        found = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [npm, "config", "get", "registry"], capture_output=True, text=True, check=False
        )
        if found.returncode == 0 and found.stdout.strip().startswith("http"):
            return found.stdout.strip()
    return _DEFAULT_REGISTRY


def console_env(
    database_url: str, base: dict[str, str] | None = None, *, work_dir: Path | None = None
) -> dict[str, str]:
    """Return the environment the Reflex process runs with.

    ``work_dir`` holds the front-end build and the per-client state files; by default
    ``console/.web`` and ``console/.states``. Two consoles running at once need two.
    """
    env = dict(os.environ if base is None else base)
    web = work_dir / "web" if work_dir else CONSOLE_DIR / ".web"
    states = work_dir / "states" if work_dir else CONSOLE_DIR / ".states"
    bun = ROOT / "node_modules" / "bun" / "bin" / "bun.exe"
    if "REFLEX_BUN_PATH" not in env and bun.exists():
        env["REFLEX_BUN_PATH"] = str(bun)
    env["NPM_CONFIG_REGISTRY"] = env.get("NPM_CONFIG_REGISTRY") or _npm_registry()
    env.update(
        {
            "REFLEX_CHECK_LATEST_VERSION": "0",
            "REFLEX_HTTP_CLIENT_BIND_ADDRESS": "0.0.0.0",
            "REFLEX_TELEMETRY_ENABLED": "false",
            "REFLEX_WEB_WORKDIR": str(web),
            "REFLEX_STATES_WORKDIR": str(states),
            "TOLLGATE_DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    return env


def serve_console(
    database_url: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    log: IO[bytes] | None = None,
    work_dir: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start the console on ``host:port`` and return its process (not yet ready).

    Stop it with :func:`stop_console`; SIGINT to this process stops its workers too.
    ``work_dir`` separates the build of a second console running at the same time (tests).
    """
    command = [
        sys.executable,
        "-m",
        "reflex",
        "run",
        "--env",
        "prod",
        "--single-port",
        "--frontend-port",
        str(port),
        "--backend-host",
        host,
        "--loglevel",
        "warning",
    ]
    return subprocess.Popen(  # noqa: S603 - fixed interpreter and arguments, no shell
        command,
        cwd=REFLEX_ROOT,
        env=console_env(database_url, work_dir=work_dir),
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        stdin=subprocess.DEVNULL,
    )


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, *, timeout: float = START_TIMEOUT
) -> None:
    """Wait until the console at ``url`` answers its health check.

    Raises:
        RuntimeError: when the process exits first or the time runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"the console exited with {process.returncode} before it was ready"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    msg = f"the console at {url} was not ready within {timeout:.0f} s"
    raise RuntimeError(msg)


def stop_console(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a console started by :func:`serve_console`: SIGINT, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(2)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def ensure_first_admin(database_url: str, password: str | None = None) -> str | None:
    """Create the first admin (user ``admin``) if there is no admin yet.

    Returns:
        The new admin's password, to print once; None when an admin already existed.
    """
    from shared.database import create_engine, session_factory
    from shared.services.users import ensure_first_admin as ensure

    async def run() -> str | None:
        engine = create_engine(database_url, pool=False)
        try:
            async with session_factory(engine)() as session:
                return await ensure(session, password)
        finally:
            await engine.dispose()

    return asyncio.run(run())
