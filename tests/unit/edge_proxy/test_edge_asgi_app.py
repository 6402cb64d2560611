"""Unit tests of the ASGI relay shell, driven directly with an httpx mock transport."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from edge_proxy.asgi_app import RelayApp, app_from_env, create_app, serve
from edge_proxy.relay_core import UpstreamTableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SECRET = "unit-secret"
UPSTREAMS = {"up": "http://upstream.test"}


class Upstream:
    """Mock upstream behind httpx.MockTransport; records every request it is sent."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(await request.aread())
        return self.respond(request)  # type: ignore[no-any-return]


class TrackedStream(httpx.AsyncByteStream):
    """Response body that yields chunks with pauses and notes when it is closed."""

    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.chunks = chunks
        self.pause = pause
        self.closed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
            await asyncio.sleep(self.pause)

    async def aclose(self) -> None:
        self.closed.set()


class Exchange:
    """One ASGI call: what the app received and what it sent."""

    def __init__(self, body_chunks: list[bytes], disconnect: asyncio.Event | None = None) -> None:
        self._messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
            for i, chunk in enumerate(body_chunks or [b""])
        ]
        self._disconnect = disconnect or asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self.body_started = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self._messages:
            return self._messages.pop(0)
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and len(self.sent) >= 3:
            self.body_started.set()

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(k.decode(), v.decode()) for k, v in self.sent[0]["headers"]]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def scope_for(
    method: str, path: str, query: str = "", headers: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers or []],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


async def call(
    app: RelayApp,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: list[bytes] | None = None,
) -> Exchange:
    exchange = Exchange(body or [])
    scope = scope_for(method, path, query, headers)
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), timeout=5)
    return exchange


def upstream_response(
    status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> httpx.Response:
    """Build a response whose body is still a stream, as a network transport returns it."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def app_with(upstream: Any) -> RelayApp:
    return create_app(SECRET, UPSTREAMS, transport=httpx.MockTransport(upstream))


async def test_app_refuses_missing_key_with_relay_error() -> None:
    upstream = Upstream(lambda request: httpx.Response(200))
    app = app_with(upstream)

    exchange = await call(app, "GET", "/up/v1/models")

    assert exchange.status == 401
    assert exchange.headers == [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-relay-error", "relay_key_missing"),
        ("content-length", str(len(exchange.body))),
    ]
    assert json.loads(exchange.body) == {
        "error": {
            "type": "relay_error",
            "code": "relay_key_missing",
            "message": "the `x-relay-key` header is missing",
        }
    }
    assert upstream.requests == []


async def test_app_forwards_filtered_request_with_streamed_body() -> None:
    upstream = Upstream(lambda request: upstream_response(200, body=b'{"ok": true}'))
    app = app_with(upstream)
    chunks = [b"a" * 1000, b"b" * 1000, b"c" * 48]

    exchange = await call(
        app,
        "POST",
        "/up/v1/chat/completions",
        query="stream=true",
        headers=[
            ("x-relay-key", SECRET),
            ("x-forwarded-for", "203.0.113.7"),
            ("cf-connecting-ip", "203.0.113.7"),
            ("host", "relay.example.org"),
            ("authorization", "Bearer sk-upstream"),
            ("content-type", "application/json"),
            ("content-length", "2048"),
        ],
        body=chunks,
    )

    assert exchange.status == 200
    assert json.loads(exchange.body) == {"ok": True}
    (request,) = upstream.requests
    assert str(request.url) == "http://upstream.test/v1/chat/completions?stream=true"
    assert request.headers.raw == [
        (b"Host", b"upstream.test"),
        (b"authorization", b"Bearer sk-upstream"),
        (b"content-type", b"application/json"),
        (b"content-length", b"2048"),
    ]
    assert upstream.bodies == [b"".join(chunks)]


async def test_app_sends_no_body_when_request_has_none() -> None:
    upstream = Upstream(lambda request: upstream_response(204))
    app = app_with(upstream)

    exchange = await call(app, "GET", "/up/v1/models", headers=[("x-relay-key", SECRET)])

    assert exchange.status == 204
    (request,) = upstream.requests
    assert "content-length" not in request.headers
    assert "transfer-encoding" not in request.headers
    assert upstream.bodies == [b""]


async def test_app_relays_response_chunks_and_filters_headers() -> None:
    stream = TrackedStream([b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"])
    upstream = Upstream(
        lambda request: httpx.Response(
            200,
            headers=[
                ("content-type", "text/event-stream"),
                ("x-relay-error", "spoofed"),
                ("connection", "close"),
                ("x-request-id", "req-1"),
            ],
            stream=stream,
        )
    )
    app = app_with(upstream)

    exchange = await call(app, "GET", "/up/stream", headers=[("x-relay-key", SECRET)])

    assert exchange.headers == [("content-type", "text/event-stream"), ("x-request-id", "req-1")]
    assert [m["body"] for m in exchange.sent[1:]] == [
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"data: [DONE]\n\n",
        b"",
    ]
    assert exchange.sent[-1]["more_body"] is False
    assert stream.closed.is_set()


async def test_app_keeps_compressed_bytes_and_encoding() -> None:
    raw = b"\x1f\x8b\x08\x00not-really-gzip"
    upstream = Upstream(
        lambda request: upstream_response(
            200, [("content-encoding", "gzip"), ("content-length", str(len(raw)))], raw
        )
    )
    app = app_with(upstream)

    exchange = await call(app, "GET", "/up/x", headers=[("x-relay-key", SECRET)])

    assert exchange.body == raw
    assert ("content-encoding", "gzip") in exchange.headers
    assert ("content-length", str(len(raw))) in exchange.headers


async def test_app_returns_redirects_without_following() -> None:
    upstream = Upstream(
        lambda request: upstream_response(302, [("location", "http://elsewhere.test/x")])
    )
    app = app_with(upstream)

    exchange = await call(app, "GET", "/up/old", headers=[("x-relay-key", SECRET)])

    assert exchange.status == 302
    assert ("location", "http://elsewhere.test/x") in exchange.headers
    assert len(upstream.requests) == 1


async def test_app_passes_upstream_429_and_retry_after() -> None:
    upstream = Upstream(
        lambda request: upstream_response(
            429, [("retry-after", "7")], b'{"error":{"type":"rate_limit_error"}}'
        )
    )
    app = app_with(upstream)

    exchange = await call(app, "POST", "/up/v1/messages", headers=[("x-relay-key", SECRET)])

    assert exchange.status == 429
    assert ("retry-after", "7") in exchange.headers
    assert exchange.body == b'{"error":{"type":"rate_limit_error"}}'
    assert all(name != "x-relay-error" for name, _ in exchange.headers)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (httpx.ConnectError("refused"), 502, "upstream_unreachable"),
        (httpx.RemoteProtocolError("bad"), 502, "upstream_unreachable"),
        (httpx.ConnectTimeout("slow"), 504, "upstream_timeout"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
    ],
)
async def test_app_maps_transport_errors_to_relay_errors(
    error: Exception, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    app = app_with(fail)

    with caplog.at_level(logging.WARNING, logger="edge_proxy"):
        exchange = await call(app, "GET", "/up/x", headers=[("x-relay-key", SECRET)])

    assert exchange.status == status
    assert ("x-relay-error", code) in exchange.headers
    assert json.loads(exchange.body)["error"]["code"] == code
    assert [r.getMessage().split(" upstream=")[0] for r in caplog.records] == [
        "upstream timed out" if status == 504 else "upstream unreachable"
    ]


async def test_app_closes_upstream_when_client_disconnects() -> None:
    stream = TrackedStream([b"data: %d\n\n" % i for i in range(1000)], pause=0.05)
    upstream = Upstream(lambda request: httpx.Response(200, stream=stream))
    app = app_with(upstream)
    disconnect = asyncio.Event()
    exchange = Exchange([], disconnect)

    task = asyncio.ensure_future(
        app(
            scope_for("GET", "/up/endless", headers=[("x-relay-key", SECRET)]),
            exchange.receive,
            exchange.send,
        )
    )
    await asyncio.wait_for(exchange.body_started.wait(), timeout=5)
    disconnect.set()
    await asyncio.wait_for(task, timeout=5)

    assert stream.closed.is_set()
    assert len(exchange.sent) < 100
    assert exchange.sent[-1].get("more_body") is True


async def test_app_stops_quietly_when_client_leaves_during_upload() -> None:
    upstream = Upstream(lambda request: httpx.Response(200))
    app = app_with(upstream)
    exchange = Exchange([])
    exchange._messages = [{"type": "http.request", "body": b"part", "more_body": True}]
    exchange._disconnect.set()

    scope = scope_for("POST", "/up/x", headers=[("x-relay-key", SECRET), ("content-length", "100")])
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), timeout=5)

    assert exchange.sent == []


async def test_app_ends_response_early_when_upstream_breaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenStream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"
            msg = "connection reset"
            raise httpx.ReadError(msg)

    upstream = Upstream(lambda request: httpx.Response(200, stream=BrokenStream()))
    app = app_with(upstream)

    with caplog.at_level(logging.WARNING, logger="edge_proxy"):
        exchange = await call(app, "GET", "/up/x", headers=[("x-relay-key", SECRET)])

    assert [m.get("body") for m in exchange.sent[1:]] == [b"data: 1\n\n"]
    assert exchange.sent[-1]["more_body"] is True
    assert caplog.records[-1].getMessage() == (
        "upstream stream interrupted upstream=up error=ReadError"
    )


async def test_app_answers_lifespan_and_closes_client(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(None, UPSTREAMS)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.WARNING, logger="edge_proxy"):
        await asyncio.wait_for(app({"type": "lifespan"}, receive, send), timeout=5)

    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert [r.getMessage() for r in caplog.records] == [
        "relay secret not configured; every request is refused until TOLLGATE_RELAY_SECRET is set"
    ]


async def test_app_refuses_websockets() -> None:
    app = create_app(SECRET, UPSTREAMS)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/up/ws", "headers": []}, receive, send)

    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_app_refuses_everything_when_secret_unset() -> None:
    upstream = Upstream(lambda request: httpx.Response(200))
    app = create_app(None, UPSTREAMS, transport=httpx.MockTransport(upstream))

    exchange = await call(app, "GET", "/up/x", headers=[("x-relay-key", "")])

    assert exchange.status == 500
    assert json.loads(exchange.body)["error"]["message"] == "relay secret not configured"
    assert upstream.requests == []


def test_create_app_rejects_bad_table() -> None:
    with pytest.raises(UpstreamTableError, match="upstream `x` must be an absolute"):
        create_app(SECRET, {"x": "not a url"})


def test_app_from_env_reads_secret_and_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_RELAY_SECRET", SECRET)
    monkeypatch.setenv("TOLLGATE_RELAY_UPSTREAMS", '{"local": "http://127.0.0.1:9/"}')

    app = app_from_env()

    assert app.policy.secret == SECRET
    assert dict(app.policy.upstreams) == {"local": "http://127.0.0.1:9"}


def test_app_from_env_defaults_without_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLGATE_RELAY_SECRET", raising=False)
    monkeypatch.delenv("TOLLGATE_RELAY_UPSTREAMS", raising=False)

    app = app_from_env()

    assert app.policy.secret is None
    assert sorted(app.policy.upstreams) == ["anthropic", "cfai", "gemini", "openai"]


def test_app_from_env_rejects_bad_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_RELAY_UPSTREAMS", "{not json")

    with pytest.raises(UpstreamTableError, match="upstream table is not valid JSON"):
        app_from_env()


def test_serve_rejects_bad_table_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    # serve() hands its settings to the workers through these variables; restore them after.
    monkeypatch.setenv("TOLLGATE_RELAY_SECRET", "")
    monkeypatch.setenv("TOLLGATE_RELAY_UPSTREAMS", "")

    with pytest.raises(UpstreamTableError, match="upstream `x` must be an absolute"):
        serve("127.0.0.1", 0, SECRET, {"x": "not a url"})
