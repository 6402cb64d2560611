"""The two halves every request is relayed through: a client codec and an upstream codec.

A :class:`ClientCodec` speaks the protocol the tenant called (decoded by its surface); an
:class:`UpstreamCodec` speaks a channel's protocol. When both speak the same protocol the
engine relays the upstream's bytes (``passthrough_*``: only the model name is rewritten
and usage read); otherwise the upstream's answer is decoded to canonical events and the
client codec encodes them. The registry in :mod:`gateway.providers` maps channel kinds
to upstream codecs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import httpx

    from gateway.canonical import ChatRequest, ChatResponse, Event
    from gateway.errors import UpstreamStatusError
    from gateway.snapshot import ChannelEntry
    from gateway.sse import SSEEvent
    from shared.money import Usage

__all__ = ("ClientCodec", "UpstreamCall", "UpstreamCodec", "UpstreamStream", "upstream_codec")


class UpstreamCall(msgspec.Struct):
    """One HTTP request to an upstream."""

    url: str
    headers: list[tuple[str, str]]
    body: bytes


class UpstreamStream(Protocol):
    """Decodes one upstream stream into canonical events."""

    complete: bool
    """True once the upstream protocol's own end-of-answer signal has been seen."""

    def feed(self, event: SSEEvent) -> list[Event]:
        """Return the canonical events one upstream SSE event carries."""
        ...


class UpstreamCodec(Protocol):
    """Encodes requests for, and decodes answers from, one upstream protocol."""

    protocol: str
    """Wire protocol: ``openai``, ``anthropic`` or ``gemini``."""

    async def build(
        self,
        channel: ChannelEntry,
        request: ChatRequest,
        raw: dict[str, Any] | None,
        *,
        client_headers: Mapping[str, str],
        http: httpx.AsyncClient,
    ) -> UpstreamCall:
        """Return the upstream call; ``raw`` is the client's own body when passing through."""
        ...

    def decode_response(self, body: bytes) -> ChatResponse:
        """Decode a complete answer (raises an ``UpstreamError`` for a malformed one)."""
        ...

    def open_stream(self) -> UpstreamStream:
        """Return a decoder for one streamed answer."""
        ...

    def status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """Map an error response to the error the client sees if no channel succeeds."""
        ...


class ClientCodec(Protocol):
    """Encodes answers in the protocol the client called, for one request."""

    protocol: str
    stream_content_type: str

    def error_body(self, error: GatewayError) -> bytes:
        """Render an error in this protocol's shape."""
        ...

    def encode_response(self, response: ChatResponse, usage: Usage, cost: int) -> bytes:
        """Encode a complete canonical answer."""
        ...

    def passthrough_response(self, body: bytes, usage: Usage, cost: int) -> bytes:
        """Relay a same-protocol answer, with the client's model name and the cost."""
        ...

    def stream_open(self) -> bytes:
        """Bytes written right after the status line (may be empty)."""
        ...

    def encode_events(self, events: list[Event]) -> bytes:
        """Encode canonical events."""
        ...

    def passthrough_event(
        self, event: SSEEvent, events: list[Event], cost_of: Callable[[Usage], int]
    ) -> bytes:
        """Relay a same-protocol event (``events`` is what it decoded to)."""
        ...

    def stream_close(
        self, usage: Usage, cost: int, *, complete: bool, error: GatewayError | None
    ) -> bytes:
        """End the stream: the protocol's terminator, or its error event."""
        ...


def upstream_codec(kind: str) -> UpstreamCodec:
    """Return the codec for a channel kind.

    Raises:
        GatewayError: 502 when no codec serves the kind (a misconfigured channel).
    """
    from gateway.providers import upstream_codecs

    codec = upstream_codecs().get(kind)
    if codec is None:
        msg = f"no upstream adaptor for channel kind `{kind}`"
        raise GatewayError(502, "unsupported_channel", msg, type="upstream_error", retryable=True)
    return codec
