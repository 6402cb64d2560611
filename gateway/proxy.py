"""The relay step of a chat request: try channels, stream back, meter what was delivered.

A request is *committed* once its status line has gone to the client. Until then, a
connect error, timeout, 429, 5xx, a non-JSON answer or a stream that ends before its
first event moves on to the next channel (never one that already failed this request).
After it, nothing is retried: a failure ends the stream with an error event, and only
the attempt that produced the output is billed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.asgi import send_bytes, start_response
from gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError, UpstreamTimeoutError
from gateway.providers.openai import (
    build_chat_request,
    decode_completion,
    status_error,
    usage_from_openai,
)
from gateway.routing import order_channels
from gateway.sse import SSEDecoder, SSEEvent
from gateway.tokens import TokenCounter, count_chat_prompt
from shared.money import Usage, compute_cost, format_usd

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.types import Send

    from gateway.asgi import DisconnectWatcher
    from gateway.billing import UsageRecord
    from gateway.relay import UpstreamResponse
    from gateway.routing import Route
    from gateway.snapshot import ChannelEntry, TenantEntry
    from gateway.state import GatewayState

logger = logging.getLogger(__name__)

__all__ = ("ChatExchange", "relay_chat")

_ERROR_BODY_LIMIT: Final = 64 * 1024
_RESPONSE_LIMIT: Final = 256 * 1024 * 1024
_SSE_HEADERS: Final = (("cache-control", "no-cache"), ("x-accel-buffering", "no"))


class ChatExchange:
    """Everything one chat request carries through relaying and settlement."""

    __slots__ = (
        "client_wants_usage",
        "committed",
        "counter",
        "model",
        "payload",
        "record",
        "response_headers",
        "route",
        "stream",
        "tenant",
        "upstream_usage",
    )

    def __init__(
        self,
        *,
        payload: dict[str, Any],
        model: str,
        stream: bool,
        client_wants_usage: bool,
        route: Route,
        tenant: TenantEntry,
        record: UsageRecord,
        response_headers: dict[str, str],
    ) -> None:
        self.payload = payload
        self.model = model
        self.stream = stream
        self.client_wants_usage = client_wants_usage
        self.route = route
        self.tenant = tenant
        self.record = record
        self.response_headers = response_headers
        self.committed = False
        self.upstream_usage: Usage | None = None
        self.counter = TokenCounter()

    def final_usage(self) -> Usage:
        """Return the upstream's usage, or an estimate over what was actually delivered."""
        if self.upstream_usage is not None:
            return self.upstream_usage
        return Usage(
            input_tokens=count_chat_prompt(self.payload.get("messages") or []),
            output_tokens=self.counter.finish(),
            estimated=True,
        )

    def cost_of(self, usage: Usage) -> int:
        """Return the charge for ``usage`` in nano-dollars."""
        return compute_cost(usage, self.route.price, self.tenant.ratio)


async def relay_chat(
    state: GatewayState, exchange: ChatExchange, send: Send, watcher: DisconnectWatcher
) -> None:
    """Serve the request from the first channel that answers, and write the response.

    Raises:
        GatewayError: the last channel's failure when none could serve the request and
            nothing has been sent to the client yet.
    """
    record = exchange.record
    last_error: UpstreamError | None = None
    channels = order_channels(exchange.route.channels, state.health)
    for channel in channels[: state.settings.gateway.max_attempts]:
        record.attempts += 1
        record.channel_id = channel.id
        record.upstream_model = channel.upstream_model(exchange.model)
        try:
            if exchange.stream:
                opened = await _open_stream(state, exchange, channel)
                deliver = _stream_to_client(state, exchange, send, watcher, *opened)
            else:
                completion = await _fetch_completion(state, exchange, channel)
                deliver = _send_completion(exchange, send, completion)
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
        await deliver
        return
    if last_error is None:
        msg = "no channel could be tried for this model"
        raise GatewayError(503, "no_available_channel", msg, type="upstream_error")
    raise last_error


async def _open_stream(
    state: GatewayState, exchange: ChatExchange, channel: ChannelEntry
) -> tuple[AsyncIterator[bytes], SSEDecoder, list[SSEEvent]]:
    """Send the request and read until the first event, so failover stays possible."""
    url, headers, body = build_chat_request(
        channel, exchange.payload, model=exchange.model, stream=True
    )
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(state.settings.gateway.first_byte_timeout):
            response = await state.client.send("POST", url, headers, body)
            if response.status != 200:
                error_body = await response.read(_ERROR_BODY_LIMIT)
                raise status_error(response.status, response.headers, error_body)
            chunks = response.iter_chunks()
            decoder = SSEDecoder()
            held: list[SSEEvent] = []
            async for chunk in chunks:
                held.extend(e for e in decoder.feed(chunk) if e.data)
                if any(_is_substantive(e) for e in held):
                    exchange.record.first_byte_ms = _elapsed_ms(exchange)
                    return _closing(chunks, response), decoder, held
            held.extend(e for e in decoder.flush() if e.data)
            if any(_is_substantive(e) for e in held):
                return _closing(chunks, response), decoder, held
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


async def _closing(chunks: AsyncIterator[bytes], response: Any) -> AsyncIterator[bytes]:
    """Yield the rest of ``chunks`` and close the upstream response however the loop ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await response.close()


def _is_substantive(event: SSEEvent) -> bool:
    """Return True for an event that commits the stream: content, an end, or usage.

    Role-only opening chunks are held back, so a stream that dies before its first
    content can still fail over. An error event before any content raises instead.

    Raises:
        UpstreamStatusError: when the event is an error object.
    """
    if event.data == "[DONE]":
        return True
    try:
        decoded = msgspec.json.decode(event.data)
    except msgspec.DecodeError:
        return False
    if not isinstance(decoded, dict):
        return False
    if "error" in decoded and "choices" not in decoded:
        raise status_error(502, {}, event.data.encode())
    if decoded.get("usage"):
        return True
    for choice in decoded.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            delta.get(field) for field in ("content", "tool_calls", "reasoning_content", "refusal")
        ):
            return True
    return False


async def _fetch_completion(
    state: GatewayState, exchange: ChatExchange, channel: ChannelEntry
) -> dict[str, Any]:
    url, headers, body = build_chat_request(
        channel, exchange.payload, model=exchange.model, stream=False
    )
    try:
        async with asyncio.timeout(state.settings.gateway.first_byte_timeout):
            response = await state.client.send("POST", url, headers, body)
    except TimeoutError as exc:
        msg = "upstream did not answer within the first-byte timeout"
        raise UpstreamTimeoutError(msg) from exc
    try:
        if response.status != 200:
            raise status_error(
                response.status, response.headers, await response.read(_ERROR_BODY_LIMIT)
            )
        raw = await response.read(_RESPONSE_LIMIT)
    finally:
        await response.close()
    exchange.record.first_byte_ms = _elapsed_ms(exchange)
    return decode_completion(raw)


async def _send_completion(exchange: ChatExchange, send: Send, completion: dict[str, Any]) -> None:
    usage = usage_from_openai(completion.get("usage"))
    if usage is None:
        for choice in completion.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                _count_message(exchange.counter, message)
    else:
        exchange.upstream_usage = usage
    final = exchange.final_usage()
    cost = exchange.cost_of(final)
    completion["model"] = exchange.model
    completion["usage"] = _usage_object(completion.get("usage"), final, cost)
    exchange.record.http_status = 200
    exchange.record.status = "ok"
    headers = [*exchange.response_headers.items(), ("x-tollgate-cost", format_usd(cost))]
    exchange.committed = True
    await start_response(send, 200, headers, content_type="application/json")
    await send_bytes(send, msgspec.json.encode(completion), more=False)


def _count_message(counter: TokenCounter, message: dict[str, Any]) -> None:
    for field in ("content", "reasoning_content", "refusal"):
        value = message.get(field)
        if isinstance(value, str):
            counter.add(value)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            counter.add(str(function.get("name") or ""))
            counter.add(str(function.get("arguments") or ""))


def _usage_object(original: Any, usage: Usage, cost: int) -> dict[str, Any]:
    """Return the client's usage object: the upstream's own fields plus ``cost``."""
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    result.setdefault("prompt_tokens", usage.input_tokens)
    result.setdefault("completion_tokens", usage.output_tokens)
    result.setdefault("total_tokens", usage.input_tokens + usage.output_tokens)
    if usage.estimated:
        result["estimated"] = True
    result["cost"] = format_usd(cost)
    return result


class _StreamState:
    __slots__ = ("done", "finished", "upstream_error", "usage_sent")

    def __init__(self) -> None:
        self.done = False
        self.finished = False
        self.usage_sent = False
        self.upstream_error: Any = None


async def _stream_to_client(
    state: GatewayState,
    exchange: ChatExchange,
    send: Send,
    watcher: DisconnectWatcher,
    chunks: AsyncIterator[bytes],
    decoder: SSEDecoder,
    first: list[SSEEvent],
) -> None:
    """Forward the stream event by event; after a disconnect, drain briefly for usage."""
    record = exchange.record
    stream = _StreamState()
    headers = [*exchange.response_headers.items(), *_SSE_HEADERS]
    exchange.committed = True
    record.http_status = 200
    await start_response(send, 200, headers, content_type="text/event-stream")
    client_gone = False
    failure: UpstreamError | None = None

    async def deliver(events: list[SSEEvent]) -> bool:
        """Write events; return False once the client has gone."""
        for event in events:
            out = _translate_event(exchange, stream, event, delivered=True)
            if out is None:
                continue
            if watcher.gone.is_set():
                return False
            try:
                await send_bytes(send, out, more=True)
            except OSError:
                return False
        return True

    try:
        client_gone = not await deliver(first)
        if not client_gone:
            async for chunk in chunks:
                if not await deliver(decoder.feed(chunk)) or watcher.gone.is_set():
                    client_gone = True
                    break
                if stream.done or stream.upstream_error is not None:
                    break
            else:
                client_gone = not await deliver(decoder.flush())
    except UpstreamError as exc:
        failure = exc
    if client_gone:
        await _drain_for_usage(state, exchange, stream, chunks, decoder)
        await _finish(record, stream, "client disconnected")
        return
    await _close_stream(exchange, stream, send, failure)


async def _drain_for_usage(
    state: GatewayState,
    exchange: ChatExchange,
    stream: _StreamState,
    chunks: AsyncIterator[bytes],
    decoder: SSEDecoder,
) -> None:
    """Keep reading a little after the client left, to learn the upstream's usage."""
    if _has_final_usage(exchange, stream):
        return
    try:
        async with asyncio.timeout(state.settings.gateway.disconnect_grace):
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    _translate_event(exchange, stream, event, delivered=False)
                if _has_final_usage(exchange, stream):
                    break
    except (TimeoutError, UpstreamError):
        pass
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _has_final_usage(exchange: ChatExchange, stream: _StreamState) -> bool:
    return exchange.upstream_usage is not None or stream.done


async def _finish(record: UsageRecord, stream: _StreamState, reason: str) -> None:
    record.status = "ok" if stream.finished or stream.done else "error"
    if record.status == "error":
        record.error = reason


async def _close_stream(
    exchange: ChatExchange, stream: _StreamState, send: Send, failure: UpstreamError | None
) -> None:
    record = exchange.record
    try:
        if stream.upstream_error is not None or failure is not None:
            record.status = "error"
            record.error = failure.message if failure else str(stream.upstream_error)[:500]
            if failure is not None:
                body = {
                    "error": {
                        "message": failure.message,
                        "type": failure.type,
                        "param": None,
                        "code": failure.code,
                    }
                }
                await send_bytes(send, b"data: " + msgspec.json.encode(body) + b"\n\n", more=True)
        elif stream.done or stream.finished:
            record.status = "ok"
            usage = exchange.final_usage()
            cost = exchange.cost_of(usage)
            if exchange.client_wants_usage and not stream.usage_sent:
                chunk = {
                    "id": f"chatcmpl-{record.request_id}",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": exchange.model,
                    "choices": [],
                    "usage": _usage_object(None, usage, cost),
                }
                await send_bytes(send, b"data: " + msgspec.json.encode(chunk) + b"\n\n", more=True)
            await send_bytes(send, f": x-tollgate-cost: {format_usd(cost)}\n\n".encode(), more=True)
            await send_bytes(send, b"data: [DONE]\n\n", more=True)
        else:
            record.status = "truncated"
            record.error = "upstream stream ended before its end event"
            body = {
                "error": {
                    "message": "the upstream stream ended before it was complete",
                    "type": "upstream_error",
                    "param": None,
                    "code": "upstream_truncated",
                }
            }
            await send_bytes(send, b"data: " + msgspec.json.encode(body) + b"\n\n", more=True)
        await send_bytes(send, b"", more=False)
    except OSError:
        record.error = record.error or "client disconnected at the end of the stream"


def _translate_event(
    exchange: ChatExchange, stream: _StreamState, event: SSEEvent, *, delivered: bool
) -> bytes | None:
    """Meter one upstream event and return the bytes to write to the client, if any."""
    data = event.data
    if data == "[DONE]":
        stream.done = True
        return None
    chunk = _decode_object(data)
    if chunk is None:
        return None
    if "error" in chunk and "choices" not in chunk:
        stream.upstream_error = chunk["error"]
        return b"data: " + data.encode() + b"\n\n" if delivered else None
    usage = usage_from_openai(chunk.get("usage"))
    if usage is not None:
        exchange.upstream_usage = usage
    choices = chunk.get("choices")
    changed = False
    if isinstance(choices, list):
        if not choices:
            if usage is None or not exchange.client_wants_usage:
                return None
            chunk["usage"] = _usage_object(chunk["usage"], usage, exchange.cost_of(usage))
            stream.usage_sent = True
            changed = True
        _meter_choices(exchange, stream, choices, delivered=delivered)
    if "usage" in chunk and not exchange.client_wants_usage:
        del chunk["usage"]
        changed = True
    if chunk.get("model") != exchange.model:
        chunk["model"] = exchange.model
        changed = True
    payload = msgspec.json.encode(chunk) if changed else data.encode()
    return b"data: " + payload + b"\n\n"


def _decode_object(data: str) -> dict[str, Any] | None:
    """Return the JSON object an event carries, or None for anything else."""
    if not data:
        return None
    try:
        decoded = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _meter_choices(
    exchange: ChatExchange, stream: _StreamState, choices: list[Any], *, delivered: bool
) -> None:
    """Count delivered deltas and note a finish reason."""
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if delivered and isinstance(delta, dict):
            _count_message(exchange.counter, delta)
        if choice.get("finish_reason"):
            stream.finished = True


def _elapsed_ms(exchange: ChatExchange) -> int:
    started = exchange.record.created_at.timestamp()
    return max(0, int((time.time() - started) * 1000))
