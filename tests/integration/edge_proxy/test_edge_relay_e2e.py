"""End-to-end tests of the ASGI relay: granian subprocess in front of a mock upstream.

Everything listens on 127.0.0.1. The relay runs as ``python -m edge_proxy`` (the same
``serve()`` that ``tollgate relay`` calls) with its upstream table pointing at a mock upstream
served by h11 inside the test's event loop, so the tests can see what reached the upstream
and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[3]
SECRET = "e2e-relay-secret"
KEY = {"x-relay-key": SECRET}
SSE_EVENTS = 5
SSE_GAP = 0.3
UPLOAD_SIZE = 8_000_000
GZIP_TEXT = b"hello through the relay " * 200


@dataclass
class Seen:
    """A request as the mock upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body_length: int


class MockUpstream:
    """HTTP/1.1 upstream on 127.0.0.1 whose behaviour is chosen by the request path."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.sse_sent_at: list[float] = []
        self.endless_done = asyncio.Event()
        self.endless_outcome = ""
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                seen = await self._read_request(conn, reader)
                if seen is None:
                    return
                self.requests.append(seen)
                await self._respond(conn, reader, writer, seen)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Seen | None:
        request: h11.Request | None = None
        length = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.ConnectionClosed):
                return None
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                length += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return Seen(
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers=[(k.decode(), v.decode()) for k, v in request.headers],
                    body_length=length,
                )

    async def _respond(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        seen: Seen,
    ) -> None:
        async def emit(event: h11.Event) -> None:
            data = conn.send(event)
            if data:
                writer.write(data)
                await writer.drain()

        async def simple(status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            headers = [*headers, ("content-length", str(len(body)))]
            await emit(h11.Response(status_code=status, headers=headers))
            await emit(h11.Data(data=body))
            await emit(h11.EndOfMessage())

        path = seen.target.split("?")[0]
        if path.startswith("/echo"):
            body = json.dumps(
                {
                    "method": seen.method,
                    "target": seen.target,
                    "headers": seen.headers,
                    "body_length": seen.body_length,
                }
            ).encode()
            await simple(200, [("content-type", "application/json")], body)
        elif path == "/sse":
            await emit(
                h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])
            )
            for i in range(SSE_EVENTS):
                if i:
                    await asyncio.sleep(SSE_GAP)
                await emit(h11.Data(data=b'data: {"n": %d}\n\n' % i))
                self.sse_sent_at.append(time.monotonic())
            await emit(h11.EndOfMessage())
        elif path == "/endless":
            await emit(
                h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])
            )
            eof = asyncio.ensure_future(reader.read(1))
            try:
                for i in range(300):
                    if eof.done():
                        break
                    await emit(h11.Data(data=b"data: %d\n\n" % i))
                    await asyncio.sleep(0.1)
                self.endless_outcome = "disconnected" if eof.done() else "completed"
            except ConnectionError:
                self.endless_outcome = "disconnected"
            finally:
                eof.cancel()
                self.endless_done.set()
        elif path == "/ratelimited":
            body = b'{"error":{"type":"rate_limit_error","message":"slow down"}}'
            await simple(429, [("content-type", "application/json"), ("retry-after", "7")], body)
        elif path == "/redirect":
            await simple(302, [("location", "/echo/redirected")], b"")
        elif path == "/gzip":
            body = gzip.compress(GZIP_TEXT)
            await simple(200, [("content-type", "text/plain"), ("content-encoding", "gzip")], body)
        elif path == "/spoof":
            await simple(500, [("x-relay-error", "spoofed")], b"upstream failure")
        else:
            await simple(404, [("content-type", "text/plain")], b"mock: no such path")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"relay exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url + "/").status_code == 401:
                    return
            time.sleep(0.1)
    pytest.fail(f"relay did not answer within 30 s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Stop the relay we started, by its PID, then any of its workers left behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", log.read_text()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@pytest_asyncio.fixture(scope="module")
async def upstream() -> AsyncIterator[MockUpstream]:
    mock = MockUpstream()
    await mock.start()
    yield mock
    await mock.close()


@pytest.fixture(scope="module")
def relay(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    table = {"mock": f"http://127.0.0.1:{upstream.port}", "dead": f"http://127.0.0.1:{free_port()}"}
    env = {
        **os.environ,
        "TOLLGATE_RELAY_SECRET": SECRET,
        "TOLLGATE_RELAY_UPSTREAMS": json.dumps(table),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path_factory.mktemp("relay") / "relay.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_proxy", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(url, proc, log)
        yield url
    finally:
        stop(proc, log)


@pytest_asyncio.fixture(name="client")
async def fx_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=15) as client:
        yield client


def assert_relay_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["x-relay-error"] == code
    body = response.json()
    assert body["error"]["type"] == "relay_error"
    assert body["error"]["code"] == code


async def test_relay_streams_sse_events_as_upstream_sends_them(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    upstream.sse_sent_at.clear()

    async with client.stream("GET", f"{relay}/mock/sse", headers=KEY) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        arrived_at = [
            time.monotonic() async for line in response.aiter_lines() if line.startswith("data:")
        ]

    sent_at = upstream.sse_sent_at
    assert len(arrived_at) == len(sent_at) == SSE_EVENTS
    # Each event arrives right after the upstream sends it, long before the last one is sent.
    assert arrived_at[0] < sent_at[-1] - 3 * SSE_GAP
    for sent, arrived in zip(sent_at, arrived_at, strict=True):
        assert 0 <= arrived - sent < SSE_GAP - 0.05


async def test_relay_keeps_length_of_8mb_upload(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    payload = os.urandom(UPLOAD_SIZE)

    response = await client.post(
        f"{relay}/mock/echo/upload",
        headers={**KEY, "content-type": "application/octet-stream"},
        content=payload,
    )

    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert headers["content-length"] == str(UPLOAD_SIZE)
    assert "transfer-encoding" not in headers
    assert seen["body_length"] == UPLOAD_SIZE


async def test_relay_streams_chunked_upload(relay: str, client: httpx.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"z" * 16384

    response = await client.post(f"{relay}/mock/echo/chunked", headers=KEY, content=parts())

    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert seen["body_length"] == 64 * 16384


async def test_relay_passes_429_and_retry_after(relay: str, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{relay}/mock/ratelimited", headers=KEY, json={"x": 1})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert "x-relay-error" not in response.headers
    assert response.json() == {"error": {"type": "rate_limit_error", "message": "slow down"}}


async def test_relay_closes_upstream_when_client_aborts(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    upstream.endless_done.clear()
    upstream.endless_outcome = ""
    received = 0

    async with client.stream("GET", f"{relay}/mock/endless", headers=KEY) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                received += 1
            if received == 3:
                break
    # Leaving the block mid-body closes the client's connection to the relay.

    await asyncio.wait_for(upstream.endless_done.wait(), timeout=10)
    assert upstream.endless_outcome == "disconnected"


async def test_relay_refuses_unknown_prefix(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    before = len(upstream.requests)

    response = await client.get(f"{relay}/mistral/v1/models", headers=KEY)

    assert_relay_error(response, 404, "unknown_upstream")
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "relay_key_missing"), ({"x-relay-key": "not-the-secret"}, "relay_key_invalid")],
)
async def test_relay_refuses_missing_or_wrong_secret(
    relay: str,
    upstream: MockUpstream,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    code: str,
) -> None:
    before = len(upstream.requests)

    response = await client.get(f"{relay}/mock/echo", headers=headers)

    assert_relay_error(response, 401, code)
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    "path",
    [
        "/mock/%2e%2e/echo",
        "/mock/%2E%2E/%2e%2e/echo",
        "/mock//echo",
        "/mock/echo@evil",
        "/mock/a%5Cb",
    ],
)
async def test_relay_refuses_traversal(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient, path: str
) -> None:
    before = len(upstream.requests)

    response = await client.get(relay + path, headers=KEY)

    assert_relay_error(response, 400, "invalid_path")
    assert len(upstream.requests) == before


async def test_relay_refuses_literal_dot_dot_on_the_wire(
    relay: str, upstream: MockUpstream
) -> None:
    # httpx would normalise `..` away, so this request is written by hand.
    port = int(relay.rsplit(":", 1)[1])
    before = len(upstream.requests)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /mock/../mock/echo HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"x-relay-key: " + SECRET.encode() + b"\r\nconnection: close\r\n\r\n"
        )
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()

    assert reply.startswith(b"HTTP/1.1 400")
    assert b"x-relay-error: invalid_path" in reply.lower()
    assert len(upstream.requests) == before


async def test_relay_forwards_no_forbidden_header(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    forbidden = {
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "relay.example.org",
        "forwarded": "for=203.0.113.7",
        "cf-connecting-ip": "203.0.113.7",
        "cf-ipcountry": "CN",
        "cf-ray": "8c0ffee-HKG",
        "x-real-ip": "203.0.113.7",
        "true-client-ip": "203.0.113.7",
        "x-client-ip": "203.0.113.7",
        "via": "1.1 edge",
        "cdn-loop": "cloudflare",
        "cookie": "session=caller",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
    }
    allowed = {
        "authorization": "Bearer sk-upstream",
        "x-goog-api-key": "AIza-upstream",
        "anthropic-version": "2023-06-01",
        "user-agent": "tollgate-e2e",
    }

    response = await client.get(
        f"{relay}/mock/echo/headers?alt=sse&key=abc%20d",
        headers={**KEY, **forbidden, **allowed},
    )

    assert response.status_code == 200
    seen = response.json()
    names = [name.lower() for name, _ in seen["headers"]]
    assert seen["target"] == "/echo/headers?alt=sse&key=abc%20d"
    assert not set(names) & {*forbidden, "x-relay-key"}
    assert all(SECRET not in value for _, value in seen["headers"])
    assert {name: value for name, value in seen["headers"] if name in allowed} == allowed
    assert dict(seen["headers"])["host"] == f"127.0.0.1:{upstream.port}"


async def test_relay_returns_redirect_without_following(
    relay: str, upstream: MockUpstream, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{relay}/mock/redirect", headers=KEY)

    assert response.status_code == 302
    assert response.headers["location"] == "/echo/redirected"
    assert all(seen.target != "/echo/redirected" for seen in upstream.requests)


async def test_relay_passes_compressed_body_unchanged(
    relay: str, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{relay}/mock/gzip", headers=KEY)

    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == GZIP_TEXT


async def test_relay_drops_upstream_relay_error_header(
    relay: str, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{relay}/mock/spoof", headers=KEY)

    assert response.status_code == 500
    assert "x-relay-error" not in response.headers
    assert response.content == b"upstream failure"


async def test_relay_reports_unreachable_upstream(relay: str, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{relay}/dead/v1/models", headers=KEY)

    assert_relay_error(response, 502, "upstream_unreachable")
