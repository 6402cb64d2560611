"""The relay step: try channels, stream back, meter what was delivered.

A request is *committed* once its status line has gone to the client. Until then, a
connect error, timeout, 429, 5xx, a malformed answer, or a stream that ends (or reports
an error) before its first content moves on to the next channel (never one that already
failed this request). After it, nothing is retried: a failure ends the stream with the
client protocol's error event, and only the attempt that produced the output is billed.

Same-protocol pairs relay the upstream's bytes; other pairs decode the upstream to
canonical events and encode them for the client (see :mod:`gateway.translate`). Either
way the canonical events meter the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

from gateway.asgi import send_bytes, start_response
from gateway.canonical import (
    ChatRequest,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
    merge_usage,
)
from gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    malformed_input,
)
from gateway.relay.edge import is_relay_error, via_relay
from gateway.routing import order_channels
from gateway.sse import SSEDecoder, SSEEvent
from gateway.tokens import TokenCounter, count_prompt
from gateway.translate import upstream_codec
from shared.money import Usage, compute_cost, format_usd

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping

    from litestar.types import Send

    from gateway.asgi import DisconnectWatcher
    from gateway.billing import UsageRecord
    from gateway.canonical import ChatResponse, Event
    from gateway.relay import UpstreamResponse
    from gateway.routing import Route
    from gateway.snapshot import ChannelEntry, TenantEntry
    from gateway.state import GatewayState
    from gateway.translate import ClientCodec, UpstreamCall, UpstreamCodec, UpstreamStream

logger = logging.getLogger(__name__)

__all__ = ("Exchange", "first_byte_timeout", "relay", "send_call", "try_channels")

_ERROR_BODY_LIMIT: Final = 64 * 1024
_RESPONSE_LIMIT: Final = 256 * 1024 * 1024
_SSE_HEADERS: Final = (("cache-control", "no-cache"), ("x-accel-buffering", "no"))
_T = TypeVar("_T")


class Exchange:
    """Everything one generation request carries through relaying and settlement."""

    __slots__ = (
        "client",
        "client_headers",
        "committed",
        "counter",
        "prompt_estimate",
        "raw",
        "record",
        "request",
        "response_headers",
        "route",
        "tenant",
        "upstream_usage",
    )

    def __init__(
        self,
        *,
        request: ChatRequest,
        raw: dict[str, Any] | None,
        client: ClientCodec,
        route: Route,
        tenant: TenantEntry,
        record: UsageRecord,
        response_headers: dict[str, str],
        client_headers: Mapping[str, str],
    ) -> None:
        self.request = request
        self.raw = raw
        self.client = client
        self.route = route
        self.tenant = tenant
        self.record = record
        self.response_headers = response_headers
        self.client_headers = client_headers
        self.committed = False
        self.upstream_usage: Usage | None = None
        self.counter = TokenCounter()
        self.prompt_estimate: int | None = None

    def final_usage(self) -> Usage:
        """Return the upstream's usage, or an estimate over what was actually delivered."""
        if self.upstream_usage is not None:
            return self.upstream_usage
        if self.prompt_estimate is None:
            self.prompt_estimate = count_prompt(self.request)
        return Usage(
            input_tokens=self.prompt_estimate,
            output_tokens=self.counter.finish(),
            estimated=True,
        )

    def cost_of(self, usage: Usage) -> int:
        """Return the charge for ``usage`` in nano-dollars."""
        return compute_cost(usage, self.route.price, self.tenant.ratio)

    def meter(self, events: list[Event], *, delivered: bool) -> None:
        """Take usage from events, and count delivered output for the fallback estimate."""
        for event in events:
            if isinstance(event, UsageUpdate):
                self.upstream_usage = merge_usage(self.upstream_usage, event.usage)
            elif not delivered:
                continue
            elif isinstance(event, TextDelta | ReasoningDelta):
                self.counter.add(event.text)
            elif isinstance(event, ToolCallStart):
                self.counter.add(event.name)
            elif isinstance(event, ToolCallDelta):
                self.counter.add(event.arguments)


async def relay(
    state: GatewayState, exchange: Exchange, send: Send, watcher: DisconnectWatcher
) -> None:
    """Serve the request from the first channel that answers, and write the response.

    Raises:
        GatewayError: the last channel's failure when none could serve the request and
            nothing has been sent to the client yet.
    """

    async def attempt(channel: ChannelEntry) -> Coroutine[Any, Any, None]:
        codec = upstream_codec(channel.kind)
        if exchange.request.stream:
            opened = await _open_stream(state, exchange, channel, codec)
            return _stream_to_client(state, exchange, send, watcher, *opened)
        answer = await _fetch_answer(state, exchange, channel, codec)
        return _send_answer(exchange, send, codec, *answer)

    deliver = await try_channels(
        state, exchange.route.channels, exchange.record, exchange.request.model, attempt
    )
    await deliver


async def try_channels(
    state: GatewayState,
    channels: list[ChannelEntry],
    record: UsageRecord,
    model: str,
    attempt: Callable[[ChannelEntry], Awaitable[_T]],
) -> _T:
    """Run ``attempt`` on each channel in turn until one succeeds; return its result.

    Channels are ordered by :func:`gateway.routing.order_channels` and at most
    ``max_attempts`` are tried. An ``UpstreamError`` that is retryable moves on to the next
    channel; one that is not ends the loop. ``record`` counts the attempts and names the last
    channel tried.

    Raises:
        GatewayError: the last channel's failure, or 503 ``no_available_channel`` when no
            channel could be tried.
    """
    last_error: UpstreamError | None = None
    ordered = order_channels(channels, state.health)
    for channel in ordered[: state.settings.gateway.max_attempts]:
        record.attempts += 1
        record.channel_id = channel.id
        record.upstream_model = channel.upstream_model(model)
        try:
            result = await attempt(channel)
        except UpstreamError as exc:
            last_error = exc
            if exc.counts_against_channel:
                state.health.record_failure(channel.id)
            logger.warning(
                "upstream attempt failed",
                extra={
                    "request_id": record.request_id,
                    "channel_id": channel.id,
                    "upstream_status": exc.status,
                    "error": exc.message,
                },
            )
            if not exc.retryable:
                break
            continue
        state.health.record_success(channel.id)
        return result
    if last_error is None:
        msg = "no channel could be tried for this model"
        raise GatewayError(503, "no_available_channel", msg, type="upstream_error")
    raise last_error


def first_byte_timeout(state: GatewayState, channel: ChannelEntry) -> float:
    """Return the channel's first-byte timeout (its ``first_byte_timeout`` setting, seconds)."""
    value = channel.settings.get("first_byte_timeout")
    try:
        seconds = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds if seconds > 0 else state.settings.gateway.first_byte_timeout


def _is_passthrough(exchange: Exchange, codec: UpstreamCodec) -> bool:
    return exchange.raw is not None and codec.protocol == exchange.client.protocol


async def _call(
    state: GatewayState, exchange: Exchange, channel: ChannelEntry, codec: UpstreamCodec
) -> UpstreamResponse:
    raw = exchange.raw if _is_passthrough(exchange, codec) else None
    with malformed_input():
        call = await codec.build(
            channel, exchange.request, raw, client_headers=exchange.client_headers, http=state.http
        )
    return await send_call(state, channel, call)


async def send_call(
    state: GatewayState, channel: ChannelEntry, call: UpstreamCall
) -> UpstreamResponse:
    """Send ``call`` to the channel's upstream, through its edge relay when it has one.

    Raises:
        UpstreamError: when no connection could be made, or the relay refused the call.
    """
    if not channel.relay_url:
        return await state.client.send("POST", call.url, call.headers, call.body)
    url, headers = via_relay(call.url, call.headers, channel.relay_url, channel.relay_secret)
    try:
        response = await state.client.send("POST", url, headers, call.body)
    except UpstreamError as exc:
        exc.counts_against_channel = False
        exc.message = f"edge relay: {exc.message}"
        raise
    if is_relay_error(response.headers):
        body = await response.read(_ERROR_BODY_LIMIT)
        await response.close()
        detail = body[:300].decode("utf-8", errors="replace")
        raise UpstreamStatusError(
            502,
            "relay_error",
            f"the edge relay refused the call ({response.status}): {detail}",
            retryable=True,
            counts_against_channel=False,
        )
    return response


async def _open_stream(
    state: GatewayState, exchange: Exchange, channel: ChannelEntry, codec: UpstreamCodec
) -> tuple[
    AsyncIterator[bytes], SSEDecoder, UpstreamStream, bool, list[tuple[SSEEvent, list[Event]]]
]:
    """Send the request and read until the first content, so failover stays possible."""
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(first_byte_timeout(state, channel)):
            response = await _call(state, exchange, channel, codec)
            if response.status != 200:
                error_body = await response.read(_ERROR_BODY_LIMIT)
                raise codec.status_error(response.status, response.headers, error_body)
            chunks = response.iter_chunks()
            decoder = SSEDecoder()
            upstream = codec.open_stream()
            passthrough = _is_passthrough(exchange, codec)
            held: list[tuple[SSEEvent, list[Event]]] = []
            async for chunk in chunks:
                if _prime(upstream, decoder.feed(chunk), held):
                    exchange.record.first_byte_ms = _elapsed_ms(exchange)
                    return _closing(chunks, response), decoder, upstream, passthrough, held
            if _prime(upstream, decoder.flush(), held):
                return _closing(chunks, response), decoder, upstream, passthrough, held
            msg = "upstream closed the stream before sending any content"
            raise UpstreamProtocolError(msg)
    except TimeoutError as exc:
        if response is not None:
            await response.close()
        msg = "upstream sent nothing within the first-byte timeout"
        raise UpstreamTimeoutError(msg) from exc
    except UpstreamError:
        if response is not None:
            await response.close()
        raise


def _prime(
    upstream: UpstreamStream, events: list[SSEEvent], held: list[tuple[SSEEvent, list[Event]]]
) -> bool:
    """Decode events into ``held``; True once one carries content, an end or usage.

    Raises:
        UpstreamStatusError: when the upstream reports an error before any content.
    """
    substantive = any(_has_content(decoded) for _, decoded in held)
    for event in events:
        decoded = upstream.feed(event)
        for item in decoded:
            if isinstance(item, StreamError) and not substantive:
                raise UpstreamStatusError(item.status, item.code, item.message, retryable=True)
            if isinstance(item, TextDelta | ReasoningDelta | ToolCallStart | Finish | UsageUpdate):
                substantive = True
        held.append((event, decoded))
    return substantive or upstream.complete


def _has_content(events: list[Event]) -> bool:
    return any(
        isinstance(e, TextDelta | ReasoningDelta | ToolCallStart | Finish | UsageUpdate)
        for e in events
    )


async def _closing(
    chunks: AsyncIterator[bytes], response: UpstreamResponse
) -> AsyncIterator[bytes]:
    """Yield the rest of ``chunks`` and close the upstream response however the loop ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await response.close()


async def _fetch_answer(
    state: GatewayState, exchange: Exchange, channel: ChannelEntry, codec: UpstreamCodec
) -> tuple[bytes, ChatResponse]:
    try:
        async with asyncio.timeout(first_byte_timeout(state, channel)):
            response = await _call(state, exchange, channel, codec)
    except TimeoutError as exc:
        msg = "upstream did not answer within the first-byte timeout"
        raise UpstreamTimeoutError(msg) from exc
    try:
        if response.status != 200:
            error_body = await response.read(_ERROR_BODY_LIMIT)
            raise codec.status_error(response.status, response.headers, error_body)
        body = await response.read(_RESPONSE_LIMIT)
    finally:
        await response.close()
    exchange.record.first_byte_ms = _elapsed_ms(exchange)
    return body, codec.decode_response(body)


async def _send_answer(
    exchange: Exchange, send: Send, codec: UpstreamCodec, body: bytes, answer: ChatResponse
) -> None:
    if answer.usage is not None:
        exchange.upstream_usage = answer.usage
    else:
        for choice in answer.choices:
            for part in choice.parts:
                text = getattr(part, "text", None) or getattr(part, "arguments", None)
                if isinstance(text, str):
                    exchange.counter.add(text)
    usage = exchange.final_usage()
    cost = exchange.cost_of(usage)
    if _is_passthrough(exchange, codec):
        payload = exchange.client.passthrough_response(body, usage, cost)
    else:
        payload = exchange.client.encode_response(answer, usage, cost)
    exchange.record.http_status = 200
    exchange.record.status = "ok"
    headers = [*exchange.response_headers.items(), ("x-tollgate-cost", format_usd(cost))]
    exchange.committed = True
    await start_response(send, 200, headers, content_type="application/json")
    await send_bytes(send, payload, more=False)


class _StreamState:
    __slots__ = ("error", "finished")

    def __init__(self) -> None:
        self.finished = False
        self.error: StreamError | None = None


async def _stream_to_client(
    state: GatewayState,
    exchange: Exchange,
    send: Send,
    watcher: DisconnectWatcher,
    chunks: AsyncIterator[bytes],
    decoder: SSEDecoder,
    upstream: UpstreamStream,
    passthrough: bool,
    held: list[tuple[SSEEvent, list[Event]]],
) -> None:
    """Forward the stream event by event; after a disconnect, drain briefly for usage."""
    record = exchange.record
    client = exchange.client
    stream = _StreamState()
    exchange.committed = True
    record.http_status = 200
    headers = [*exchange.response_headers.items(), *_SSE_HEADERS]
    await start_response(send, 200, headers, content_type=client.stream_content_type)

    async def deliver(items: list[tuple[SSEEvent, list[Event]]]) -> bool:
        """Write events; return False once the client has gone."""
        for event, events in items:
            if watcher.gone.is_set():
                return False
            exchange.meter(events, delivered=True)
            _note(stream, events)
            out = (
                client.passthrough_event(event, events, exchange.cost_of)
                if passthrough
                else client.encode_events(events)
            )
            if not out:
                continue
            try:
                await send_bytes(send, out, more=True)
            except OSError:
                return False
        return True

    failure: UpstreamError | None = None
    try:
        opening = client.stream_open()
        if opening:
            await send_bytes(send, opening, more=True)
        client_gone = not await deliver(held) or not await _pump(
            chunks, decoder, upstream, stream, deliver, watcher
        )
    except UpstreamError as exc:
        failure = exc
        client_gone = False
    except OSError:
        client_gone = True
    if client_gone:
        await _drain_for_usage(state, exchange, upstream, chunks, decoder)
        _record_outcome(record, upstream, stream, None, "client disconnected mid-stream")
        return
    await _close_stream(exchange, upstream, stream, send, failure)


async def _pump(
    chunks: AsyncIterator[bytes],
    decoder: SSEDecoder,
    upstream: UpstreamStream,
    stream: _StreamState,
    deliver: Callable[[list[tuple[SSEEvent, list[Event]]]], Awaitable[bool]],
    watcher: DisconnectWatcher,
) -> bool:
    """Relay the rest of the stream; return False once the client has gone."""
    async for chunk in chunks:
        items = [(e, upstream.feed(e)) for e in decoder.feed(chunk)]
        if not await deliver(items) or watcher.gone.is_set():
            return False
        if stream.error is not None or _is_complete(upstream):
            return True
    return await deliver([(e, upstream.feed(e)) for e in decoder.flush()])


def _is_complete(upstream: UpstreamStream) -> bool:
    return upstream.complete


def _note(stream: _StreamState, events: list[Event]) -> None:
    for event in events:
        if isinstance(event, Finish):
            stream.finished = True
        elif isinstance(event, StreamError):
            stream.error = event


async def _drain_for_usage(
    state: GatewayState,
    exchange: Exchange,
    upstream: UpstreamStream,
    chunks: AsyncIterator[bytes],
    decoder: SSEDecoder,
) -> None:
    """Keep reading a little after the client left, to learn the upstream's usage."""
    try:
        if not upstream.complete:
            async with asyncio.timeout(state.settings.gateway.disconnect_grace):
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        exchange.meter(upstream.feed(event), delivered=False)
                    if _is_complete(upstream):
                        break
    except (TimeoutError, UpstreamError):
        pass
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _record_outcome(
    record: UsageRecord,
    upstream: UpstreamStream,
    stream: _StreamState,
    failure: UpstreamError | None,
    reason: str,
) -> None:
    if failure is not None or stream.error is not None:
        record.status = "error"
        record.error = (
            failure.message if failure else stream.error.message if stream.error else reason
        )
    elif upstream.complete or stream.finished:
        record.status = "ok"
    else:
        record.status = "truncated"
        record.error = reason


async def _close_stream(
    exchange: Exchange,
    upstream: UpstreamStream,
    stream: _StreamState,
    send: Send,
    failure: UpstreamError | None,
) -> None:
    complete = upstream.complete or stream.finished
    _record_outcome(
        exchange.record, upstream, stream, failure, "upstream stream ended before its end event"
    )
    usage = exchange.final_usage()
    if failure is None and stream.error is not None:
        tail = b""  # the client already received the upstream's own error event
    else:
        tail = exchange.client.stream_close(
            usage, exchange.cost_of(usage), complete=complete, error=failure
        )
    try:
        if tail:
            await send_bytes(send, tail, more=True)
        await send_bytes(send, b"", more=False)
    except OSError:
        exchange.record.error = exchange.record.error or "client left at the end of the stream"


def _elapsed_ms(exchange: Exchange) -> int:
    started = exchange.record.created_at.timestamp()
    return max(0, int((time.time() - started) * 1000))
