"""The OpenAI-compatible surface: ``/v1/chat/completions`` and ``/v1/models``.

The decoder turns a chat completion body into a canonical request (checking the fields the
gateway reads; everything else passes through to same-protocol upstreams); the
:class:`OpenAIClient` codec writes answers, chunks and errors in OpenAI's shapes, with
the status codes the OpenAI SDKs map to the right exception classes.
"""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from gateway.asgi import header, headers_of, read_body, send_bytes, start_response
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
)
from gateway.errors import GatewayError, malformed_input
from gateway.media import parse_data_url
from gateway.pipeline import new_request_id, refuse_method, send_error, serve_generation
from shared.money import format_usd

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import Receive, Scope, Send

    from gateway.canonical import ChatResponse, Event
    from gateway.snapshot import Snapshot
    from gateway.sse import SSEEvent
    from gateway.state import GatewayState
    from shared.money import Usage

__all__ = (
    "OpenAIClient",
    "decode_chat_request",
    "error_body",
    "models_body",
    "serve_chat_completions",
    "serve_models",
)

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]


class StreamOptions(msgspec.Struct):
    """``stream_options`` as far as the gateway reads it."""

    include_usage: bool | None = None


class ChatMessage(msgspec.Struct):
    """A chat message as far as the gateway checks it; other fields pass through."""

    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None


class ChatCompletionRequest(msgspec.Struct):
    """The fields of a chat completion request the gateway checks; the rest pass through."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None


def error_body(error: GatewayError) -> bytes:
    """Render ``error`` as an OpenAI error object."""
    return msgspec.json.encode(
        {
            "error": {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def _invalid(exc: msgspec.ValidationError) -> GatewayError:
    text = str(exc)
    param = text.rpartition("at `$.")[2].rstrip("`") if "at `$." in text else None
    return GatewayError(400, "invalid_value", f"Invalid request: {text}", param=param)


def decode_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object.

    Raises:
        GatewayError: 400 ``invalid_json`` or ``invalid_request_body``.
    """
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        msg = f"We could not parse the JSON body of your request: {exc}"
        raise GatewayError(400, "invalid_json", msg) from None
    if not isinstance(payload, dict):
        msg = "The request body must be a JSON object."
        raise GatewayError(400, "invalid_request_body", msg)
    return payload


def _user_parts(content: str | list[dict[str, Any]] | None, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for position, part in enumerate(content):
        kind = part.get("type")
        if kind in ("text", "input_text") and isinstance(part.get("text"), str):
            parts.append(Text(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                msg = "An `image_url` part needs `image_url.url`."
                raise GatewayError(400, "invalid_value", msg, param=f"{where}[{position}]")
            if url.startswith("data:"):
                media_type, data = parse_data_url(url, param=f"{where}[{position}]")
                parts.append(Image(media_type=media_type, data=data))
            else:
                parts.append(Image(media_type="", url=url))
    return parts


def _message(raw: ChatMessage, position: int) -> Message:
    where = f"messages[{position}].content"
    if raw.role in ("system", "developer"):
        return Message("system", _user_parts(raw.content, where))
    if raw.role == "tool":
        text = raw.content if isinstance(raw.content, str) else _text_of(raw.content)
        return Message(
            "tool", [ToolResult(call_id=raw.tool_call_id or "", content=text, name=raw.name)]
        )
    if raw.role == "assistant":
        parts: list[Part] = []
        if raw.reasoning_content:
            parts.append(Reasoning(text=raw.reasoning_content))
        parts.extend(_user_parts(raw.content, where))
        for call in raw.tool_calls or ():
            function = call.get("function") or {}
            parts.append(
                ToolCall(
                    id=str(call.get("id") or ""),
                    name=str(function.get("name") or ""),
                    arguments=str(function.get("arguments") or "{}"),
                )
            )
        return Message("assistant", parts)
    return Message("user", _user_parts(raw.content, where))


def _text_of(content: list[dict[str, Any]] | None) -> str:
    return "".join(p.get("text", "") for p in content or () if isinstance(p.get("text"), str))


def _tool_choice(value: str | dict[str, Any] | None) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        mode = value if value in ("auto", "none", "required") else "auto"
        return ToolChoice(mode)  # type: ignore[arg-type]
    function = value.get("function") or {}
    return ToolChoice("tool", str(function.get("name") or ""))


def _tools(raw: list[dict[str, Any]] | None) -> list[Tool]:
    tools = []
    for entry in raw or ():
        function = entry.get("function")
        if entry.get("type", "function") == "function" and isinstance(function, dict):
            tools.append(
                Tool(
                    name=str(function.get("name") or ""),
                    description=function.get("description"),
                    parameters=function.get("parameters") or {},
                )
            )
    return tools


def _reasoning(effort: str | None) -> ReasoningSettings | None:
    if effort == "minimal":
        return ReasoningSettings(effort="minimal")
    if effort == "low":
        return ReasoningSettings(effort="low")
    if effort == "medium":
        return ReasoningSettings(effort="medium")
    if effort == "high":
        return ReasoningSettings(effort="high")
    return None


def decode_chat_request(payload: dict[str, Any]) -> tuple[ChatRequest, bool]:
    """Decode a checked chat completion body; returns the request and ``include_usage``.

    Raises:
        GatewayError: 400 with the JSON path of the first bad field.
    """
    try:
        request = msgspec.convert(payload, ChatCompletionRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    response_format = request.response_format or {}
    schema = (
        response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    )
    canonical = ChatRequest(
        model=request.model,
        messages=[_message(m, i) for i, m in enumerate(request.messages)],
        stream=bool(request.stream),
        tools=_tools(request.tools),
        tool_choice=_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
        max_output_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=[request.stop] if isinstance(request.stop, str) else list(request.stop or ()),
        n=request.n or 1,
        seed=request.seed,
        user=request.user,
        reasoning=_reasoning(request.reasoning_effort),
        response_schema=schema.get("schema") if isinstance(schema, dict) else None,
        json_mode=response_format.get("type") == "json_object",
    )
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return canonical, include_usage


def usage_object(usage: Usage, cost: int, original: Any = None) -> dict[str, Any]:
    """Return an OpenAI usage object (the upstream's own fields kept) with ``cost``."""
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    result.setdefault("prompt_tokens", usage.input_tokens)
    result.setdefault("completion_tokens", usage.output_tokens)
    result.setdefault("total_tokens", usage.input_tokens + usage.output_tokens)
    if usage.cached_input_tokens and "prompt_tokens_details" not in result:
        result["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    if usage.reasoning_tokens and "completion_tokens_details" not in result:
        result["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.estimated:
        result["estimated"] = True
    result["cost"] = format_usd(cost)
    return result


_CHUNK: Final = "chat.completion.chunk"


class OpenAIClient:
    """Writes answers for a client of the OpenAI chat completions API."""

    protocol = "openai"
    stream_content_type = "text/event-stream"

    def __init__(self, *, model: str, request_id: str, include_usage: bool) -> None:
        """Prepare the writer for one request."""
        self.model = model
        self.include_usage = include_usage
        self.id = f"chatcmpl-{request_id.removeprefix('req_')}"
        self.created = int(time.time())
        self.usage_sent = False
        self._role_sent: set[int] = set()

    def error_body(self, error: GatewayError) -> bytes:
        """Render an error."""
        return error_body(error)

    def encode_response(self, response: ChatResponse, usage: Usage, cost: int) -> bytes:
        """Encode a complete canonical answer as a chat completion."""
        choices = []
        for choice in response.choices:
            text = "".join(p.text for p in choice.parts if isinstance(p, Text))
            reasoning = "".join(p.text for p in choice.parts if isinstance(p, Reasoning))
            calls = [p for p in choice.parts if isinstance(p, ToolCall)]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text or (None if calls else ""),
            }
            if reasoning:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
            choices.append(
                {
                    "index": choice.index,
                    "message": message,
                    "finish_reason": _reason(choice.finish_reason),
                    "logprobs": None,
                }
            )
        return msgspec.json.encode(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                "usage": usage_object(usage, cost),
            }
        )

    def passthrough_response(self, body: bytes, usage: Usage, cost: int) -> bytes:
        """Relay an OpenAI completion with the client's model name and the cost."""
        completion = msgspec.json.decode(body)
        completion["model"] = self.model
        completion["usage"] = usage_object(usage, cost, completion.get("usage"))
        return msgspec.json.encode(completion)

    def stream_open(self) -> bytes:
        """OpenAI streams need no preamble."""
        return b""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "object": _CHUNK,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if index not in self._role_sent:
            self._role_sent.add(index)
            delta = {"role": "assistant", **delta}
        return self._chunk(
            [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]
        )

    def encode_events(self, events: list[Event]) -> bytes:
        """Encode canonical events as chunks."""
        out = bytearray()
        joined: ToolCallDelta | None = None
        for position, event in enumerate(events):
            if event is joined:
                continue
            if isinstance(event, TextDelta):
                out += self._delta(event.index, {"content": event.text})
            elif isinstance(event, ReasoningDelta):
                if event.text:
                    out += self._delta(event.index, {"reasoning_content": event.text})
            elif isinstance(event, ToolCallStart):
                # Arguments that arrive whole with the call (Gemini) go in the same chunk.
                joined = _arguments_of(event, events[position + 1 : position + 2])
                call = {
                    "index": event.call_index,
                    "id": event.id,
                    "type": "function",
                    "function": {
                        "name": event.name,
                        "arguments": joined.arguments if joined else "",
                    },
                }
                out += self._delta(event.index, {"tool_calls": [call]})
            elif isinstance(event, ToolCallDelta):
                call = {"index": event.call_index, "function": {"arguments": event.arguments}}
                out += self._delta(event.index, {"tool_calls": [call]})
            elif isinstance(event, Finish):
                out += self._delta(event.index, {}, _reason(event.reason))
            elif isinstance(event, StreamError):
                error = GatewayError(502, event.code, event.message, type="upstream_error")
                out += b"data: " + error_body(error) + b"\n\n"
        return bytes(out)

    def passthrough_event(
        self, event: SSEEvent, events: list[Event], cost_of: Callable[[Usage], int]
    ) -> bytes:
        """Relay an OpenAI chunk: client's model name, usage only when asked, cost added."""
        if event.data == "[DONE]" or not event.data:
            return b""
        chunk = event.parsed
        if chunk is None:
            try:
                chunk = msgspec.json.decode(event.data)
            except msgspec.DecodeError:
                return b""
            if not isinstance(chunk, dict):
                return b""
        if "error" in chunk and "choices" not in chunk:
            return b"data: " + event.data.encode() + b"\n\n"
        changed = False
        usage = next((e.usage for e in events if isinstance(e, UsageUpdate)), None)
        if chunk.get("choices") == []:
            if usage is None or not self.include_usage:
                return b""
            chunk["usage"] = usage_object(usage, cost_of(usage), chunk.get("usage"))
            self.usage_sent = True
            changed = True
        if "usage" in chunk and not self.include_usage:
            del chunk["usage"]
            changed = True
        if chunk.get("model") != self.model:
            chunk["model"] = self.model
            changed = True
        payload = msgspec.json.encode(chunk) if changed else event.data.encode()
        return b"data: " + payload + b"\n\n"

    def stream_close(
        self, usage: Usage, cost: int, *, complete: bool, error: GatewayError | None
    ) -> bytes:
        """End with the usage chunk (when asked), the cost comment and one ``[DONE]``."""
        if error is not None:
            return b"data: " + error_body(error) + b"\n\n"
        if not complete:
            failure = GatewayError(
                502,
                "upstream_truncated",
                "the upstream stream ended before it was complete",
                type="upstream_error",
            )
            return b"data: " + error_body(failure) + b"\n\n"
        out = bytearray()
        if self.include_usage and not self.usage_sent:
            out += self._chunk([], usage=usage_object(usage, cost))
        out += f": x-tollgate-cost: {format_usd(cost)}\n\n".encode()
        out += b"data: [DONE]\n\n"
        return bytes(out)


def _arguments_of(start: ToolCallStart, following: list[Event]) -> ToolCallDelta | None:
    """Return the event right after ``start`` when it holds that call's arguments."""
    for event in following:
        if (
            isinstance(event, ToolCallDelta)
            and event.index == start.index
            and event.call_index == start.call_index
        ):
            return event
    return None


def _reason(reason: str) -> str:
    return "stop" if reason == "error" else reason


def models_body(snapshot: Snapshot, key: Any, tenant: Any, model: str | None = None) -> bytes:
    """Return the OpenAI model list (or one model) that the key may use.

    Raises:
        GatewayError: 404 ``model_not_found`` for a model the key may not use.
    """
    models = snapshot.usable_models(key, tenant)
    created = int(snapshot.loaded_at)

    def entry(name: str) -> dict[str, Any]:
        channels = snapshot.channels_for(name, tenant.group)
        owner = channels[0].kind if channels else "tollgate"
        return {"id": name, "object": "model", "created": created, "owned_by": owner}

    if model is None:
        return msgspec.json.encode({"object": "list", "data": [entry(m) for m in models]})
    if model not in models:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        raise GatewayError(404, "model_not_found", msg, param="model")
    return msgspec.json.encode(entry(model))


def api_key_of(scope: Scope) -> str | None:
    """Return the key an OpenAI-style client sent (Bearer, or ``x-api-key``)."""
    return bearer_token(header(scope, b"authorization")) or header(scope, b"x-api-key")


async def serve_chat_completions(
    state: GatewayState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Handle ``POST /v1/chat/completions``."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    if await refuse_method(scope, send, error_body, request_id):
        return
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        payload = decode_json_object(body)
        with malformed_input():
            request, include_usage = decode_chat_request(payload)
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    client = OpenAIClient(model=request.model, request_id=request_id, include_usage=include_usage)
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
        endpoint="chat.completions",
        body_size=len(body),
        client_headers=headers_of(scope),
    )


async def serve_models(state: GatewayState, scope: Scope, send: Send) -> None:
    """Handle ``GET /v1/models`` and ``GET /v1/models/{model}``."""
    if header(scope, b"anthropic-version") is not None:
        from gateway.surfaces.anthropic import serve_models as serve_anthropic_models

        await serve_anthropic_models(state, scope, send)
        return
    request_id = new_request_id()
    name = scope["path"].removeprefix("/v1/models").strip("/") or None
    if await refuse_method(scope, send, error_body, request_id, ("GET", "HEAD")):
        return
    try:
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        body = models_body(state.snapshot, key, tenant, name)
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    await start_response(send, 200, [("x-request-id", request_id)], content_type="application/json")
    await send_bytes(send, body, more=False)
