"""OpenAI-compatible upstreams: request encoding, answer and stream decoding, error mapping.

A channel's base URL is what the OpenAI SDK takes (it ends in ``/v1``); paths are joined
to it. Streams are always asked for usage (``stream_options.include_usage``) since billing
needs it; the client codec hides it again from clients that did not ask.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    Event,
    Finish,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningDelta,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    UsageUpdate,
)
from gateway.errors import UpstreamProtocolError, UpstreamStatusError
from gateway.translate import UpstreamCall
from shared.money import Usage

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from gateway.canonical import FinishReason
    from gateway.snapshot import ChannelEntry
    from gateway.sse import SSEEvent

__all__ = (
    "OpenAIStream",
    "OpenAIUpstream",
    "decode_completion",
    "encode_chat_request",
    "finish_reason",
    "status_error",
    "usage_from_openai",
)

_FINAL_STATUSES: Final = frozenset({400, 413, 422})
"""Statuses that are the request's own fault: another channel would refuse it too."""

_QUOTE_LIMIT: Final = 500
_FINISH: Final[dict[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(value: Any) -> FinishReason:
    """Map an OpenAI finish reason to the canonical one (unknown values end as ``stop``)."""
    return _FINISH.get(str(value), "stop")


def usage_from_openai(usage: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object into billing terms; None when it is not one."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    written = prompt_details.get("cache_write_tokens") if isinstance(prompt_details, dict) else None
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    )
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=cached if isinstance(cached, int) else 0,
        cache_write_tokens=written if isinstance(written, int) else 0,
        output_tokens=completion,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else 0,
    )


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamStatusError:
    """Map an upstream error response to the error the client sees if no channel succeeds."""
    message = upstream_message(body)
    retry_after = headers.get("retry-after")
    if status == 429:
        return UpstreamStatusError(
            429,
            "rate_limit_exceeded",
            f"upstream rate limit: {message}",
            retryable=True,
            retry_after=retry_after,
            type="requests",
        )
    if status in _FINAL_STATUSES:
        return UpstreamStatusError(
            status,
            "upstream_rejected_request",
            message,
            retryable=False,
            type="invalid_request_error",
        )
    return UpstreamStatusError(
        502, "upstream_error", f"upstream answered {status}: {message}", retryable=True
    )


def upstream_message(body: bytes) -> str:
    """Return the message of an upstream error body, whatever its shape."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip() or "(empty body)"
    if isinstance(decoded, dict):
        error = decoded.get("error", decoded)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_QUOTE_LIMIT]
        if isinstance(error, str):
            return error[:_QUOTE_LIMIT]
        errors = decoded.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:_QUOTE_LIMIT]
    return body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")


def decode_completion(body: bytes) -> dict[str, Any]:
    """Decode a non-streamed completion, refusing anything that is not one.

    Raises:
        UpstreamProtocolError: quoting the body when it is not a JSON completion object.
        UpstreamStatusError: when a 200 carries an ``error`` object instead.
    """
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None
    if isinstance(decoded, dict) and "error" in decoded and "choices" not in decoded:
        raise UpstreamStatusError(
            502, "upstream_error", f"upstream error: {upstream_message(body)}", retryable=True
        )
    if not isinstance(decoded, dict) or not isinstance(decoded.get("choices"), list):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a completion: {quoted!r}"
        raise UpstreamProtocolError(msg)
    return decoded


def _content(parts: Sequence[Part]) -> str | list[dict[str, Any]] | None:
    texts = [p for p in parts if isinstance(p, Text | Image)]
    if not texts:
        return None
    if all(isinstance(p, Text) for p in texts):
        return "".join(p.text for p in texts if isinstance(p, Text))
    encoded: list[dict[str, Any]] = []
    for part in texts:
        if isinstance(part, Text):
            encoded.append({"type": "text", "text": part.text})
        else:
            url = part.url or f"data:{part.media_type};base64,{part.data}"
            encoded.append({"type": "image_url", "image_url": {"url": url}})
    return encoded


def _encode_message(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool" or any(isinstance(p, ToolResult) for p in message.parts):
        out: list[dict[str, Any]] = [
            {"role": "tool", "tool_call_id": p.call_id, "content": p.content}
            for p in message.parts
            if isinstance(p, ToolResult)
        ]
        rest = [p for p in message.parts if not isinstance(p, ToolResult)]
        if rest:
            out.append({"role": "user", "content": _content(rest)})
        return out
    entry: dict[str, Any] = {"role": message.role, "content": _content(message.parts)}
    calls = [p for p in message.parts if isinstance(p, ToolCall)]
    if calls:
        entry["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    reasoning = "".join(p.text for p in message.parts if isinstance(p, Reasoning))
    if reasoning and message.role == "assistant":
        entry["reasoning_content"] = reasoning
    if entry["content"] is None and message.role != "assistant":
        entry["content"] = ""
    return [entry]


def encode_chat_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """Encode a canonical request as an OpenAI chat completion body."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [m for message in request.messages for m in _encode_message(message)],
    }
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "user": request.user,
        "parallel_tool_calls": request.parallel_tool_calls if request.tools else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.n != 1:
        body["n"] = request.n
    if request.stop:
        body["stop"] = request.stop
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in request.tools
        ]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "tool"
            else choice.mode
        )
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.response_schema},
        }
    elif request.json_mode:
        body["response_format"] = {"type": "json_object"}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _choice(raw: dict[str, Any]) -> Choice:
    found = raw.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    parts: list[Part] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(text=reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(Text(content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                ToolCall(
                    id=str(call.get("id") or f"call_{len(parts)}"),
                    name=str(function.get("name") or ""),
                    arguments=str(function.get("arguments") or "{}"),
                )
            )
    reason = finish_reason(raw.get("finish_reason"))
    if reason == "stop" and any(isinstance(p, ToolCall) for p in parts):
        reason = "tool_calls"
    return Choice(index=int(raw.get("index") or 0), parts=parts, finish_reason=reason)


class OpenAIStream:
    """Decodes an OpenAI chat completion stream into canonical events."""

    __slots__ = ("_calls", "complete")

    def __init__(self) -> None:
        self.complete = False
        self._calls: set[tuple[int, int]] = set()

    def feed(self, event: SSEEvent) -> list[Event]:
        """Return the canonical events of one chunk."""
        if event.data == "[DONE]":
            self.complete = True
            return []
        try:
            chunk = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        event.parsed = chunk
        if "error" in chunk and "choices" not in chunk:
            return [StreamError(upstream_message(event.data.encode()))]
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                events.extend(self._choice_events(choice))
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            events.append(UsageUpdate(usage))
        return events

    def _choice_events(self, choice: dict[str, Any]) -> list[Event]:
        index = int(choice.get("index") or 0)
        delta = choice.get("delta")
        events: list[Event] = []
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.append(ReasoningDelta(text=reasoning, index=index))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.append(TextDelta(content, index=index))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events.extend(self._call_events(index, call))
        reason = choice.get("finish_reason")
        if reason:
            events.append(Finish(finish_reason(reason), index=index))
        return events

    def _call_events(self, index: int, call: dict[str, Any]) -> list[Event]:
        call_index = int(call.get("index") or 0)
        found = call.get("function")
        function: dict[str, Any] = found if isinstance(found, dict) else {}
        events: list[Event] = []
        if (index, call_index) not in self._calls:
            self._calls.add((index, call_index))
            events.append(
                ToolCallStart(
                    call_index=call_index,
                    id=str(call.get("id") or f"call_{index}_{call_index}"),
                    name=str(function.get("name") or ""),
                    index=index,
                )
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(ToolCallDelta(call_index=call_index, arguments=arguments, index=index))
        return events


class OpenAIUpstream:
    """Upstream codec for OpenAI-compatible chat completion APIs."""

    protocol = "openai"

    async def build(
        self,
        channel: ChannelEntry,
        request: ChatRequest,
        raw: dict[str, Any] | None,
        *,
        client_headers: Mapping[str, str],  # noqa: ARG002 - OpenAI upstreams need none
        http: httpx.AsyncClient,  # noqa: ARG002 - images pass as URLs
    ) -> UpstreamCall:
        """Encode the call; a same-protocol body is relayed with only model and usage set."""
        model = channel.upstream_model(request.model)
        if raw is not None:
            body = dict(raw)
            body["model"] = model
            if request.stream:
                options = body.get("stream_options")
                extra = options if isinstance(options, dict) else {}
                body["stream_options"] = {**extra, "include_usage": True}
        else:
            body = encode_chat_request(request, model)
        headers = [
            ("authorization", f"Bearer {channel.api_key}"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream" if request.stream else "application/json"),
        ]
        return UpstreamCall(
            f"{channel.base_url}/chat/completions", headers, msgspec.json.encode(body)
        )

    def decode_response(self, body: bytes) -> ChatResponse:
        """Decode a chat completion."""
        decoded = decode_completion(body)
        return ChatResponse(
            id=str(decoded.get("id") or f"chatcmpl-{int(time.time() * 1000)}"),
            model=str(decoded.get("model") or ""),
            choices=[_choice(c) for c in decoded["choices"] if isinstance(c, dict)],
            usage=usage_from_openai(decoded.get("usage")),
        )

    def open_stream(self) -> OpenAIStream:
        """Return a stream decoder."""
        return OpenAIStream()

    def status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """Map an error response."""
        return status_error(status, headers, body)
