"""Cloudflare Workers AI upstreams: the native ``ai/run`` API and its OpenAI-compatible twin.

A channel's base URL is the account root, ``https://api.cloudflare.com/client/v4/accounts/<id>``;
the key is an API token sent as ``Authorization: Bearer``. By default a request goes to the
native ``{base}/ai/run/{model}``: the answer is the Cloudflare envelope
``{"result": {"response", "tool_calls", "usage"}, "success", "errors", "messages"}``, and a
stream is ``data: {"response": "<text>"}`` events, a late ``{"response": "", "usage": {...}}``
event and ``data: [DONE]``. The channel setting ``{"api": "openai"}`` selects the
OpenAI-compatible ``{base}/ai/v1/chat/completions`` instead, encoded and decoded with the
OpenAI codec's functions.

Both forms are converted through the canonical representation, never passed through: the
codec's ``protocol`` is ``workers-ai``, which no client speaks. The compatible endpoint differs
from OpenAI's in what it accepts (``max_tokens`` rather than ``max_completion_tokens``, for
one), so re-encoding sends only fields the gateway knows it takes. Decoders tell the two forms
apart by shape (``choices`` or ``result``/``response``), since a codec serves every channel of
its kind.

Native requests take no ``n`` and no ``stop``; a request that needs them is refused for the
channel (another channel may still serve it), never served with the parameter dropped.
Errors use ``{"success": false, "errors": [{"code", "message"}]}``: 429 (including code 3036,
the daily free allocation, and 3040, out of capacity) and 5xx let another channel try; 400 is
the request's own fault (except 5007, no such model, which is the channel's).
"""

from __future__ import annotations

import secrets
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
    Part,
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
from gateway.media import inline_image
from gateway.providers.openai import (
    OpenAIStream,
    OpenAIUpstream,
    encode_chat_request,
    finish_reason,
    upstream_message,
    usage_from_openai,
)
from gateway.translate import UpstreamCall

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from gateway.canonical import FinishReason
    from gateway.snapshot import ChannelEntry
    from gateway.sse import SSEEvent

__all__ = (
    "WorkersAIStream",
    "WorkersAIUpstream",
    "decode_run_result",
    "encode_run_request",
    "error_codes",
    "is_openai_api",
    "status_error",
)

_QUOTE_LIMIT: Final = 500
_RATE_LIMIT_CODES: Final = frozenset({3036, 3040})
"""Cloudflare codes for "daily free allocation used up" and "out of capacity"."""

_NO_SUCH_MODEL: Final = 5007
_FINAL_STATUSES: Final = frozenset({400, 413, 422})


def is_openai_api(channel: ChannelEntry) -> bool:
    """Return True when the channel asks for the OpenAI-compatible endpoint."""
    return channel.settings.get("api") == "openai"


def error_codes(body: bytes) -> set[int]:
    """Return the Cloudflare error codes in an error body (empty when it has none)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return set()
    errors = decoded.get("errors") if isinstance(decoded, dict) else None
    codes: set[int] = set()
    for error in errors if isinstance(errors, list) else ():
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, int):
            codes.add(code)
    return codes


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamStatusError:
    """Map a Workers AI error response to the error the client sees if no channel succeeds."""
    message = upstream_message(body)
    codes = error_codes(body)
    suffix = f" (Cloudflare error {', '.join(str(c) for c in sorted(codes))})" if codes else ""
    if status == 429 or codes & _RATE_LIMIT_CODES:
        return UpstreamStatusError(
            429,
            "rate_limit_exceeded",
            f"upstream rate limit: {message}{suffix}",
            retryable=True,
            retry_after=headers.get("retry-after"),
            type="requests",
        )
    if status in _FINAL_STATUSES and _NO_SUCH_MODEL not in codes:
        return UpstreamStatusError(
            status,
            "upstream_rejected_request",
            f"{message}{suffix}",
            retryable=False,
            type="invalid_request_error",
        )
    return UpstreamStatusError(
        502, "upstream_error", f"upstream answered {status}: {message}{suffix}", retryable=True
    )


def _unsupported(what: str) -> UpstreamStatusError:
    msg = (
        f"This model's Workers AI channel cannot honour {what}; the native API has no such "
        'parameter (the channel setting {"api": "openai"} selects the OpenAI-compatible API).'
    )
    return UpstreamStatusError(
        400,
        "unsupported_parameter",
        msg,
        retryable=True,
        type="invalid_request_error",
        counts_against_channel=False,
    )


async def _content(parts: Sequence[Part], http: httpx.AsyncClient) -> str | list[dict[str, Any]]:
    kept = [p for p in parts if isinstance(p, Text | Image)]
    if all(isinstance(p, Text) for p in kept):
        return "".join(p.text for p in kept if isinstance(p, Text))
    encoded: list[dict[str, Any]] = []
    for part in kept:
        if isinstance(part, Text):
            encoded.append({"type": "text", "text": part.text})
        else:
            # Cloudflare's vision models take images inline, as data URLs.
            media_type, data = await inline_image(http, part)
            url = f"data:{media_type};base64,{data}"
            encoded.append({"type": "image_url", "image_url": {"url": url}})
    return encoded


async def _messages(request: ChatRequest, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in request.messages:
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        for result in results:
            entry: dict[str, Any] = {
                "role": "tool",
                "tool_call_id": result.call_id,
                "content": result.content,
            }
            if result.name:
                entry["name"] = result.name
            out.append(entry)
        rest = [p for p in message.parts if not isinstance(p, ToolResult)]
        if results and not rest:
            continue
        role = "user" if message.role == "tool" else message.role
        entry = {"role": role, "content": await _content(rest, http)}
        calls = [p for p in rest if isinstance(p, ToolCall)]
        if calls and role == "assistant":
            entry["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in calls
            ]
        out.append(entry)
    return out


async def encode_run_request(request: ChatRequest, http: httpx.AsyncClient) -> dict[str, Any]:
    """Encode a canonical request for the native ``ai/run/{model}`` API.

    Raises:
        UpstreamStatusError: 400 ``unsupported_parameter`` (retryable on another channel) for
            ``n`` > 1 or stop sequences, which the native API cannot take.
    """
    if request.n != 1:
        what = "`n` > 1"
        raise _unsupported(what)
    if request.stop:
        what = "stop sequences"
        raise _unsupported(what)
    body: dict[str, Any] = {"messages": await _messages(request, http)}
    if request.stream:
        body["stream"] = True
    optional = {
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    choice = request.tool_choice
    if request.tools and (choice is None or choice.mode != "none"):
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
        if choice is not None and choice.mode == "required":
            body["tool_choice"] = "required"
        elif choice is not None and choice.mode == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": request.response_schema,
        }
    elif request.json_mode:
        body["response_format"] = {"type": "json_object"}
    return body


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value or "{}"
    return msgspec.json.encode(value if value is not None else {}).decode()


def _call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _tool_calls(raw: Any) -> list[ToolCall]:
    """Read tool calls in Cloudflare's flat form or OpenAI's ``function`` form."""
    calls: list[ToolCall] = []
    for call in raw if isinstance(raw, list) else ():
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        source = function if isinstance(function, dict) else call
        name = source.get("name")
        if not isinstance(name, str) or not name:
            continue
        calls.append(
            ToolCall(
                id=str(call.get("id") or _call_id()),
                name=name,
                arguments=_arguments(source.get("arguments", source.get("parameters"))),
            )
        )
    return calls


def _response_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    # JSON mode answers may come back parsed.
    return msgspec.json.encode(value).decode()


def _decode_body(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None


def decode_run_result(body: bytes) -> ChatResponse:
    """Decode a non-streamed answer, native or OpenAI-compatible.

    Raises:
        UpstreamProtocolError: for a body that is not a Workers AI or OpenAI answer.
        UpstreamStatusError: for a 200 that reports ``success: false``.
    """
    decoded = _decode_body(body)
    if isinstance(decoded, dict) and isinstance(decoded.get("choices"), list):
        return OpenAIUpstream().decode_response(body)
    if not isinstance(decoded, dict):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a Workers AI result: {quoted!r}"
        raise UpstreamProtocolError(msg)
    if decoded.get("success") is False:
        raise UpstreamStatusError(
            502, "upstream_error", f"upstream error: {upstream_message(body)}", retryable=True
        )
    result = decoded.get("result")
    if not isinstance(result, dict):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a Workers AI result: {quoted!r}"
        raise UpstreamProtocolError(msg)
    if isinstance(result.get("choices"), list):
        # Some models (gpt-oss) answer ``ai/run`` with a chat completion inside ``result``.
        return OpenAIUpstream().decode_response(msgspec.json.encode(result))
    parts: list[Part] = []
    text = _response_text(result.get("response"))
    if text:
        parts.append(Text(text))
    parts.extend(_tool_calls(result.get("tool_calls")))
    reason: FinishReason = "tool_calls" if any(isinstance(p, ToolCall) for p in parts) else "stop"
    if reason == "stop" and result.get("finish_reason"):
        reason = finish_reason(result["finish_reason"])
    return ChatResponse(
        id=f"chatcmpl-{int(time.time() * 1000)}",
        model="",
        choices=[Choice(index=0, parts=parts, finish_reason=reason)],
        usage=usage_from_openai(result.get("usage")),
    )


class WorkersAIStream:
    """Decodes a Workers AI stream (native events, or OpenAI chunks from ``/ai/v1``)."""

    __slots__ = ("_calls", "_finished", "_indexes", "_openai", "complete")

    def __init__(self) -> None:
        self.complete = False
        self._finished = False
        self._calls = 0
        self._indexes: dict[int, int] = {}
        """Upstream call index (OpenAI form) → canonical call index."""
        self._openai = OpenAIStream()

    def feed(self, event: SSEEvent) -> list[Event]:
        """Return the canonical events of one upstream event."""
        if event.data == "[DONE]":
            self.complete = True
            if self._finished:
                return []
            self._finished = True
            return [Finish("tool_calls" if self._calls else "stop")]
        try:
            chunk = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "choices" in chunk or "error" in chunk:
            events = self._openai.feed(event)
            if any(isinstance(e, Finish) for e in events):
                self._finished = True
            return events
        if chunk.get("success") is False or ("errors" in chunk and "response" not in chunk):
            return [StreamError(upstream_message(event.data.encode()))]
        return self._native(chunk)

    def _native(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        text = chunk.get("response")
        if isinstance(text, str) and text:
            events.append(TextDelta(text))
        for call in chunk.get("tool_calls") or ():
            if isinstance(call, dict):
                events.extend(self._call_events(call))
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            events.append(UsageUpdate(usage))
        reason = chunk.get("finish_reason")
        if reason and not self._finished:
            self._finished = True
            mapped = finish_reason(reason)
            events.append(Finish("tool_calls" if self._calls and mapped == "stop" else mapped))
        return events

    def _call_events(self, call: dict[str, Any]) -> list[Event]:
        function = call.get("function")
        if isinstance(function, dict):
            # OpenAI form: fragments of one call share an index; the first has its name.
            upstream_index = int(call.get("index") or 0)
            arguments = function.get("arguments")
            events: list[Event] = []
            index = self._indexes.get(upstream_index)
            if index is None:
                index = self._indexes[upstream_index] = self._next_call()
                events.append(
                    ToolCallStart(
                        call_index=index,
                        id=str(call.get("id") or _call_id()),
                        name=str(function.get("name") or ""),
                    )
                )
            if arguments:
                events.append(ToolCallDelta(call_index=index, arguments=_arguments(arguments)))
            return events
        # Cloudflare's flat form: each entry is a whole call.
        name = call.get("name")
        if not isinstance(name, str) or not name:
            return []
        index = self._next_call()
        return [
            ToolCallStart(call_index=index, id=str(call.get("id") or _call_id()), name=name),
            ToolCallDelta(
                call_index=index,
                arguments=_arguments(call.get("arguments", call.get("parameters"))),
            ),
        ]

    def _next_call(self) -> int:
        self._calls += 1
        return self._calls - 1


class WorkersAIUpstream:
    """Upstream codec for Cloudflare Workers AI text generation."""

    protocol = "workers-ai"

    async def build(
        self,
        channel: ChannelEntry,
        request: ChatRequest,
        raw: dict[str, Any] | None,  # noqa: ARG002 - no client speaks this protocol
        *,
        client_headers: Mapping[str, str],  # noqa: ARG002 - Workers AI needs none
        http: httpx.AsyncClient,
    ) -> UpstreamCall:
        """Encode the call for the channel's API form."""
        model = channel.upstream_model(request.model)
        if is_openai_api(channel):
            body = encode_chat_request(request, model)
            limit = body.pop("max_completion_tokens", None)
            if limit is not None:
                body["max_tokens"] = limit
            url = f"{channel.base_url}/ai/v1/chat/completions"
        else:
            body = await encode_run_request(request, http)
            url = f"{channel.base_url}/ai/run/{model}"
        headers = [
            ("authorization", f"Bearer {channel.api_key}"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream" if request.stream else "application/json"),
        ]
        return UpstreamCall(url, headers, msgspec.json.encode(body))

    def decode_response(self, body: bytes) -> ChatResponse:
        """Decode a complete answer."""
        return decode_run_result(body)

    def open_stream(self) -> WorkersAIStream:
        """Return a stream decoder."""
        return WorkersAIStream()

    def status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """Map an error response."""
        return status_error(status, headers, body)
