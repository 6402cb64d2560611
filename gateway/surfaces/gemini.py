"""The Gemini API surface: ``/v1beta/models/{model}:generateContent`` and friends.

Served under one mount, ``/v1beta``:

- ``POST /v1beta/models/{model}:generateContent``
- ``POST /v1beta/models/{model}:streamGenerateContent`` (``?alt=sse`` gives SSE frames
  ``data: {...}`` ended by CRLF CRLF and no ``[DONE]``; without it the answer is one JSON
  array written element by element, as Google does)
- ``POST /v1beta/models/{model}:countTokens`` (counted offline, not billed)
- ``POST /v1beta/models/{model}:embedContent`` and ``:batchEmbedContents`` (served by any
  channel kind through :mod:`gateway.embeddings`; input tokens are billed)
- ``GET /v1beta/models`` and ``GET /v1beta/models/{model}`` (the models the key may use)
- ``POST /v1beta/openai/chat/completions``: Google's OpenAI-compatible path, served by the
  OpenAI surface

The key comes in ``x-goog-api-key`` or ``?key=`` (``Authorization: Bearer`` also works).
The model named in the path is the client's name: prices, routing and the answer's
``modelVersion`` use it, and the operator's channel map decides what the upstream is called.

The decoder reads the request in both spellings the REST API accepts (camelCase and
snake_case), takes tool schemas from ``parameters`` (Gemini's OpenAPI dialect, upper-case
types) or ``parametersJsonSchema`` (JSON Schema, what Gemini CLI sends) and structured
output from ``responseSchema`` or ``responseJsonSchema``, all turned into standard JSON
Schema for the canonical request. Fields the canonical form has no place for still reach
Gemini upstreams, which get the client's own body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import logging
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import msgspec

from gateway.asgi import header, headers_of, query_param, read_body, send_bytes, start_response
from gateway.auth import authenticate, bearer_token
from gateway.billing import UsageRecord, admit, settle
from gateway.canonical import (
    ChatRequest,
    Finish,
    Message,
    Part,
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
)
from gateway.embeddings import count_inputs, decode_embedding_request, fetch_embeddings
from gateway.errors import GatewayError, malformed_input
from gateway.pipeline import new_request_id, send_error, serve_generation
from gateway.providers.gemini import (
    arguments_object,
    decode_parts,
    encode_parts,
    get_field,
    new_call_id,
    standard_base64,
)
from gateway.routing import resolve
from gateway.surfaces.openai import decode_json_object, serve_chat_completions
from gateway.tokens import count_prompt
from shared.money import Usage, compute_cost, compute_hold, format_usd

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import Receive, Scope, Send

    from gateway.canonical import ChatResponse, Event, Role
    from gateway.embeddings import EmbeddingAnswer, EmbeddingRequest
    from gateway.snapshot import KeyEntry, TenantEntry
    from gateway.sse import SSEEvent
    from gateway.state import GatewayState

logger = logging.getLogger(__name__)

__all__ = (
    "GeminiClient",
    "decode_embedding_call",
    "decode_generate_request",
    "error_body",
    "json_schema",
    "serve_gemini",
    "usage_metadata",
)

MAX_CANDIDATES: Final = 8
"""Largest ``candidateCount`` Gemini accepts."""

_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH_NAMES: Final = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "error": "OTHER",
}
_LEVELS: Final = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_MODES: Final = {"AUTO": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required"}
_GENERATION_METHODS: Final = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
)
_ARRAY_TYPE: Final = "application/json; charset=UTF-8"
_SCHEMA_MAPS: Final = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_SCHEMA_LISTS: Final = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE: Final = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
)
_SCHEMA_DROPPED: Final = frozenset({"nullable", "propertyOrdering", "example"})


# ---------------------------------------------------------------------------- errors


def _status_name(status: int) -> str:
    return _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def error_body(error: GatewayError) -> bytes:
    """Render ``error`` as a Gemini (Google API) error object.

    ``details`` carries an ``ErrorInfo`` with the gateway's code as its reason and, when
    the client should wait, a ``RetryInfo`` (Gemini CLI reads both).
    """
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": error.code.upper(),
            "domain": "tollgate",
        }
    ]
    retry_after = error.headers.get("retry-after")
    if retry_after and retry_after.isdigit():
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}
        )
    return msgspec.json.encode(
        {
            "error": {
                "code": error.status,
                "message": error.message,
                "status": _status_name(error.status),
                "details": details,
            }
        }
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _invalid(message: str, field: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_value", message, param=field)


# ---------------------------------------------------------------------------- decoding


def json_schema(schema: Any) -> Any:
    """Return a Gemini schema (OpenAPI dialect, or JSON Schema) as standard JSON Schema.

    Types are lower-cased (``"OBJECT"`` → ``"object"``), ``nullable: true`` adds ``"null"``
    to the type, and the Gemini-only ``propertyOrdering`` and ``example`` are dropped; every
    other keyword is kept, recursively.
    """
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            out[key] = _lower_type(value)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [json_schema(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = json_schema(value)
        elif key not in _SCHEMA_DROPPED:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _lower_type(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


def _check_base64(data: Any, field: str) -> None:
    if not isinstance(data, str):
        msg = f"Invalid value at '{field}': expected base64 text."
        raise _invalid(msg, field)
    try:
        base64.b64decode(standard_base64(data) or "", validate=True)
    except (binascii.Error, ValueError):
        msg = f"Invalid value at '{field}' (TYPE_BYTES), Base64 decoding failed."
        raise _invalid(msg, field) from None


def _check_parts(raw_parts: Any, field: str) -> None:
    if not isinstance(raw_parts, list):
        msg = f"Invalid value at '{field}': expected a list of Part objects."
        raise _invalid(msg, field)
    for position, part in enumerate(raw_parts):
        where = f"{field}[{position}]"
        if not isinstance(part, dict):
            msg = f"Invalid value at '{where}': expected a Part object."
            raise _invalid(msg, where)
        inline = get_field(part, "inlineData")
        if inline is not None:
            if not isinstance(inline, dict) or not get_field(inline, "mimeType"):
                msg = f"* {where}.inline_data: mime_type is not specified."
                raise _invalid(msg, where)
            _check_base64(inline.get("data"), f"{where}.inline_data.data")
        call = get_field(part, "functionCall")
        if call is not None and not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            msg = f"* {where}.function_call: name is not specified."
            raise _invalid(msg, where)
        answer = get_field(part, "functionResponse")
        if answer is not None and not (
            isinstance(answer, dict) and isinstance(answer.get("name"), str)
        ):
            msg = f"* {where}.function_response: name is not specified."
            raise _invalid(msg, where)


class _Calls:
    """Tool calls not yet answered, to give answers without an id the id of their call."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: list[ToolCall] = []

    def called(self, parts: list[Part]) -> None:
        self._open = [p for p in parts if isinstance(p, ToolCall)]

    def answer(self, result: ToolResult) -> ToolResult:
        if result.call_id:
            self._open = [c for c in self._open if c.id != result.call_id]
            return result
        for position, call in enumerate(self._open):
            if call.name == result.name:
                del self._open[position]
                return ToolResult(call.id, result.content, result.name, result.is_error)
        return ToolResult(new_call_id(), result.content, result.name, result.is_error)


def _turn_messages(role: str, parts: list[Part], calls: _Calls) -> list[Message]:
    """Split a ``user`` turn into tool-result messages and user messages, in order."""
    if role == "model":
        calls.called(parts)
        return [Message("assistant", parts)]
    messages: list[Message] = []
    for part in parts:
        kind: Role = "user"
        if isinstance(part, ToolResult):
            kind = "tool"
            part = calls.answer(part)
        if messages and messages[-1].role == kind:
            messages[-1].parts.append(part)
        else:
            messages.append(Message(kind, [part]))
    return messages


def _messages(payload: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []
    system = get_field(payload, "systemInstruction")
    if isinstance(system, str):
        system = {"parts": [{"text": system}]}
    if system is not None:
        if not isinstance(system, dict):
            msg = "Invalid value at 'system_instruction': expected a Content object."
            raise _invalid(msg, "systemInstruction")
        texts: list[Part] = [p for p in decode_parts(system.get("parts")) if isinstance(p, Text)]
        if texts:
            messages.append(Message("system", texts))
    contents = payload.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        msg = "* GenerateContentRequest.contents: contents is not specified"
        raise _invalid(msg, "contents")
    calls = _Calls()
    for position, content in enumerate(contents):
        where = f"contents[{position}]"
        if not isinstance(content, dict):
            msg = f"Invalid value at '{where}': expected a Content object."
            raise _invalid(msg, where)
        role = content.get("role") or "user"
        if role not in ("user", "model", "function", "tool"):
            msg = f"Please use a valid role: user, model. (got `{role}` at {where}.role)"
            raise _invalid(msg, f"{where}.role")
        _check_parts(content.get("parts"), f"{where}.parts")
        parts = decode_parts(content["parts"])
        if parts:  # an empty turn says nothing; converted upstreams need none
            messages.extend(_turn_messages(role, parts, calls))
    if all(m.role == "system" for m in messages):
        msg = "* GenerateContentRequest.contents: contents.parts must not be empty."
        raise _invalid(msg, "contents")
    return messages


def _tools(payload: dict[str, Any]) -> list[Tool]:
    raw = payload.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        msg = "Invalid value at 'tools': expected a list of Tool objects."
        raise _invalid(msg, "tools")
    tools: list[Tool] = []
    for position, entry in enumerate(raw):
        declarations = get_field(entry, "functionDeclarations") or []
        if not isinstance(declarations, list):
            where = f"tools[{position}].function_declarations"
            msg = f"Invalid value at '{where}': expected a list."
            raise _invalid(msg, where)
        for number, declaration in enumerate(declarations):
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if not isinstance(name, str) or not name:
                where = f"tools[{position}].function_declarations[{number}].name"
                msg = f"* {where}: name is not specified."
                raise _invalid(msg, where)
            schema = get_field(declaration, "parametersJsonSchema")
            if schema is None:
                schema = declaration.get("parameters")
            description = declaration.get("description")
            tools.append(
                Tool(
                    name=name,
                    description=description if isinstance(description, str) else None,
                    parameters=json_schema(schema) if isinstance(schema, dict) else {},
                )
            )
    return tools


def _tool_choice(
    payload: dict[str, Any], tools: list[Tool]
) -> tuple[ToolChoice | None, list[Tool]]:
    calling = get_field(get_field(payload, "toolConfig"), "functionCallingConfig")
    if not isinstance(calling, dict):
        return None, tools
    mode = _MODES.get(str(calling.get("mode") or "AUTO").upper(), "auto")
    allowed = get_field(calling, "allowedFunctionNames")
    if mode != "required" or not isinstance(allowed, list) or not allowed:
        return ToolChoice(mode), tools  # type: ignore[arg-type]
    if len(allowed) == 1:
        return ToolChoice("tool", str(allowed[0])), tools
    return ToolChoice("required"), [t for t in tools if t.name in allowed]


def _number(config: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = get_field(config, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        where = f"GenerateContentRequest.generation_config.{_snake(name)}"
        msg = f"* {where}: must be between {low} and {high}"
        raise _invalid(msg, f"generationConfig.{name}")
    return float(value)


def _count(config: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = get_field(config, name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        msg = f"* GenerateContentRequest.generation_config.{_snake(name)}: must be at least {low}"
        raise _invalid(msg, f"generationConfig.{name}")
    if high is not None and value > high:
        msg = f"* GenerateContentRequest.generation_config.{_snake(name)}: must be at most {high}"
        raise _invalid(msg, f"generationConfig.{name}")
    return value


def _reasoning(config: dict[str, Any]) -> ReasoningSettings | None:
    thinking = get_field(config, "thinkingConfig")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        msg = "Invalid value at 'generation_config.thinking_config': expected an object."
        raise _invalid(msg, "generationConfig.thinkingConfig")
    budget = get_field(thinking, "thinkingBudget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        msg = "Invalid value at 'generation_config.thinking_config.thinking_budget'."
        raise _invalid(msg, "generationConfig.thinkingConfig.thinkingBudget")
    level = str(get_field(thinking, "thinkingLevel") or "").lower()
    effort = _LEVELS.get(level)
    if level and effort is None and level != "thinking_level_unspecified":
        msg = f"Invalid value at 'generation_config.thinking_config.thinking_level' ({level})."
        raise _invalid(msg, "generationConfig.thinkingConfig.thinkingLevel")
    return ReasoningSettings(
        budget_tokens=budget,
        effort=effort,  # type: ignore[arg-type]
        include=get_field(thinking, "includeThoughts") is True,
    )


def _structured(config: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    mime = str(get_field(config, "responseMimeType") or "")
    schema = get_field(config, "responseJsonSchema")
    if schema is None:
        schema = get_field(config, "responseSchema")
    if isinstance(schema, dict) and mime in ("application/json", ""):
        return json_schema(schema), False
    return None, mime == "application/json"


def decode_generate_request(payload: dict[str, Any], model: str, *, stream: bool) -> ChatRequest:
    """Decode a ``GenerateContentRequest`` body for ``model`` into a canonical request.

    Raises:
        GatewayError: 400 naming the first bad field.
    """
    config = get_field(payload, "generationConfig")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        msg = "Invalid value at 'generation_config': expected a GenerationConfig object."
        raise _invalid(msg, "generationConfig")
    stop = get_field(config, "stopSequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        msg = "Invalid value at 'generation_config.stop_sequences': expected a list of text."
        raise _invalid(msg, "generationConfig.stopSequences")
    top_k = _number(config, "topK", 1, 1_000_000)
    seed = get_field(config, "seed")
    schema, json_mode = _structured(config)
    tools = _tools(payload)
    tool_choice, tools = _tool_choice(payload, tools)
    return ChatRequest(
        model=model,
        messages=_messages(payload),
        stream=stream,
        tools=tools,
        tool_choice=tool_choice,
        max_output_tokens=_count(config, "maxOutputTokens", 1),
        temperature=_number(config, "temperature", 0, 2),
        top_p=_number(config, "topP", 0, 1),
        top_k=int(top_k) if top_k is not None else None,
        stop=list(stop),
        n=_count(config, "candidateCount", 1, MAX_CANDIDATES) or 1,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        reasoning=_reasoning(config),
        response_schema=schema,
        json_mode=json_mode,
    )


# ---------------------------------------------------------------------------- encoding


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """Return Gemini ``usageMetadata`` for canonical usage (the inverse of the upstream's)."""
    metadata: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_input_tokens:
        metadata["cachedContentTokenCount"] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        metadata["thoughtsTokenCount"] = usage.reasoning_tokens
    return metadata


class _PendingCall:
    __slots__ = ("arguments", "id", "name", "signature")

    def __init__(self, call_id: str, name: str, signature: str | None) -> None:
        self.id = call_id
        self.name = name
        self.signature = signature
        self.arguments: list[str] = []

    def part(self) -> dict[str, Any]:
        call = {"id": self.id, "name": self.name, "args": arguments_object("".join(self.arguments))}
        entry: dict[str, Any] = {"functionCall": call}
        if self.signature is not None:
            entry["thoughtSignature"] = self.signature
        return entry


class GeminiClient:
    """Writes answers for a client of the Gemini API.

    Converted streams write one ``GenerateContentResponse`` per upstream event, holding
    only its new parts; a tool call is written whole once its arguments are complete (at
    its choice's finish), and the ``finishReason`` s wait for a last frame that also
    carries the final ``usageMetadata`` (case BC35). Same-protocol streams are relayed
    event by event with only ``modelVersion`` rewritten.
    """

    protocol = "gemini"

    def __init__(self, *, model: str, request_id: str, sse: bool = True) -> None:
        """Prepare the writer for one request; ``sse`` is false for the JSON-array stream."""
        self.model = model
        self.sse = sse
        self.stream_content_type = "text/event-stream" if sse else _ARRAY_TYPE
        self.id = request_id.removeprefix("req_")
        self._frames = 0
        self._closed = False
        self._passthrough = False
        self._seen: set[int] = set()
        self._finishes: dict[int, str] = {}
        self._calls: dict[int, dict[int, _PendingCall]] = {}
        self._signatures: dict[int, str] = {}

    def error_body(self, error: GatewayError) -> bytes:
        """Render an error."""
        return error_body(error)

    def encode_response(self, response: ChatResponse, usage: Usage, cost: int) -> bytes:  # noqa: ARG002 - the cost is in a header
        """Encode a complete canonical answer as a ``GenerateContentResponse``."""
        candidates = []
        for choice in response.choices:
            candidate: dict[str, Any] = {}
            parts = encode_parts(choice.parts)
            if parts:
                candidate["content"] = {"parts": parts, "role": "model"}
            candidate["finishReason"] = _FINISH_NAMES.get(choice.finish_reason, "STOP")
            candidate["index"] = choice.index
            candidates.append(candidate)
        return msgspec.json.encode(
            {
                "candidates": candidates,
                "usageMetadata": usage_metadata(usage),
                "modelVersion": self.model,
                "responseId": self.id,
            }
        )

    def passthrough_response(self, body: bytes, usage: Usage, cost: int) -> bytes:  # noqa: ARG002 - Gemini's usage is relayed as sent
        """Relay a Gemini answer with the client's model name."""
        answer = msgspec.json.decode(body)
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if isinstance(answer, dict):
            answer["modelVersion"] = self.model
        return msgspec.json.encode(answer)

    def stream_open(self) -> bytes:
        """The JSON-array stream opens its array; SSE needs no preamble."""
        return b"" if self.sse else b"["

    def _frame(self, value: Any) -> bytes:
        data = msgspec.json.encode(value)
        if self.sse:
            return b"data: " + data + b"\r\n\r\n"
        prefix = b",\r\n" if self._frames else b""
        self._frames += 1
        return prefix + data

    def _error_frame(self, error: GatewayError) -> bytes:
        self._closed = True
        out = self._frame(msgspec.json.decode(error_body(error)))
        return out if self.sse else out + b"]"

    def _chunk(self, candidates: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "candidates": [
                {"content": {"parts": parts, "role": "model"}, "index": index}
                for index, parts in sorted(candidates.items())
            ],
            "modelVersion": self.model,
            "responseId": self.id,
        }

    def _add(self, out: dict[int, list[dict[str, Any]]], index: int, part: dict[str, Any]) -> None:
        signature = self._signatures.pop(index, None)
        if signature is not None and "thoughtSignature" not in part:
            part["thoughtSignature"] = signature
        out.setdefault(index, []).append(part)

    def _flush_calls(self, out: dict[int, list[dict[str, Any]]], index: int) -> None:
        for _, call in sorted(self._calls.pop(index, {}).items()):
            self._add(out, index, call.part())

    def encode_events(self, events: list[Event]) -> bytes:
        """Encode canonical events as one ``GenerateContentResponse`` frame (or none)."""
        if self._closed:
            return b""
        parts: dict[int, list[dict[str, Any]]] = {}
        failure: StreamError | None = None
        for event in events:
            if isinstance(event, StreamError):
                failure = event
                break
            if isinstance(event, TextDelta | ReasoningDelta | ToolCallStart | Finish):
                self._seen.add(event.index)
            if isinstance(event, TextDelta):
                if event.text:
                    self._add(parts, event.index, {"text": event.text})
            elif isinstance(event, ReasoningDelta):
                self._reasoning(parts, event)
            elif isinstance(event, ToolCallStart):
                calls = self._calls.setdefault(event.index, {})
                calls[event.call_index] = _PendingCall(event.id, event.name, event.signature)
            elif isinstance(event, ToolCallDelta):
                calls = self._calls.setdefault(event.index, {})
                pending = calls.setdefault(event.call_index, _PendingCall(new_call_id(), "", None))
                pending.arguments.append(event.arguments)
            elif isinstance(event, Finish):
                self._finishes[event.index] = event.reason
                self._flush_calls(parts, event.index)
        out = self._frame(self._chunk(parts)) if parts else b""
        if failure is not None:
            error = GatewayError(
                failure.status, failure.code, failure.message, type="upstream_error"
            )
            out += self._error_frame(error)
        return out

    def _reasoning(self, parts: dict[int, list[dict[str, Any]]], event: ReasoningDelta) -> None:
        if event.text:
            part: dict[str, Any] = {"text": event.text, "thought": True}
            if event.signature is not None:
                part["thoughtSignature"] = event.signature
            self._add(parts, event.index, part)
        elif event.signature is not None:
            self._signatures[event.index] = event.signature

    def passthrough_event(
        self,
        event: SSEEvent,
        events: list[Event],  # noqa: ARG002 - the upstream's own event is relayed
        cost_of: Callable[[Usage], int],  # noqa: ARG002 - Gemini frames carry no cost
    ) -> bytes:
        """Relay a Gemini event with the client's model name; an error event ends the stream."""
        self._passthrough = True
        if self._closed or not event.data:
            return b""
        try:
            chunk = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk and "candidates" not in chunk:
            self._closed = True
            out = self._frame(chunk)
            return out if self.sse else out + b"]"
        chunk["modelVersion"] = self.model
        return self._frame(chunk)

    def stream_close(
        self, usage: Usage, cost: int, *, complete: bool, error: GatewayError | None
    ) -> bytes:
        """End the stream: the last frame with finish reasons and usage, or an error."""
        del cost
        if self._closed:
            return b""
        if error is not None:
            return self._error_frame(error)
        if not complete:
            failure = GatewayError(
                502,
                "upstream_truncated",
                "the upstream stream ended before it was complete",
                type="upstream_error",
            )
            return self._error_frame(failure)
        self._closed = True
        if self._passthrough:
            return b"" if self.sse else b"]"
        candidates = []
        for index in sorted(self._seen | set(self._calls) | set(self._signatures) or {0}):
            parts: dict[int, list[dict[str, Any]]] = {}
            self._flush_calls(parts, index)
            signature = self._signatures.pop(index, None)
            content = parts.get(index) or [{"text": ""}]
            if signature is not None:
                content.append({"text": "", "thoughtSignature": signature})
            reason = self._finishes.get(index, "stop")
            candidates.append(
                {
                    "content": {"parts": content, "role": "model"},
                    "finishReason": _FINISH_NAMES.get(reason, "STOP"),
                    "index": index,
                }
            )
        last = {
            "candidates": candidates,
            "usageMetadata": usage_metadata(usage),
            "modelVersion": self.model,
            "responseId": self.id,
        }
        out = self._frame(last)
        return out if self.sse else out + b"]"


# ---------------------------------------------------------------------------- serving


def api_key_of(scope: Scope) -> str | None:
    """Return the key a Gemini client sent: ``x-goog-api-key``, ``?key=``, or a Bearer token."""
    return (
        header(scope, b"x-goog-api-key")
        or query_param(scope, "key")
        or bearer_token(header(scope, b"authorization"))
    )


def _path_of(scope: Scope) -> str:
    """Return the request path after ``/v1beta``, decoded, without a trailing slash."""
    raw = scope.get("raw_path")
    if raw:
        path = unquote(bytes(raw).split(b"?", 1)[0].decode("latin-1"))
        path = path.removeprefix("/v1beta")
    else:
        path = str(scope["path"])
    return path.rstrip("/")


def _model_entry(name: str, owner: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "001",
        "displayName": name,
        "description": f"{name}, served by Tollgate ({owner}).",
        "supportedGenerationMethods": list(_GENERATION_METHODS),
    }


def _models_body(
    state: GatewayState, key: KeyEntry, tenant: TenantEntry, name: str | None
) -> bytes:
    snapshot = state.snapshot
    usable = snapshot.usable_models(key, tenant)

    def owner(model: str) -> str:
        channels = snapshot.channels_for(model, tenant.group)
        return channels[0].kind if channels else "tollgate"

    if name is None:
        return msgspec.json.encode({"models": [_model_entry(m, owner(m)) for m in usable]})
    if name not in usable:
        msg = f"models/{name} is not found for API version v1beta, or you do not have access to it."
        raise GatewayError(404, "model_not_found", msg, param="model")
    return msgspec.json.encode(_model_entry(name, owner(name)))


async def _send_json(send: Send, body: bytes, request_id: str) -> None:
    await start_response(send, 200, [("x-request-id", request_id)], content_type="application/json")
    await send_bytes(send, body, more=False)


async def _serve_generate(
    state: GatewayState, scope: Scope, receive: Receive, send: Send, model: str, action: str
) -> None:
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    stream = action == "streamGenerateContent"
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        payload = decode_json_object(body)
        with malformed_input():
            request = decode_generate_request(payload, model, stream=stream)
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    client = GeminiClient(
        model=model, request_id=request_id, sse=query_param(scope, "alt") == "sse"
    )
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
        endpoint=f"gemini.{action}",
        body_size=len(body),
        client_headers=headers_of(scope),
    )


async def _serve_count_tokens(
    state: GatewayState, scope: Scope, receive: Receive, send: Send, model: str
) -> None:
    request_id = new_request_id()
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        resolve(state.snapshot, key, tenant, model)
        payload = decode_json_object(body)
        inner = get_field(payload, "generateContentRequest")
        request = decode_generate_request(
            inner if isinstance(inner, dict) else payload, model, stream=False
        )
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    await _send_json(send, msgspec.json.encode({"totalTokens": count_prompt(request)}), request_id)


def _embedding_texts(content: Any, where: str) -> str:
    parts = get_field(content, "parts")
    texts = [
        p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    if not isinstance(parts, list) or not "".join(texts):
        msg = f"* {where}.content: content is not specified"
        raise _invalid(msg, f"{where}.content")
    return "\n".join(texts)


def decode_embedding_call(payload: dict[str, Any], model: str, action: str) -> EmbeddingRequest:
    """Decode ``embedContent`` or ``batchEmbedContents`` into an embeddings request.

    The texts of one ``content`` are one input; ``outputDimensionality`` must be the same
    for every request of a batch. ``taskType`` and ``title`` have no equivalent on other
    upstreams and are not passed on.

    Raises:
        GatewayError: 400 naming the bad field.
    """
    if action == "embedContent":
        requests: Any = [payload]
    else:
        requests = payload.get("requests")
        if not isinstance(requests, list) or not requests:
            msg = "* BatchEmbedContentsRequest.requests: requests is not specified"
            raise _invalid(msg, "requests")
    texts: list[str] = []
    sizes: set[Any] = set()
    for position, entry in enumerate(requests):
        where = "EmbedContentRequest" if action == "embedContent" else f"requests[{position}]"
        if not isinstance(entry, dict):
            msg = f"Invalid value at '{where}': expected an EmbedContentRequest."
            raise _invalid(msg, where)
        texts.append(_embedding_texts(entry.get("content"), where))
        sizes.add(get_field(entry, "outputDimensionality"))
    if len(sizes) > 1:
        msg = "Every request of a batch must ask for the same output_dimensionality."
        raise _invalid(msg, "requests")
    body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    size = sizes.pop()
    if size is not None:
        body["dimensions"] = size
    try:
        return decode_embedding_request(body)
    except GatewayError as exc:
        field = "output_dimensionality" if exc.param == "dimensions" else "content"
        msg = f"* EmbedContentRequest.{field}: {exc.message}"
        raise _invalid(msg, field) from None


def _vectors(answer: EmbeddingAnswer) -> list[Any]:
    if answer.vectors is not None:
        return answer.vectors
    items = sorted(answer.data or (), key=lambda item: int(item["index"]))
    return [item["embedding"] for item in items]


async def _serve_embeddings(
    state: GatewayState, scope: Scope, receive: Receive, send: Send, model: str, action: str
) -> None:
    """Embed, bill the input tokens (the upstream's count, else an offline one) and answer."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        request = decode_embedding_call(decode_json_object(body), model, action)
        route = resolve(state.snapshot, key, tenant, model)
        hold = compute_hold(len(body), 0, route.price, tenant.ratio)
        rate_headers = await admit(
            state.pool,
            request_id=request_id,
            key=key,
            amount=hold,
            ttl=state.settings.billing.hold_ttl,
        )
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    record = UsageRecord(
        created_at=created_at,
        request_id=request_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        channel_id=None,
        model=model,
        upstream_model=None,
        endpoint=f"gemini.{action}",
        stream=False,
        status="error",
        http_status=0,
    )
    charge = 0
    try:
        answer = await fetch_embeddings(state, request, route, record)
        if answer.prompt_tokens is not None:
            usage = Usage(input_tokens=answer.prompt_tokens)
        else:
            usage = Usage(input_tokens=count_inputs(request.inputs), estimated=True)
        charge = compute_cost(usage, route.price, tenant.ratio)
        record.apply(usage)
        record.status, record.http_status = "ok", 200
        embeddings = [{"values": vector} for vector in _vectors(answer)]
        payload = (
            {"embedding": embeddings[0]} if action == "embedContent" else {"embeddings": embeddings}
        )
        headers = {
            "x-request-id": request_id,
            **rate_headers,
            "x-tollgate-cost": format_usd(charge),
        }
        await start_response(send, 200, headers.items(), content_type="application/json")
        await send_bytes(send, msgspec.json.encode(payload), more=False)
    except GatewayError as exc:
        charge = 0
        record.status, record.http_status, record.error = "error", exc.status, exc.message
        await send_error(send, error_body, exc, request_id)
    finally:
        # Settlement must happen even if this handler is cancelled; shield it.
        await asyncio.shield(state.spawn(_settle_embeddings(state, record, charge)))


async def _settle_embeddings(state: GatewayState, record: UsageRecord, charge: int) -> None:
    elapsed = datetime.datetime.now(datetime.UTC) - record.created_at
    record.latency_ms = int(elapsed.total_seconds() * 1000)
    try:
        await settle(state.pool, record, charge)
    except Exception:
        logger.exception(
            "settlement failed", extra={"request_id": record.request_id, "charge": charge}
        )


_ACTIONS: Final = frozenset(
    {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
    }
)


async def serve_gemini(state: GatewayState, scope: Scope, receive: Receive, send: Send) -> None:
    """Handle everything under ``/v1beta``."""
    path = _path_of(scope)
    method = str(scope.get("method", "GET"))
    name = path.removeprefix("/models/") if path.startswith("/models/") else None
    if name and ":" in name:
        model, _, action = name.rpartition(":")
        if action not in _ACTIONS or not model:
            msg = f"Method `{action}` is not supported by this gateway for models/{model}."
            await send_error(
                send, error_body, GatewayError(404, "unknown_url", msg), new_request_id()
            )
        elif method != "POST":
            error = GatewayError(405, "method_not_allowed", f"`{action}` accepts POST only.")
            await send_error(send, error_body, error, new_request_id())
        elif action == "countTokens":
            await _serve_count_tokens(state, scope, receive, send, model)
        elif action in ("embedContent", "batchEmbedContents"):
            await _serve_embeddings(state, scope, receive, send, model, action)
        else:
            await _serve_generate(state, scope, receive, send, model, action)
        return
    if path == "/openai/chat/completions" and method == "POST":
        # Google's OpenAI-compatible endpoint, which some clients are configured with.
        await serve_chat_completions(state, scope, receive, send)
        return
    request_id = new_request_id()
    if path not in ("/models",) and not name:
        msg = f"Unknown request URL: /v1beta{path}. Check the path."
        await send_error(send, error_body, GatewayError(404, "unknown_url", msg), request_id)
        return
    if method not in ("GET", "HEAD"):
        error = GatewayError(405, "method_not_allowed", "The model list accepts GET only.")
        await send_error(send, error_body, error, request_id)
        return
    try:
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        body = _models_body(state, key, tenant, name or None)
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    await _send_json(send, body, request_id)
