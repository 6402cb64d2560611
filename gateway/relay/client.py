"""The one small interface through which the gateway calls upstreams, and its implementations.

The upstream client is the largest cost on the request path, so it sits behind
:class:`RelayClient` and ``make bench`` picks the implementation by measurement
(``TOLLGATE_GATEWAY_RELAY_CLIENT``): ``aiohttp`` directly, ``httpx`` with its default
transport, or ``httpx-aiohttp`` (httpx's API over aiohttp's transport). Everything else in
the project (tests, channel checks, tooling) uses httpx.

Transport failures are translated here, at the boundary, into
:class:`~gateway.errors.UpstreamConnectError` and :class:`~gateway.errors.UpstreamTimeoutError`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp
import httpx

from gateway.errors import UpstreamConnectError, UpstreamTimeoutError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from shared.settings import GatewaySettings, RelayClientKind

__all__ = ("RelayClient", "UpstreamReadError", "UpstreamResponse", "create_relay_client")

MAX_CONNECTIONS: Final = 1000
"""Open upstream connections per worker, across all hosts."""


class UpstreamReadError(UpstreamConnectError):
    """Raised when the upstream connection breaks in the middle of a body."""


class UpstreamResponse(Protocol):
    """An upstream response whose body has not been read yet."""

    status: int
    headers: dict[str, str]
    """Response headers with lower-case names."""

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Yield body bytes as they arrive."""
        ...

    async def read(self, limit: int) -> bytes:
        """Read the whole body, at most ``limit`` bytes of it."""
        ...

    async def close(self) -> None:
        """Release (or, mid-body, abort) the connection."""
        ...


class RelayClient(Protocol):
    """Sends one request upstream and returns once the response headers are in."""

    async def send(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send a request; the body of the response is read through the returned object."""
        ...

    async def close(self) -> None:
        """Close every pooled connection."""
        ...


async def _read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Join a body's chunks, stopping once more than ``limit`` bytes have arrived."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            break
        parts.append(chunk)
    return b"".join(parts)


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            msg = "upstream went silent in the middle of its response"
            raise UpstreamTimeoutError(msg) from exc
        except aiohttp.ClientError as exc:
            msg = f"upstream connection broke mid-response: {type(exc).__name__}"
            raise UpstreamReadError(msg) from exc

    async def read(self, limit: int) -> bytes:
        return await _read_limited(self.iter_chunks(), limit)

    async def close(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpRelayClient:
    """:class:`RelayClient` on aiohttp's client directly."""

    def __init__(self, settings: GatewaySettings) -> None:
        """Build the session lazily, inside the running event loop."""
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._settings.connect_timeout,
                    sock_read=self._settings.read_timeout,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def send(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        try:
            response = await self._client().request(
                method, url, headers=list(headers), data=body, allow_redirects=False
            )
        except TimeoutError as exc:
            msg = f"upstream did not answer within its timeout ({type(exc).__name__})"
            raise UpstreamTimeoutError(msg) from exc
        except aiohttp.ClientError as exc:
            msg = f"could not reach the upstream: {type(exc).__name__}"
            raise UpstreamConnectError(msg) from exc
        return _AiohttpResponse(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            msg = "upstream went silent in the middle of its response"
            raise UpstreamTimeoutError(msg) from exc
        except httpx.TransportError as exc:
            msg = f"upstream connection broke mid-response: {type(exc).__name__}"
            raise UpstreamReadError(msg) from exc

    async def read(self, limit: int) -> bytes:
        return await _read_limited(self.iter_chunks(), limit)

    async def close(self) -> None:
        with contextlib.suppress(httpx.TransportError):
            await self._response.aclose()


class HttpxRelayClient:
    """:class:`RelayClient` on httpx, with its default transport or aiohttp's."""

    def __init__(self, settings: GatewaySettings, *, aiohttp_transport: bool = False) -> None:
        """Build the client lazily, inside the running event loop."""
        self._settings = settings
        self._aiohttp_transport = aiohttp_transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            )
            timeout = httpx.Timeout(
                connect=self._settings.connect_timeout,
                read=self._settings.read_timeout,
                write=self._settings.read_timeout,
                pool=self._settings.connect_timeout,
            )
            transport: httpx.AsyncBaseTransport | None = None
            if self._aiohttp_transport:
                from httpx_aiohttp import AiohttpTransport

                transport = AiohttpTransport(limits=limits)
            self._http = httpx.AsyncClient(
                limits=limits, timeout=timeout, transport=transport, follow_redirects=False
            )
        return self._http

    async def send(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        client = self._client()
        request = client.build_request(method, url, headers=list(headers), content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            msg = f"upstream did not answer within its timeout ({type(exc).__name__})"
            raise UpstreamTimeoutError(msg) from exc
        except httpx.TransportError as exc:
            msg = f"could not reach the upstream: {type(exc).__name__}"
            raise UpstreamConnectError(msg) from exc
        return _HttpxResponse(response)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def create_relay_client(
    settings: GatewaySettings, kind: RelayClientKind | None = None
) -> RelayClient:
    """Return the relay client implementation named by ``kind`` (or the settings)."""
    chosen = kind or settings.relay_client
    if chosen == "aiohttp":
        return AiohttpRelayClient(settings)
    return HttpxRelayClient(settings, aiohttp_transport=chosen == "httpx-aiohttp")
