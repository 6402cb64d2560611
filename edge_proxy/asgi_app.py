"""The edge relay as a bare ASGI application over httpx streaming, and its granian runner.

Use it where a Cloudflare Worker is not wanted: local development, CI, and a relay on an
operator's own overseas server (``tollgate relay --port N``). Every decision is taken by
:mod:`edge_proxy.relay_core`; this module only moves bytes. Request bodies are streamed up
and response bodies streamed back chunk by chunk as raw bytes (``content-encoding`` kept), so
server-sent events reach the caller as the upstream sends them. Redirects are returned, not
followed. When the caller goes away mid-response the upstream response is closed at once.
"""

from __future__ import annotations

import asyncio
import copy
import http.cookiejar
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Final

import httpx

from edge_proxy.relay_core import (
    DEFAULT_UPSTREAMS,
    Forward,
    Refusal,
    RelayPolicy,
    filter_response_headers,
    parse_upstreams,
    request_has_body,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)

SECRET_ENV: Final = "TOLLGATE_RELAY_SECRET"  # noqa: S105 - a variable name, not a secret
"""Environment variable holding the shared relay secret."""

UPSTREAMS_ENV: Final = "TOLLGATE_RELAY_UPSTREAMS"
"""Environment variable holding the upstream table as a JSON object."""

DEFAULT_HOST: Final = "127.0.0.1"
"""Address :func:`serve` binds when none is given."""

DEFAULT_PORT: Final = 8787
"""Port :func:`serve` binds when none is given."""

CONNECT_TIMEOUT: Final = 10.0
"""Seconds allowed to open a connection to an upstream."""

READ_TIMEOUT: Final = 600.0
"""Seconds allowed between two reads from an upstream; reasoning models can pause long."""

WRITE_TIMEOUT: Final = 60.0
"""Seconds allowed between two writes of a request body to an upstream."""

POOL_TIMEOUT: Final = 10.0
"""Seconds a request may wait for a free upstream connection."""

CLIENT_CLOSED_STATUS: Final = 499
"""Status logged when the caller left before the upstream answered (nginx's convention)."""

MAX_CONNECTIONS: Final = 512
"""Upstream connections open at once, per worker process."""


class RelayApp:
    """ASGI application that relays HTTP requests as :class:`RelayPolicy` decides.

    Lifespan events are supported (the upstream client is closed on shutdown); websocket
    connections are refused.
    """

    def __init__(
        self, policy: RelayPolicy, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.policy = policy
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "http":
            await self._handle_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._handle_lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def aclose(self) -> None:
        """Close the upstream client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No cookie may be stored: cookies of one caller must not reach another.
            jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                cookies=jar,
                timeout=httpx.Timeout(
                    connect=CONNECT_TIMEOUT,
                    read=READ_TIMEOUT,
                    write=WRITE_TIMEOUT,
                    pool=POOL_TIMEOUT,
                ),
                limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
                transport=self._transport,
            )
        return self._client

    async def _handle_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.policy.secret:
                    logger.warning(
                        "relay secret not configured; every request is refused until %s is set",
                        SECRET_ENV,
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")

        decision = self.policy.decide(
            scope["method"], path, query, headers, keep_content_length=True
        )
        if isinstance(decision, Refusal):
            logger.info(
                "relay refused method=%s status=%d code=%s",
                scope["method"][:16],
                decision.status,
                decision.code,
            )
            await _send_refusal(send, decision)
            return

        started = time.perf_counter()
        status = await self._forward(
            decision, scope["method"], request_has_body(headers), receive, send
        )
        logger.info(
            "relay request method=%s upstream=%s status=%d latency_ms=%d",
            scope["method"],
            decision.upstream,
            status,
            round((time.perf_counter() - started) * 1000),
        )

    async def _forward(
        self, forward: Forward, method: str, has_body: bool, receive: Receive, send: Send
    ) -> int:
        """Send the request upstream and stream the response back.

        Returns:
            The status sent to the caller, or 499 when the caller left before the upstream
            answered.
        """
        request = httpx.Request(
            method,
            forward.url,
            headers=[
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in forward.headers
            ],
            content=_request_body(receive) if has_body else None,
        )
        try:
            response = await self._get_client().send(request, stream=True)
        except _ClientGoneError:
            return CLIENT_CLOSED_STATUS
        except httpx.TimeoutException:
            logger.warning("upstream timed out upstream=%s", forward.upstream)
            await _send_refusal(
                send, Refusal(504, "upstream_timeout", f"upstream `{forward.upstream}` timed out")
            )
            return 504
        except httpx.TransportError as exc:
            logger.warning(
                "upstream unreachable upstream=%s error=%s", forward.upstream, type(exc).__name__
            )
            await _send_refusal(
                send,
                Refusal(
                    502,
                    "upstream_unreachable",
                    f"upstream `{forward.upstream}` failed: {type(exc).__name__}",
                ),
            )
            return 502

        try:
            await _relay_response(response, receive, send, upstream=forward.upstream)
        finally:
            await response.aclose()
        return response.status_code


class _ClientGoneError(Exception):
    """Raised inside the request body stream when the caller disconnects mid-upload."""


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _relay_response(
    response: httpx.Response, receive: Receive, send: Send, *, upstream: str
) -> None:
    """Stream the upstream response to the caller until it ends or the caller leaves."""
    raw_headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw
    ]
    headers = filter_response_headers(raw_headers, body_decoded=False)

    async def pump() -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
                ],
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def watch_disconnect() -> None:
        # The request body is fully sent before the upstream answers, so from here on the
        # only message left to receive is the disconnect (body chunks are skipped if an
        # upstream answered early).
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(watch_disconnect())
    try:
        done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pump_task.cancel()
        watch_task.cancel()
        outcome, _ = await asyncio.gather(pump_task, watch_task, return_exceptions=True)

    if watch_task in done or isinstance(outcome, OSError):
        # The caller left; the upstream response is closed by our caller, which is the point.
        return
    if isinstance(outcome, httpx.HTTPError):
        # The status line is gone already: ending the response early is the only signal left.
        logger.warning(
            "upstream stream interrupted upstream=%s error=%s", upstream, type(outcome).__name__
        )
    elif isinstance(outcome, Exception):
        raise outcome


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    body = refusal.body()
    headers = [*refusal.headers(), ("content-length", str(len(body)))]
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def create_app(
    secret: str | None,
    upstreams: Mapping[str, str] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RelayApp:
    """Build the relay ASGI application.

    Args:
        secret: Shared secret callers must send in ``x-relay-key``; ``None`` or empty makes
            the relay refuse every request with a 500 relay error.
        upstreams: First path segment to upstream base URL; the default table when ``None``.
        transport: httpx transport for upstream calls; tests pass a mock transport.

    Raises:
        UpstreamTableError: if the upstream table is invalid.
    """
    table = DEFAULT_UPSTREAMS if upstreams is None else upstreams
    return RelayApp(RelayPolicy(secret=secret, upstreams=table), transport=transport)


def app_from_env() -> RelayApp:
    """Build the relay from ``TOLLGATE_RELAY_SECRET`` and ``TOLLGATE_RELAY_UPSTREAMS``.

    This is the factory granian loads in each worker process.

    Raises:
        UpstreamTableError: if ``TOLLGATE_RELAY_UPSTREAMS`` is set but invalid.
    """
    secret = os.environ.get(SECRET_ENV) or None
    table_json = os.environ.get(UPSTREAMS_ENV)
    upstreams = parse_upstreams(table_json) if table_json else None
    return create_app(secret, upstreams)


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    secret: str | None = None,
    upstreams: Mapping[str, str] | None = None,
    workers: int = 1,
) -> None:
    """Run the relay under granian until interrupted.

    Granian imports the application by name in each worker, so the configuration travels
    through the environment: a given ``secret`` or ``upstreams`` is written to
    ``TOLLGATE_RELAY_SECRET`` / ``TOLLGATE_RELAY_UPSTREAMS`` of this process, and a
    ``None`` leaves whatever those variables already hold.

    Args:
        host: Address to bind; keep the loopback default unless the relay must be public.
        port: TCP port to bind.
        secret: Shared relay secret, or ``None`` to read ``TOLLGATE_RELAY_SECRET``.
        upstreams: Upstream table, or ``None`` to read ``TOLLGATE_RELAY_UPSTREAMS`` (the
            default table when that is unset too).
        workers: Number of worker processes.

    Raises:
        UpstreamTableError: if the upstream table is invalid.
    """
    # Only the runner needs the server; importing the app (or testing it) does not.
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LOGGING_CONFIG

    if secret is not None:
        os.environ[SECRET_ENV] = secret
    if upstreams is not None:
        os.environ[UPSTREAMS_ENV] = json.dumps(dict(upstreams))

    # Fail here, once, rather than in every worker.
    app_from_env()

    log_config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["edge_proxy"] = {
        "handlers": ["console"],
        "level": "INFO",
        "propagate": False,
    }
    # httpx logs each request URL at INFO, and a Gemini URL may carry `?key=`.
    log_config["loggers"]["httpx"] = {"level": "WARNING"}
    log_config["loggers"]["httpcore"] = {"level": "WARNING"}

    server = Granian(
        target="edge_proxy.asgi_app:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        websockets=False,
        log_dictconfig=log_config,
    )
    server.serve()
