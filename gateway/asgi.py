"""Small helpers for the raw ASGI handlers on the request path.

The relaying endpoints are raw ASGI handlers mounted in Litestar: they need to stop
reading a body at its size limit, to decide the status only once the upstream answered,
and to notice a client that leaves mid-stream, which a framework response hides.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar.types import Receive, Scope, Send

__all__ = (
    "DisconnectWatcher",
    "header",
    "headers_of",
    "query_param",
    "read_body",
    "send_bytes",
    "start_response",
)

_CHUNK_HINT: Final = 64 * 1024


def header(scope: Scope, name: bytes) -> str | None:
    """Return the first request header called ``name`` (lower case), decoded as Latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def headers_of(scope: Scope) -> dict[str, str]:
    """Return the request headers as a dict of lower-case names (the last value wins)."""
    return {bytes(k).decode("latin-1"): bytes(v).decode("latin-1") for k, v in scope["headers"]}


def query_param(scope: Scope, name: str) -> str | None:
    """Return one query-string parameter."""
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """Read the request body, refusing it with 413 as soon as it passes ``limit`` bytes.

    Raises:
        GatewayError: 413 ``request_too_large``, before the rest of the body is read.
    """
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            msg = "The request body ended before it was complete."
            raise GatewayError(400, "incomplete_body", msg)
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    msg = (
        f"The request body is larger than this gateway accepts ({limit} bytes). "
        "Send smaller images, or ask the operator to raise TOLLGATE_GATEWAY_MAX_BODY_BYTES."
    )
    return GatewayError(413, "request_too_large", msg)


async def start_response(
    send: Send, status: int, headers: Iterable[tuple[str, str]], *, content_type: str
) -> None:
    """Send the status line and headers."""
    raw = [(b"content-type", content_type.encode())]
    raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def send_bytes(send: Send, body: bytes, *, more: bool) -> None:
    """Send a piece of the body."""
    await send({"type": "http.response.body", "body": body, "more_body": more})


class DisconnectWatcher:
    """Watches ``receive`` after the body was read and flags the client leaving."""

    __slots__ = ("_task", "gone")

    def __init__(self, receive: Receive) -> None:
        """Start watching at once."""
        self.gone = asyncio.Event()
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    def stop(self) -> None:
        """Stop watching."""
        self._task.cancel()
