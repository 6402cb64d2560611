"""The Anthropic Messages surface: ``/v1/messages``, ``/v1/messages/count_tokens``, models.

The decoder turns a Messages body into a canonical request. It checks only the fields the
gateway reads and the rules Anthropic itself enforces (``max_tokens`` is required); any
other field is ignored here and reaches Anthropic upstreams untouched, since a
same-protocol request is relayed as the client sent it. Roles are not policed: a
``{"role": "system"}`` entry inside ``messages`` (Claude Code sends one) is a system
instruction at that point of the conversation.

The :class:`AnthropicClient` codec writes messages, event streams and errors in Anthropic's
shapes. Every stream event has both an ``event:`` and a ``data:`` line, since the Python
SDK skips events without the first. Error statuses are the ones the Anthropic SDK maps to
its exception classes (529 for an overloaded upstream).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from gateway.asgi import header, headers_of, query_param, read_body, send_bytes, start_response
from gateway.auth import authenticate, bearer_token
from gateway.canonical import (
    ChatRequest,
    Finish,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningDelta,
    ReasoningSettings,
    StreamError,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    UsageUpdate,
    merge_usage,
)
from gateway.errors import GatewayError, malformed_input
from gateway.media import parse_data_url
from gateway.pipeline import new_request_id, refuse_method, send_error, serve_generation
from gateway.surfaces.openai import decode_json_object
from gateway.tokens import count_prompt
from shared.money import Usage, format_usd

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import Receive, Scope, Send

    from gateway.canonical import ChatResponse, Event, FinishReason, Role
    from gateway.snapshot import KeyEntry, Snapshot, TenantEntry
    from gateway.sse import SSEEvent
    from gateway.state import GatewayState

__all__ = (
    "AnthropicClient",
    "anthropic_models_body",
    "decode_messages_request",
    "error_body",
    "error_type",
    "serve_count_tokens",
    "serve_messages",
    "serve_models",
    "stop_reason",
)

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
UnitFloat = Annotated[float, msgspec.Meta(ge=0, le=1)]

_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic error ``type`` by HTTP status; other 4xx are ``invalid_request_error``."""

_STOP_REASONS: Final[dict[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}

_EFFORTS: Final[dict[str, Literal["low", "medium", "high"]]] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
"""OpenAI-style reasoning effort of an Anthropic ``output_config.effort``."""
_OVERLOADED: Final = 529
_SERVER_ERROR: Final = 500
_MODELS_PAGE: Final = 20
_MODELS_PAGE_MAX: Final = 1000


class InputMessage(msgspec.Struct):
    """One entry of ``messages`` as far as the gateway reads it; any role is accepted."""

    role: str
    content: str | list[dict[str, Any]] | None = None


class MessagesBody(msgspec.Struct):
    """The fields of a Messages request the gateway checks; the rest pass through."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: list[InputMessage]
    max_tokens: PositiveInt | None = None
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = None
    stop_sequences: list[str] | None = None
    temperature: UnitFloat | None = None
    top_p: UnitFloat | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None


def error_type(error: GatewayError) -> str:
    """Return the Anthropic error ``type`` of ``error``."""
    if error.code == "overloaded_error" or error.status == _OVERLOADED:
        return "overloaded_error"
    found = _ERROR_TYPES.get(error.status)
    if found is not None:
        return found
    return "api_error" if error.status >= _SERVER_ERROR else "invalid_request_error"


def error_body(error: GatewayError, request_id: str | None = None) -> bytes:
    """Render ``error`` as an Anthropic error object."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error), "message": error.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return msgspec.json.encode(body)


def stop_reason(reason: FinishReason | str) -> str:
    """Return the Anthropic ``stop_reason`` of a canonical finish reason."""
    return _STOP_REASONS.get(reason, "end_turn")


def _invalid(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block["text"])
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


def _image(block: dict[str, Any]) -> Image | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        # The same checks as an OpenAI data URL: an image type and valid base64.
        media_type, data = parse_data_url(
            f"data:{source.get('media_type') or ''};base64,{source['data']}"
        )
        return Image(media_type=media_type, data=data)
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return Image(media_type="", url=source["url"])
    return None


class _Decoder:
    """Turns Messages turns into canonical messages, remembering tool names by call id."""

    __slots__ = ("names",)

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def part(self, block: dict[str, Any]) -> Part | None:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            if not block["text"]:
                return None
            return Text(block["text"], cache=block.get("cache_control") is not None)
        if kind == "image":
            return _image(block)
        if kind == "tool_use":
            call_id = str(block.get("id") or "")
            name = str(block.get("name") or "")
            self.names[call_id] = name
            arguments = msgspec.json.encode(block.get("input") or {}).decode()
            return ToolCall(id=call_id, name=name, arguments=arguments)
        if kind == "tool_result":
            call_id = str(block.get("tool_use_id") or "")
            return ToolResult(
                call_id=call_id,
                content=_text_of(block.get("content")),
                name=self.names.get(call_id),
                is_error=bool(block.get("is_error")),
            )
        if kind == "thinking":
            signature = block.get("signature")
            return Reasoning(
                text=str(block.get("thinking") or ""),
                signature=signature if isinstance(signature, str) else None,
            )
        if kind == "redacted_thinking":
            return Reasoning(redacted=str(block.get("data") or ""))
        # Documents, server-tool blocks and the like reach only Anthropic upstreams.
        return None

    def messages(self, entry: InputMessage) -> list[Message]:
        content = entry.content
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        parts = [p for b in blocks or () if isinstance(b, dict) and (p := self.part(b))]
        if entry.role in ("system", "developer"):
            texts: list[Part] = [p for p in parts if isinstance(p, Text)]
            return [Message("system", texts)] if texts else []
        if entry.role == "assistant":
            return [Message("assistant", parts)] if parts else []
        # User turns: runs of tool results become tool messages, in their order.
        result: list[Message] = []
        for part in parts:
            role: Role = "tool" if isinstance(part, ToolResult) else "user"
            if result and result[-1].role == role:
                result[-1].parts.append(part)
            else:
                result.append(Message(role, [part]))
        return result


def _system(system: str | list[dict[str, Any]] | None) -> list[Message]:
    if isinstance(system, str):
        return [Message("system", [Text(system)])] if system else []
    messages = []
    for block in system or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str) and block["text"]:
            cache = block.get("cache_control") is not None
            messages.append(Message("system", [Text(block["text"], cache=cache)]))
    return messages


def _tools(raw: list[dict[str, Any]] | None) -> list[Tool]:
    tools = []
    for entry in raw or ():
        schema = entry.get("input_schema")
        # Server tools (web search, bash, text editor, ...) have a versioned type and no
        # schema; only Anthropic upstreams can run them.
        if isinstance(schema, dict) and entry.get("type", "custom") == "custom":
            description = entry.get("description")
            tools.append(
                Tool(
                    name=str(entry.get("name") or ""),
                    description=description if isinstance(description, str) else None,
                    parameters=schema,
                )
            )
    return tools


def _tool_choice(raw: dict[str, Any] | None) -> tuple[ToolChoice | None, bool | None]:
    if raw is None:
        return None, None
    parallel = False if raw.get("disable_parallel_tool_use") is True else None
    kind = raw.get("type")
    if kind == "any":
        return ToolChoice("required"), parallel
    if kind == "tool":
        return ToolChoice("tool", str(raw.get("name") or "")), parallel
    if kind == "none":
        return ToolChoice("none"), parallel
    return ToolChoice("auto"), parallel


def _reasoning(body: MessagesBody) -> ReasoningSettings | None:
    thinking = body.thinking or {}
    effort_name = (body.output_config or {}).get("effort")
    effort = _EFFORTS.get(effort_name) if isinstance(effort_name, str) else None
    kind = thinking.get("type")
    include = thinking.get("display") != "omitted"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        return ReasoningSettings(
            budget_tokens=budget if isinstance(budget, int) else None,
            effort=effort,
            include=include,
        )
    if kind in ("adaptive", "between_tools"):
        return ReasoningSettings(effort=effort, include=include)
    if kind is None and effort is not None:
        return ReasoningSettings(effort=effort)
    return None


def _response_schema(body: MessagesBody) -> dict[str, Any] | None:
    for holder in ((body.output_config or {}).get("format"), body.output_format):
        if isinstance(holder, dict) and holder.get("type") == "json_schema":
            schema = holder.get("schema")
            if isinstance(schema, dict):
                return schema
    return None


def decode_messages_request(
    payload: dict[str, Any], *, require_max_tokens: bool = True
) -> ChatRequest:
    """Decode a Messages body into a canonical request.

    Raises:
        GatewayError: 400 ``invalid_request_error`` naming the first bad field, and for a
            missing ``max_tokens`` when ``require_max_tokens`` (as the Messages API does).
    """
    try:
        body = msgspec.convert(payload, MessagesBody)
    except msgspec.ValidationError as exc:
        msg = f"Invalid request: {exc}"
        raise _invalid(msg) from None
    if require_max_tokens and body.max_tokens is None:
        msg = "max_tokens: Field required"
        raise _invalid(msg)
    decoder = _Decoder()
    messages = _system(body.system)
    for entry in body.messages:
        messages.extend(decoder.messages(entry))
    choice, parallel = _tool_choice(body.tool_choice)
    user = (body.metadata or {}).get("user_id")
    return ChatRequest(
        model=body.model,
        messages=messages,
        stream=bool(body.stream),
        tools=_tools(body.tools),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_output_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop=list(body.stop_sequences or ()),
        reasoning=_reasoning(body),
        response_schema=_response_schema(body),
        user=None if user is None else str(user),
    )


def usage_object(usage: Usage) -> dict[str, Any]:
    """Return Anthropic's usage fields: uncached input, cache read, cache write, output."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    result: dict[str, Any] = {
        "input_tokens": usage.input_tokens - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    }
    if usage.reasoning_tokens:
        result["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return result


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def _content_blocks(parts: list[Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Reasoning):
            if part.redacted is not None:
                blocks.append({"type": "redacted_thinking", "data": part.redacted})
            else:
                blocks.append(
                    {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
                )
        elif isinstance(part, Text):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            try:
                arguments = msgspec.json.decode(part.arguments or "{}")
            except msgspec.DecodeError:
                arguments = {}
            blocks.append(
                {
                    "type": "tool_use",
                    "id": part.id,
                    "name": part.name,
                    "input": arguments if isinstance(arguments, dict) else {},
                }
            )
    return blocks


class AnthropicClient:
    """Writes answers for a client of the Anthropic Messages API, for one request."""

    protocol = "anthropic"
    stream_content_type = "text/event-stream"

    def __init__(self, *, model: str, request_id: str) -> None:
        """Prepare the writer for one request."""
        self.model = model
        self.request_id = request_id
        self.id = f"msg_{request_id.removeprefix('req_')}"
        self._passthrough = False
        self._started = False
        self._usage: Usage | None = None
        self._stop: FinishReason | None = None
        self._open: int | None = None
        self._open_kind: str | None = None
        self._next_index = 0
        self._calls: dict[int, int] = {}
        self._json_sent: set[int] = set()
        self._tool_ids = 0

    def error_body(self, error: GatewayError) -> bytes:
        """Render an error."""
        return error_body(error, self.request_id)

    def _tool_id(self, given: str) -> str:
        if given:
            return given
        self._tool_ids += 1
        return f"toolu_{self.id.removeprefix('msg_')}_{self._tool_ids}"

    def encode_response(self, response: ChatResponse, usage: Usage, cost: int) -> bytes:  # noqa: ARG002 - the cost is in a header
        """Encode a complete canonical answer as a message object."""
        choice = next((c for c in response.choices if c.index == 0), None)
        parts = choice.parts if choice is not None else []
        reason = choice.finish_reason if choice is not None else "stop"
        if reason == "stop" and any(isinstance(p, ToolCall) for p in parts):
            reason = "tool_calls"
        blocks = _content_blocks(parts)
        for block in blocks:
            if block["type"] == "tool_use":
                block["id"] = self._tool_id(block["id"])
        return msgspec.json.encode(
            {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": blocks,
                "stop_reason": stop_reason(reason),
                "stop_sequence": None,
                "usage": usage_object(usage),
            }
        )

    def passthrough_response(self, body: bytes, usage: Usage, cost: int) -> bytes:  # noqa: ARG002 - the cost is in a header
        """Relay a Messages answer with the client's model name.

        The upstream's usage is left as it is; an answer without one gets the gateway's.
        """
        message: dict[str, Any] = msgspec.json.decode(body)
        message["model"] = self.model
        if not isinstance(message.get("usage"), dict):
            message["usage"] = usage_object(usage)
        return msgspec.json.encode(message)

    def stream_open(self) -> bytes:
        """Nothing yet: ``message_start`` waits for the first events and their usage."""
        return b""

    def _message_start(self) -> bytes:
        self._started = True
        usage = usage_object(self._usage or Usage())
        usage["output_tokens"] = 0
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        index, kind = self._open, self._open_kind
        self._open = self._open_kind = None
        out = b""
        if kind == "tool_use" and index not in self._json_sent:
            # A tool call whose arguments never came still needs its (empty) input.
            delta = {"type": "input_json_delta", "partial_json": "{}"}
            out += _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        return out + _sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _open_block(self, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind = index, str(block["type"])
        return out + _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _sse(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _ensure(self, kind: str) -> bytes:
        if self._open_kind == kind:
            return b""
        if kind == "thinking":
            return self._open_block({"type": "thinking", "thinking": "", "signature": ""})
        return self._open_block({"type": "text", "text": ""})

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        if event.redacted is not None:
            out = self._open_block({"type": "redacted_thinking", "data": event.redacted})
            return out + self._close_block()
        out = b""
        if event.text:
            out += self._ensure("thinking")
            out += self._delta(self._index(), {"type": "thinking_delta", "thinking": event.text})
        if event.signature:
            out += self._ensure("thinking")
            delta = {"type": "signature_delta", "signature": event.signature}
            out += self._delta(self._index(), delta)
        return out

    def _index(self) -> int:
        return self._open if self._open is not None else 0

    def _tool_start(self, event: ToolCallStart) -> bytes:
        block = {"type": "tool_use", "id": self._tool_id(event.id), "name": event.name, "input": {}}
        out = self._open_block(block)
        self._calls[event.call_index] = self._index()
        return out

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        index = self._calls.get(event.call_index)
        if index is None or not event.arguments:
            return b""
        self._json_sent.add(index)
        return self._delta(index, {"type": "input_json_delta", "partial_json": event.arguments})

    def encode_events(self, events: list[Event]) -> bytes:
        """Encode canonical events as Messages stream events."""
        out = bytearray()
        for event in events:
            if isinstance(event, UsageUpdate):
                self._usage = merge_usage(self._usage, event.usage)
        if not self._started:
            out += self._message_start()
        for event in events:
            # A Messages answer has one choice.
            if getattr(event, "index", 0) == 0:
                out += self._event(event)
        return bytes(out)

    def _event(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            if not event.text:
                return b""
            out = self._ensure("text")
            return out + self._delta(self._index(), {"type": "text_delta", "text": event.text})
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event)
        if isinstance(event, ToolCallStart):
            return self._tool_start(event)
        if isinstance(event, ToolCallDelta):
            return self._tool_delta(event)
        if isinstance(event, Finish):
            self._stop = event.reason
        elif isinstance(event, StreamError):
            return self._error_event(GatewayError(event.status, event.code, event.message))
        return b""

    def _error_event(self, error: GatewayError) -> bytes:
        body = {"type": "error", "error": {"type": error_type(error), "message": error.message}}
        return _sse("error", body)

    def passthrough_event(
        self,
        event: SSEEvent,
        events: list[Event],  # noqa: ARG002 - usage is read by the engine
        cost_of: Callable[[Usage], int],  # noqa: ARG002 - the cost goes in a closing comment
    ) -> bytes:
        """Relay a Messages event unchanged, but for the model name in ``message_start``."""
        self._passthrough = True
        if not event.data or event.data == "[DONE]":
            return b""
        name = event.event
        data = event.data
        if name == "message" or name == "message_start":
            try:
                decoded = msgspec.json.decode(data)
            except msgspec.DecodeError:
                return b""
            if not isinstance(decoded, dict):
                return b""
            name = str(decoded.get("type") or name)
            message = decoded.get("message")
            if name == "message_start" and isinstance(message, dict):
                message["model"] = self.model
                data = msgspec.json.encode(decoded).decode()
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        return f"event: {name}\n{lines}\n".encode()

    def stream_close(
        self, usage: Usage, cost: int, *, complete: bool, error: GatewayError | None
    ) -> bytes:
        """End the stream: closing block, ``message_delta`` and ``message_stop``, or an error."""
        out = bytearray()
        if not self._passthrough and not self._started:
            out += self._message_start()
        if error is not None:
            return bytes(out + self._error_event(error))
        if not complete:
            failure = GatewayError(
                502,
                "upstream_truncated",
                "the upstream stream ended before it was complete",
                type="upstream_error",
            )
            return bytes(out + self._error_event(failure))
        if not self._passthrough:
            out += self._close_block()
            reason = self._stop or "stop"
            if reason == "stop" and self._calls:
                reason = "tool_calls"
            delta = {"stop_reason": stop_reason(reason), "stop_sequence": None}
            out += _sse(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage_object(usage)},
            )
            out += _sse("message_stop", {"type": "message_stop"})
        out += f": x-tollgate-cost: {format_usd(cost)}\n\n".encode()
        return bytes(out)


def api_key_of(scope: Scope) -> str | None:
    """Return the key an Anthropic-style client sent (``x-api-key``, or Bearer)."""
    return header(scope, b"x-api-key") or bearer_token(header(scope, b"authorization"))


async def serve_messages(state: GatewayState, scope: Scope, receive: Receive, send: Send) -> None:
    """Handle ``POST /v1/messages`` (query strings such as ``?beta=true`` are accepted)."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    if await refuse_method(scope, send, lambda e: error_body(e, request_id), request_id):
        return
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        payload = decode_json_object(body)
        with malformed_input():
            request = decode_messages_request(payload)
    except GatewayError as exc:
        await send_error(send, lambda e: error_body(e, request_id), exc, request_id)
        return
    client = AnthropicClient(model=request.model, request_id=request_id)
    await serve_generation(
        state,
        receive,
        send,
        request_id=request_id,
        created_at=created_at,
        key=key,
        tenant=tenant,
        request=request,
        raw=payload,
        client=client,
        endpoint="messages",
        body_size=len(body),
        client_headers=headers_of(scope),
    )


async def serve_count_tokens(
    state: GatewayState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Handle ``POST /v1/messages/count_tokens``: an offline count, no upstream, no charge."""
    request_id = new_request_id()
    if await refuse_method(scope, send, lambda e: error_body(e, request_id), request_id):
        return
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        with malformed_input():
            request = decode_messages_request(decode_json_object(body), require_max_tokens=False)
        # The same rule as the model list and as /v1/messages itself.
        if request.model not in state.snapshot.usable_models(key, tenant):
            msg = f"model: {request.model}"
            raise GatewayError(404, "model_not_found", msg, param="model")
    except GatewayError as exc:
        await send_error(send, lambda e: error_body(e, request_id), exc, request_id)
        return
    answer = msgspec.json.encode({"input_tokens": count_prompt(request)})
    headers = [("x-request-id", request_id), ("request-id", request_id), ("x-tollgate-cost", "0")]
    await start_response(send, 200, headers, content_type="application/json")
    await send_bytes(send, answer, more=False)


def anthropic_models_body(
    snapshot: Snapshot,
    key: KeyEntry,
    tenant: TenantEntry,
    model: str | None = None,
    *,
    limit: int = _MODELS_PAGE,
    after_id: str | None = None,
    before_id: str | None = None,
) -> bytes:
    """Return the Anthropic model list (one page) or one model that the key may use.

    Raises:
        GatewayError: 404 for a model the key may not use.
    """
    models = snapshot.usable_models(key, tenant)
    created = datetime.datetime.fromtimestamp(snapshot.loaded_at, datetime.UTC)
    created_at = created.strftime("%Y-%m-%dT%H:%M:%SZ")

    def entry(name: str) -> dict[str, Any]:
        return {"type": "model", "id": name, "display_name": name, "created_at": created_at}

    if model is not None:
        if model not in models:
            msg = f"model: {model}"
            raise GatewayError(404, "model_not_found", msg, param="model")
        return msgspec.json.encode(entry(model))
    start, end = 0, len(models)
    if after_id is not None and after_id in models:
        start = models.index(after_id) + 1
    if before_id is not None and before_id in models:
        end = models.index(before_id)
        start = max(start, end - limit)
    page = models[start:end][:limit]
    more = start + len(page) < end if before_id is None else start > 0
    return msgspec.json.encode(
        {
            "data": [entry(m) for m in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


def _limit(scope: Scope) -> int:
    value = query_param(scope, "limit")
    if value is None:
        return _MODELS_PAGE
    if not value.isdigit() or not 1 <= int(value) <= _MODELS_PAGE_MAX:
        msg = f"limit: Input should be between 1 and {_MODELS_PAGE_MAX}"
        raise GatewayError(400, "invalid_request_error", msg, param="limit")
    return int(value)


async def serve_models(state: GatewayState, scope: Scope, send: Send) -> None:
    """Handle ``GET /v1/models[/{model}]`` for Anthropic clients (``anthropic-version`` set)."""
    request_id = new_request_id()
    name = scope["path"].removeprefix("/v1/models").strip("/") or None
    try:
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        body = anthropic_models_body(
            state.snapshot,
            key,
            tenant,
            name,
            limit=_limit(scope),
            after_id=query_param(scope, "after_id"),
            before_id=query_param(scope, "before_id"),
        )
    except GatewayError as exc:
        await send_error(send, lambda e: error_body(e, request_id), exc, request_id)
        return
    headers = [("x-request-id", request_id), ("request-id", request_id)]
    await start_response(send, 200, headers, content_type="application/json")
    await send_bytes(send, body, more=False)
