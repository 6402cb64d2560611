"""Fixtures for the provider simulator: in-process ASGI clients and a real granian server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.simulator import create_app
from gateway.simulator.composer import load_cl100k

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from gateway.simulator.app import SimulatorApp

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 20.0


class Tokens:
    """The cl100k counter the expected figures are computed with, apart from the simulator."""

    def __init__(self) -> None:
        self._encoding = load_cl100k()

    def __call__(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text)) if text else 0

    def prompt(self, *texts: str) -> int:
        return self("\n".join(texts))


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def app() -> SimulatorApp:
    return create_app()


@pytest.fixture
async def client(app: SimulatorApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run `python -m gateway.simulator` on a free loopback port; stop it by its PID."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("simulator") / "granian.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.simulator", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the simulator exited early: {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/_sim/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the simulator did not start: {log_path.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
