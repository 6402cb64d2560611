"""Anthropic Messages upstreams (Anthropic itself and relays such as AnyRouter).

A channel's base URL is the root the Anthropic SDK takes; ``/v1/messages`` is joined to it.
The channel key goes in ``x-api-key`` (and also as a Bearer token when the channel's
settings say ``{"auth": "bearer"}``); the client's ``anthropic-version``, ``anthropic-beta``,
``user-agent``, ``x-app`` and SDK ``x-stainless-*`` headers are passed on, since some relays
admit only requests that look like their own clients.

Converting a canonical request follows the Messages rules: ``max_tokens`` is required, the
system prompt is separate, turns alternate between ``user`` and ``assistant`` (consecutive
turns of one role are merged, tool results open a user turn), a system message in the
middle of a conversation becomes a user-visible instruction at that point, and thinking
blocks go back with their signatures unchanged. Usage in streams is cumulative:
``message_delta`` supersedes ``message_start`` field by field, never adding up.
"""

from __future__ import annotations

import re
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
from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamStatusError
from gateway.media import inline_image
from gateway.providers.openai import upstream_message
from gateway.translate import UpstreamCall
from shared.money import Usage

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import httpx

    from gateway.canonical import FinishReason, ReasoningSettings
    from gateway.snapshot import ChannelEntry
    from gateway.sse import SSEEvent

__all__ = (
    "ANTHROPIC_VERSION",
    "AnthropicStream",
    "AnthropicUpstream",
    "decode_message",
    "encode_messages_request",
    "finish_reason",
    "forwarded_headers",
    "status_error",
    "usage_from_anthropic",
)

ANTHROPIC_VERSION: Final = "2023-06-01"
"""The API version sent when the client named none."""

DEFAULT_MAX_TOKENS: Final = 4096
"""``max_tokens`` sent when the request sets no limit and the channel names no default."""

MIN_THINKING_BUDGET: Final = 1024
"""Smallest ``thinking.budget_tokens`` the Messages API accepts."""

_EFFORT_BUDGETS: Final = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking budget for an OpenAI-style reasoning effort."""

_FINAL_STATUSES: Final = frozenset({400, 413, 422})
"""Statuses that are the request's own fault: another channel would refuse it too."""

_THINKING_MIN_TOP_P: Final = 0.95
_OVERLOADED: Final = 529
_QUOTE_LIMIT: Final = 500

_STOP_REASONS: Final[dict[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_FORWARDED: Final = ("anthropic-version", "anthropic-beta", "user-agent", "x-app")
"""Client headers passed on to the upstream (plus every ``x-stainless-*`` SDK header)."""

_TOOL_ID: Final = re.compile(r"[^a-zA-Z0-9_-]")
_JSON_INSTRUCTION: Final = "Respond with a single valid JSON object and nothing else."

_USAGE_FIELDS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "output_tokens_details",
)


def finish_reason(value: Any) -> FinishReason:
    """Map an Anthropic ``stop_reason`` to the canonical one (unknown values end as ``stop``)."""
    return _STOP_REASONS.get(str(value), "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_anthropic(usage: Any) -> Usage | None:
    """Read an Anthropic ``usage`` object into billing terms; None when it is not one.

    ``input_tokens`` there excludes cache reads and writes, so the total input is the sum
    of the three; ``output_tokens`` already includes thinking.
    """
    if not isinstance(usage, dict):
        return None
    if not isinstance(usage.get("input_tokens"), int) and not isinstance(
        usage.get("output_tokens"), int
    ):
        return None
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        input_tokens=_int(usage.get("input_tokens")) + read + written,
        cached_input_tokens=read,
        cache_write_tokens=written,
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=thinking,
    )


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamStatusError:
    """Map an Anthropic error response to the error the client sees if no channel succeeds."""
    message = upstream_message(body)
    retry_after = headers.get("retry-after")
    if status == _OVERLOADED:
        return UpstreamStatusError(
            _OVERLOADED,
            "overloaded_error",
            f"upstream overloaded: {message}",
            retryable=True,
            retry_after=retry_after,
        )
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


def forwarded_headers(client_headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return the client headers an Anthropic upstream gets, in a stable order."""
    forwarded = [(name, client_headers[name]) for name in _FORWARDED if name in client_headers]
    forwarded.extend(
        (name, value)
        for name, value in sorted(client_headers.items())
        if name.startswith("x-stainless-")
    )
    return forwarded


class _ToolIds:
    """Makes tool-call ids valid for Anthropic (``^[a-zA-Z0-9_-]+$``), results matching calls."""

    __slots__ = ("_count", "_unnamed")

    def __init__(self) -> None:
        self._count = 0
        self._unnamed: list[str] = []

    def call(self, call_id: str) -> str:
        if call_id:
            return _TOOL_ID.sub("_", call_id)
        self._count += 1
        made = f"toolu_{self._count:04d}"
        self._unnamed.append(made)
        return made

    def result(self, call_id: str) -> str:
        if call_id:
            return _TOOL_ID.sub("_", call_id)
        return self._unnamed.pop(0) if self._unnamed else "toolu_missing"


def _input_of(arguments: str) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _text_block(part: Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache:
        block["cache_control"] = {"type": "ephemeral"}
    return block


def _image_block(part: Image, images: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    elif part.url is not None and part.url in images:
        media_type, data = images[part.url]
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": part.url or ""}
    return {"type": "image", "source": source}


def _blocks(
    message: Message, ids: _ToolIds, images: Mapping[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, Text):
            if part.text:
                blocks.append(_text_block(part))
        elif isinstance(part, Image):
            blocks.append(_image_block(part, images))
        elif isinstance(part, ToolCall):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": ids.call(part.id),
                    "name": part.name,
                    "input": _input_of(part.arguments),
                }
            )
        elif isinstance(part, ToolResult):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": ids.result(part.call_id),
                "content": part.content,
            }
            if part.is_error:
                result["is_error"] = True
            blocks.append(result)
        elif message.role == "assistant":
            blocks.extend(_reasoning_block(part))
    return blocks


def _reasoning_block(part: Reasoning) -> list[dict[str, Any]]:
    if part.redacted is not None:
        return [{"type": "redacted_thinking", "data": part.redacted}]
    if part.signature is None:
        # Thinking without a signature (from another provider) cannot be verified by
        # Anthropic, which refuses it; it is left out of the conversation.
        return []
    return [{"type": "thinking", "thinking": part.text, "signature": part.signature}]


def _conversation(
    messages: Iterable[Message], images: Mapping[str, tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the system blocks and the alternating turns of a canonical conversation."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    ids = _ToolIds()
    for message in messages:
        if message.role == "system":
            texts = [p for p in message.parts if isinstance(p, Text) and p.text]
            if not turns:
                system.extend(_text_block(p) for p in texts)
                continue
            # A system message in the middle of a conversation: an instruction the model
            # sees at that point, in a user turn (Messages has no system role in turns).
            blocks = [
                {"type": "text", "text": f"<system>\n{p.text}\n</system>"} for p in texts if p.text
            ]
            role = "user"
        else:
            blocks = _blocks(message, ids, images)
            role = "assistant" if message.role == "assistant" else "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers the tool calls.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    if not turns and system:
        # Only system text: the Messages API needs a turn, so the text becomes the turn.
        turns = [{"role": "user", "content": [{"type": "text", "text": b["text"]} for b in system]}]
        system = []
    return system, turns


def _thinking(reasoning: ReasoningSettings, max_tokens: int) -> dict[str, Any] | None:
    """Return the ``thinking`` setting for ``reasoning`` (None when it cannot be met).

    A budget must be at least 1024 and under ``max_tokens``; an effort becomes a budget;
    neither lets the model decide (``adaptive``).
    """
    budget = reasoning.budget_tokens
    if budget is None and reasoning.effort is not None:
        budget = _EFFORT_BUDGETS[reasoning.effort]
    thinking: dict[str, Any]
    if budget is None:
        thinking = {"type": "adaptive"}
    elif budget <= 0 or max_tokens <= MIN_THINKING_BUDGET:
        return None
    else:
        budget = min(max(budget, MIN_THINKING_BUDGET), max_tokens - 1)
        thinking = {"type": "enabled", "budget_tokens": budget}
    if not reasoning.include:
        thinking["display"] = "omitted"
    return thinking


def encode_messages_request(
    request: ChatRequest,
    model: str,
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    images: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Encode a canonical request as a Messages body.

    ``images`` holds ``(media type, base64 data)`` of remote images already fetched; other
    image URLs are sent as URL sources.
    """
    system, turns = _conversation(request.messages, images or {})
    max_tokens = request.max_output_tokens or default_max_tokens
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if request.json_mode and request.response_schema is None:
        system.append({"type": "text", "text": _JSON_INSTRUCTION})
    if system:
        body["system"] = system
    thinking = None
    if request.reasoning is not None:
        thinking = _thinking(request.reasoning, max_tokens)
        if thinking is not None:
            body["thinking"] = thinking
    # Extended thinking refuses a temperature or top_k, and a top_p under 0.95.
    top_p = request.top_p
    if thinking and top_p is not None and top_p < _THINKING_MIN_TOP_P:
        top_p = None
    optional = {
        "temperature": None if thinking else request.temperature,
        "top_p": top_p,
        "top_k": None if thinking else request.top_k,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [_tool(t.name, t.description, t.parameters) for t in request.tools]
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.response_schema is not None:
        body["output_config"] = {
            "format": {"type": "json_schema", "schema": request.response_schema}
        }
    if request.stream:
        body["stream"] = True
    return body


def _tool(name: str, description: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    schema = dict(parameters) if parameters else {"type": "object", "properties": {}}
    schema.setdefault("type", "object")
    tool: dict[str, Any] = {"name": name, "input_schema": schema}
    if description:
        tool["description"] = description
    return tool


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        result: dict[str, Any] | None = None
    elif choice.mode == "tool":
        result = {"type": "tool", "name": choice.name or ""}
    elif choice.mode == "required":
        result = {"type": "any"}
    else:
        result = {"type": choice.mode}
    if request.parallel_tool_calls is False and (result is None or result["type"] != "none"):
        result = result or {"type": "auto"}
        result["disable_parallel_tool_use"] = True
    return result


def _decode_json(body: bytes) -> dict[str, Any]:
    """Decode a non-streamed Messages answer, refusing anything that is not one.

    Raises:
        UpstreamProtocolError: quoting the body when it is not a JSON message object.
        UpstreamStatusError: when a 200 carries an error object instead.
    """
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None
    if isinstance(decoded, dict) and (decoded.get("type") == "error" or "error" in decoded):
        raise status_error(_error_status(decoded.get("error")), {}, body)
    if not isinstance(decoded, dict) or not isinstance(decoded.get("content"), list):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a message: {quoted!r}"
        raise UpstreamProtocolError(msg)
    return decoded


def _error_status(error: Any) -> int:
    kind = error.get("type") if isinstance(error, dict) else None
    return {"overloaded_error": _OVERLOADED, "rate_limit_error": 429}.get(str(kind), 502)


def _part_of(block: dict[str, Any]) -> Part | None:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return Text(block["text"])
    if kind == "tool_use":
        return ToolCall(
            id=str(block.get("id") or ""),
            name=str(block.get("name") or ""),
            arguments=msgspec.json.encode(block.get("input") or {}).decode(),
        )
    if kind == "thinking":
        signature = block.get("signature")
        return Reasoning(
            text=str(block.get("thinking") or ""),
            signature=signature if isinstance(signature, str) else None,
        )
    if kind == "redacted_thinking":
        return Reasoning(redacted=str(block.get("data") or ""))
    return None


def decode_message(message: dict[str, Any]) -> ChatResponse:
    """Decode a Messages answer object into a canonical response."""
    parts = [
        part
        for block in message.get("content") or ()
        if isinstance(block, dict) and (part := _part_of(block)) is not None
    ]
    reason = finish_reason(message.get("stop_reason"))
    if reason == "stop" and any(isinstance(p, ToolCall) for p in parts):
        reason = "tool_calls"
    return ChatResponse(
        id=str(message.get("id") or f"msg_{int(time.time() * 1000)}"),
        model=str(message.get("model") or ""),
        choices=[Choice(index=0, parts=parts, finish_reason=reason)],
        usage=usage_from_anthropic(message.get("usage")),
    )


def _merge_raw_usage(earlier: dict[str, Any], later: Any) -> dict[str, Any]:
    """Merge cumulative usage objects field by field: a later non-null value replaces."""
    if not isinstance(later, dict):
        return earlier
    merged = dict(earlier)
    for name in _USAGE_FIELDS:
        if later.get(name) is not None:
            merged[name] = later[name]
    return merged


class AnthropicStream:
    """Decodes a Messages event stream into canonical events.

    Usage is gathered from ``message_start`` and every ``message_delta`` (running totals,
    merged field by field) and reported once the answer ends, so that a stream failing
    before its first content can still move to another channel.
    """

    __slots__ = ("_blocks", "_calls", "_tools_seen", "_usage", "complete")

    def __init__(self) -> None:
        self.complete = False
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, str] = {}
        self._calls: dict[int, int] = {}
        self._tools_seen = 0

    def feed(self, event: SSEEvent) -> list[Event]:
        """Return the canonical events of one upstream event."""
        try:
            data = msgspec.json.decode(event.data) if event.data else {}
        except msgspec.DecodeError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._usage = _merge_raw_usage(self._usage, message.get("usage"))
            return []
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self.complete = True
            return []
        if kind == "error":
            return [self._error(data.get("error"))]
        return []

    def _block_start(self, data: dict[str, Any]) -> list[Event]:
        index = _int(data.get("index"))
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = str(block.get("type"))
        self._blocks[index] = kind
        if kind == "text" and block.get("text"):
            return [TextDelta(str(block["text"]))]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(text=str(block["thinking"]))]
        if kind == "redacted_thinking":
            return [ReasoningDelta(redacted=str(block.get("data") or ""))]
        if kind == "tool_use":
            call_index = self._tools_seen
            self._tools_seen += 1
            self._calls[index] = call_index
            events: list[Event] = [
                ToolCallStart(
                    call_index=call_index,
                    id=str(block.get("id") or f"toolu_{call_index}"),
                    name=str(block.get("name") or ""),
                )
            ]
            given = block.get("input")
            if isinstance(given, dict) and given:
                # Some relays send the whole input with the block instead of as deltas.
                arguments = msgspec.json.encode(given).decode()
                events.append(ToolCallDelta(call_index=call_index, arguments=arguments))
            return events
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[Event]:
        index = _int(data.get("index"))
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [TextDelta(str(delta["text"]))]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [ReasoningDelta(text=str(delta["thinking"]))]
        if kind == "signature_delta" and delta.get("signature"):
            return [ReasoningDelta(signature=str(delta["signature"]))]
        if kind == "input_json_delta" and delta.get("partial_json"):
            call_index = self._calls.get(index)
            if call_index is None:
                return []
            return [ToolCallDelta(call_index=call_index, arguments=str(delta["partial_json"]))]
        return []

    def _message_delta(self, data: dict[str, Any]) -> list[Event]:
        self._usage = _merge_raw_usage(self._usage, data.get("usage"))
        events: list[Event] = []
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if reason:
            finish = finish_reason(reason)
            if finish == "stop" and self._tools_seen:
                finish = "tool_calls"
            events.append(Finish(finish))
        usage = usage_from_anthropic(self._usage)
        if usage is not None:
            events.append(UsageUpdate(usage))
        return events

    def _error(self, error: Any) -> StreamError:
        kind = str(error.get("type") or "api_error") if isinstance(error, dict) else "api_error"
        message = error.get("message") if isinstance(error, dict) else None
        text = str(message)[:_QUOTE_LIMIT] if message else f"upstream stream error: {kind}"
        return StreamError(text, code=kind, status=_error_status(error))


async def _fetch_remote_images(
    request: ChatRequest, http: httpx.AsyncClient
) -> dict[str, tuple[str, str]]:
    fetched: dict[str, tuple[str, str]] = {}
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, Image) and part.data is None and part.url not in fetched:
                fetched[part.url or ""] = await inline_image(http, part)
    return fetched


class AnthropicUpstream:
    """Upstream codec for the Anthropic Messages API and relays that speak it."""

    protocol = "anthropic"

    async def build(
        self,
        channel: ChannelEntry,
        request: ChatRequest,
        raw: dict[str, Any] | None,
        *,
        client_headers: Mapping[str, str],
        http: httpx.AsyncClient,
    ) -> UpstreamCall:
        """Encode the call; a same-protocol body is relayed with only the model changed.

        Remote images are fetched and inlined unless the channel's settings say
        ``{"image_urls": "pass"}`` (the upstream fetches them itself).

        Raises:
            GatewayError: 400 ``unsupported_parameter`` for ``n`` above 1, which Messages
                cannot produce.
        """
        model = channel.upstream_model(request.model)
        settings = channel.settings
        if request.n > 1:
            msg = f"Anthropic Messages channels return one choice; `n` was {request.n}."
            raise GatewayError(400, "unsupported_parameter", msg, param="n")
        if raw is not None:
            body = dict(raw)
            body["model"] = model
        else:
            images = {}
            if settings.get("image_urls") != "pass":
                images = await _fetch_remote_images(request, http)
            default = settings.get("default_max_tokens")
            body = encode_messages_request(
                request,
                model,
                default_max_tokens=default if isinstance(default, int) else DEFAULT_MAX_TOKENS,
                images=images,
            )
        headers = [
            ("x-api-key", channel.api_key),
            ("content-type", "application/json"),
            ("accept", "text/event-stream" if request.stream else "application/json"),
        ]
        if settings.get("auth") == "bearer":
            headers.append(("authorization", f"Bearer {channel.api_key}"))
        forwarded = forwarded_headers(client_headers)
        if not any(name == "anthropic-version" for name, _ in forwarded):
            headers.append(("anthropic-version", ANTHROPIC_VERSION))
        headers.extend(forwarded)
        return UpstreamCall(f"{channel.base_url}/v1/messages", headers, msgspec.json.encode(body))

    def decode_response(self, body: bytes) -> ChatResponse:
        """Decode a Messages answer."""
        return decode_message(_decode_json(body))

    def open_stream(self) -> AnthropicStream:
        """Return a stream decoder."""
        return AnthropicStream()

    def status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """Map an error response."""
        return status_error(status, headers, body)
