"""Gemini upstreams (``generateContent``): request encoding, answer and stream decoding, errors.

A channel's base URL is the API root (``https://generativelanguage.googleapis.com`` for
Google); ``/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` are appended, and the key goes in ``x-goog-api-key``.
Streams are always asked for as SSE: Gemini has no ``[DONE]``, so a stream is complete once
its candidates carry a ``finishReason`` (the connection then closes).

Conversion rules, the ones Gemini is strict about:

- roles are ``user`` and ``model`` only and must alternate: adjacent turns of one role are
  merged, empty texts dropped, and no ``parts`` array is ever empty; every system text goes,
  in order, into one ``systemInstruction`` part (case BC20);
- tool results are ``functionResponse`` parts of one ``user`` turn, in the order of the
  calls they answer; call ids and ``thoughtSignature`` s are echoed back, and for Gemini 3
  models a model turn whose calls carry no signature gets Google's documented
  ``skip_thought_signature_validator`` sentinel, so a history rebuilt by a client that
  cannot keep signatures (any OpenAI client) is still accepted;
- tool schemas are sent as ``parametersJsonSchema`` and structured output as
  ``responseJsonSchema``: both take standard JSON Schema, so the client's schema is passed
  on as it is instead of being rewritten into Gemini's OpenAPI dialect;
- images are ``inlineData`` (the base64 exactly as the client sent it); remote images are
  fetched and inlined by :mod:`gateway.media`, Google storage and Files API URIs are
  ``fileData``.

Usage is read as running totals (the last ``usageMetadata`` wins): input is
``promptTokenCount + toolUsePromptTokenCount`` (cached content is part of the prompt count),
output is ``candidatesTokenCount + thoughtsTokenCount``.
"""

from __future__ import annotations

import logging
import secrets
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
from gateway.media import inline_image, normalize_media_type
from gateway.providers.openai import upstream_message
from gateway.translate import UpstreamCall
from shared.money import Usage

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import httpx

    from gateway.canonical import FinishReason
    from gateway.snapshot import ChannelEntry
    from gateway.sse import SSEEvent

logger = logging.getLogger(__name__)

__all__ = (
    "GeminiStream",
    "GeminiUpstream",
    "arguments_object",
    "decode_parts",
    "encode_generate_request",
    "encode_parts",
    "finish_reason",
    "get_field",
    "new_call_id",
    "standard_base64",
    "status_error",
    "usage_from_gemini",
)

SIGNATURE_SENTINEL: Final = "skip_thought_signature_validator"
"""Google's documented stand-in for a lost ``thoughtSignature`` (Gemini 3 function calls)."""

EFFORT_BUDGETS: Final = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
"""``thinkingBudget`` for a reasoning effort, for models older than Gemini 3."""

_QUOTE_LIMIT: Final = 500
_FINAL_STATUSES: Final = frozenset({400, 413, 422})
_FILTERED: Final = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
    }
)
_STOPPED: Final = frozenset(
    {
        "STOP",
        "FINISH_REASON_UNSPECIFIED",
        "OTHER",
        "LANGUAGE",
        "NO_IMAGE",
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)
"""Known reasons that end a turn without a better OpenAI equivalent than ``stop``."""

_URL_SAFE: Final = str.maketrans("-_", "+/")
_GOOGLE_FILE_HOSTS: Final = ("https://generativelanguage.googleapis.com/", "gs://")
_YOUTUBE: Final = ("https://www.youtube.com/", "https://youtube.com/", "https://youtu.be/")


def get_field(mapping: Any, camel: str) -> Any:
    """Return ``mapping[camel]``, or its snake_case twin (the REST API accepts both)."""
    if not isinstance(mapping, dict):
        return None
    if camel in mapping:
        return mapping[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping.get(snake)


def new_call_id() -> str:
    """Return a fresh tool call id, for calls Gemini sent without one."""
    return "call_" + secrets.token_hex(12)


def finish_reason(value: Any, *, has_calls: bool = False) -> FinishReason:
    """Map a Gemini ``finishReason`` to the canonical one.

    ``STOP`` is ``tool_calls`` when the turn called a function (Gemini has no such reason);
    safety-type reasons are ``content_filter``; an unknown value is ``stop`` and logged.
    """
    reason = str(value)
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    if reason not in _STOPPED:
        logger.warning("unknown Gemini finish reason mapped to stop", extra={"reason": reason})
    return "tool_calls" if has_calls else "stop"


def usage_from_gemini(metadata: Any) -> Usage | None:
    """Read a ``usageMetadata`` object into billing terms; None when it is not one."""
    if not isinstance(metadata, dict):
        return None

    def count(name: str) -> int:
        value = get_field(metadata, name)
        return value if isinstance(value, int) and value > 0 else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(
        input_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        cached_input_tokens=count("cachedContentTokenCount"),
        output_tokens=count("candidatesTokenCount") + thoughts,
        reasoning_tokens=thoughts,
    )


def arguments_object(arguments: str) -> dict[str, Any]:
    """Return a tool call's JSON argument text as the object Gemini's ``args`` holds."""
    if not arguments.strip():
        return {}
    try:
        decoded = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return {"arguments": arguments}
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value if value is not None else {}).decode()


def decode_parts(raw_parts: Any) -> list[Part]:
    """Decode Gemini ``parts`` into canonical parts.

    ``thought`` texts are :class:`Reasoning`; a ``thoughtSignature`` on a text part becomes
    a signature-only :class:`Reasoning` just before it; ``functionCall`` parts are
    :class:`ToolCall` s (an id is made up when Gemini sent none) and ``functionResponse``
    parts :class:`ToolResult` s with the response object as JSON text. Parts of kinds the
    canonical form has no place for are read as text where they have one
    (``executableCode``, ``codeExecutionResult``) and skipped otherwise.
    """
    parts: list[Part] = []
    if not isinstance(raw_parts, list):
        return parts
    for raw in raw_parts:
        if not isinstance(raw, dict):
            continue
        signature = get_field(raw, "thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        text = raw.get("text")
        call = get_field(raw, "functionCall")
        response = get_field(raw, "functionResponse")
        inline = get_field(raw, "inlineData")
        linked = get_field(raw, "fileData")
        if isinstance(text, str):
            if raw.get("thought") is True:
                parts.append(Reasoning(text=text, signature=signature))
                continue
            if signature is not None:
                parts.append(Reasoning(signature=signature))
            if text or signature is None:
                parts.append(Text(text))
        elif isinstance(call, dict):
            call_id = call.get("id")
            parts.append(
                ToolCall(
                    id=call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    name=str(call.get("name") or ""),
                    arguments=_json_text(call.get("args")),
                    signature=signature,
                )
            )
        elif isinstance(response, dict):
            response_id = response.get("id")
            parts.append(
                ToolResult(
                    call_id=response_id if isinstance(response_id, str) else "",
                    content=_json_text(response.get("response")),
                    name=str(response.get("name") or "") or None,
                )
            )
        elif isinstance(inline, dict):
            media_type = normalize_media_type(str(get_field(inline, "mimeType") or ""))
            parts.append(Image(media_type=media_type, data=standard_base64(inline.get("data"))))
        elif isinstance(linked, dict):
            media_type = str(get_field(linked, "mimeType") or "")
            parts.append(Image(media_type=media_type, url=str(get_field(linked, "fileUri") or "")))
        else:
            parts.extend(_code_text(raw))
    return parts


def standard_base64(data: Any) -> str | None:
    """Return base64 text in the standard alphabet, padded.

    Google's APIs (and google-genai, which sends bytes URL-safe encoded) accept both
    alphabets; other upstreams and data URLs take only the standard one.
    """
    if not isinstance(data, str):
        return None
    if "-" not in data and "_" not in data and len(data) % 4 == 0:
        return data
    standard = data.translate(_URL_SAFE)
    return standard + "=" * (-len(standard) % 4)


def _code_text(raw: dict[str, Any]) -> list[Part]:
    code = get_field(raw, "executableCode")
    if isinstance(code, dict) and isinstance(code.get("code"), str):
        language = str(code.get("language") or "").lower().replace("language_unspecified", "")
        return [Text(f"```{language}\n{code['code']}\n```")]
    result = get_field(raw, "codeExecutionResult")
    if isinstance(result, dict) and isinstance(result.get("output"), str):
        return [Text(f"```\n{result['output']}\n```")]
    return []


def _response_object(result: ToolResult) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(result.content)
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict) and not result.is_error:
        return decoded
    return {"error" if result.is_error else "result": result.content}


def _image_part(image: Image) -> dict[str, Any]:
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type, "data": image.data}}
    return {"fileData": {"mimeType": image.media_type, "fileUri": image.url or ""}}


def _part_entry(part: Part, names: Mapping[str, str]) -> dict[str, Any] | None:
    """Encode one part that stands on its own (None for text-less reasoning and empty text)."""
    if isinstance(part, Text):
        return {"text": part.text} if part.text else None
    if isinstance(part, Reasoning):
        if not part.text:
            return None
        entry: dict[str, Any] = {"text": part.text, "thought": True}
        if part.signature is not None:
            entry["thoughtSignature"] = part.signature
        return entry
    if isinstance(part, ToolCall):
        call: dict[str, Any] = {"name": part.name, "args": arguments_object(part.arguments)}
        if part.id:
            call = {"id": part.id, **call}
        entry = {"functionCall": call}
        if part.signature is not None:
            entry["thoughtSignature"] = part.signature
        return entry
    if isinstance(part, ToolResult):
        name = part.name or names.get(part.call_id) or "tool"
        response: dict[str, Any] = {"name": name, "response": _response_object(part)}
        if part.call_id:
            response = {"id": part.call_id, **response}
        return {"functionResponse": response}
    return _image_part(part)


def encode_parts(
    parts: Sequence[Part], names: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Encode canonical parts as Gemini parts (images must be inline or ``fileData`` URIs).

    A signature-only :class:`Reasoning` is put on the next text or call part that has none
    of its own; empty texts without a signature are dropped (Gemini refuses them); redacted
    reasoning has no Gemini form and is dropped. ``names`` maps call ids to function names,
    for tool results that do not carry their own.
    """
    encoded: list[dict[str, Any]] = []
    pending: str | None = None
    for part in parts:
        if isinstance(part, Reasoning) and not part.text:
            pending = part.signature or pending
            continue
        entry = _part_entry(part, names or {})
        if entry is None and pending is not None and isinstance(part, Text):
            entry = {"text": part.text}
        if entry is None:
            continue
        signs = "text" in entry or "functionCall" in entry
        if pending is not None and signs and "thoughtSignature" not in entry:
            entry["thoughtSignature"] = pending
            pending = None
        encoded.append(entry)
    if pending is not None:
        encoded.append({"text": "", "thoughtSignature": pending})
    return encoded


def _is_gemini_3(model: str) -> bool:
    name = model.removeprefix("models/")
    return name.startswith(("gemini-3.", "gemini-3-")) or name == "gemini-3"


def _call_order(messages: Iterable[Message]) -> tuple[dict[str, str], dict[str, int]]:
    names: dict[str, str] = {}
    order: dict[str, int] = {}
    for message in messages:
        position = 0
        for part in message.parts:
            if isinstance(part, ToolCall):
                names[part.id] = part.name
                order[part.id] = position
                position += 1
    return names, order


def _contents(messages: Sequence[Message], model: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Return ``contents`` (alternating, non-empty turns) and the system texts in order."""
    names, order = _call_order(messages)
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.extend(p.text for p in message.parts if isinstance(p, Text) and p.text)
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = encode_parts(message.parts, names)
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    for turn in turns:
        if turn["role"] == "user":
            turn["parts"] = _answers_in_call_order(turn["parts"], order)
        elif _is_gemini_3(model):
            _sign_first_call(turn["parts"])
    return turns, system


def _answers_in_call_order(parts: list[dict[str, Any]], order: Mapping[str, int]) -> list[Any]:
    answers = [p for p in parts if "functionResponse" in p]
    if not answers:
        return parts
    rest = [p for p in parts if "functionResponse" not in p]
    unknown = len(order)
    answers.sort(key=lambda p: order.get(str(p["functionResponse"].get("id", "")), unknown))
    return answers + rest


def _sign_first_call(parts: list[dict[str, Any]]) -> None:
    calls = [p for p in parts if "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = SIGNATURE_SENTINEL


async def _inline_images(request: ChatRequest, http: httpx.AsyncClient) -> list[Message]:
    """Return the messages with every remote image fetched, except Google-hosted files."""
    messages: list[Message] = []
    for message in request.messages:
        parts: list[Part] = []
        changed = False
        for part in message.parts:
            if (
                isinstance(part, Image)
                and part.data is None
                and not (part.url or "").startswith(_GOOGLE_FILE_HOSTS + _YOUTUBE)
            ):
                media_type, data = await inline_image(http, part)
                parts.append(Image(media_type=media_type, data=data))
                changed = True
            else:
                parts.append(part)
        messages.append(Message(message.role, parts) if changed else message)
    return messages


def _generation_config(request: ChatRequest, model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    optional = {
        "maxOutputTokens": request.max_output_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "topK": request.top_k,
        "seed": request.seed,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    if request.stop:
        config["stopSequences"] = request.stop
    if request.n != 1:
        config["candidateCount"] = request.n
    if request.response_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = request.response_schema
    elif request.json_mode:
        config["responseMimeType"] = "application/json"
    reasoning = request.reasoning
    if reasoning is not None:
        thinking: dict[str, Any] = {}
        if reasoning.budget_tokens is not None:
            thinking["thinkingBudget"] = reasoning.budget_tokens
        elif reasoning.effort is not None:
            if _is_gemini_3(model):
                thinking["thinkingLevel"] = reasoning.effort.upper()
            else:
                thinking["thinkingBudget"] = EFFORT_BUDGETS[reasoning.effort]
        if reasoning.include:
            thinking["includeThoughts"] = True
        if thinking:
            config["thinkingConfig"] = thinking
    return config


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    if choice.mode == "tool":
        calling: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.name or ""]}
    else:
        calling = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}
    return {"functionCallingConfig": calling}


async def encode_generate_request(
    request: ChatRequest, model: str, http: httpx.AsyncClient
) -> dict[str, Any]:
    """Encode a canonical request as a ``GenerateContentRequest`` body.

    Raises:
        GatewayError: 400 ``invalid_image_url`` for an image that cannot be fetched.
    """
    contents, system = _contents(await _inline_images(request, http), model)
    body: dict[str, Any] = {}
    if not contents:
        # Only system text (case BC20.2): it becomes the user turn, so that the model
        # still receives it and ``contents`` is not empty.
        contents = [{"role": "user", "parts": [{"text": "\n".join(system) or " "}]}]
    elif system:
        body["systemInstruction"] = {"parts": [{"text": "\n".join(system)}]}
    body["contents"] = contents
    if request.tools:
        declarations = []
        for tool in request.tools:
            declaration: dict[str, Any] = {"name": tool.name}
            if tool.description:
                declaration["description"] = tool.description
            if tool.parameters:
                declaration["parametersJsonSchema"] = tool.parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(request, model)
    if config:
        body["generationConfig"] = config
    return body


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamStatusError:
    """Map a Gemini error response to the error the client sees if no channel succeeds.

    429 (``RESOURCE_EXHAUSTED``) is a retryable ``rate_limit_exceeded``; 400, 413 and 422
    are the request's own fault and final; anything else (5xx, and the channel's own
    401/403/404) is a retryable 502.
    """
    message = upstream_message(body)
    state = _error_status(body)
    shown = f"{message} ({state})" if state else message
    retry_after = headers.get("retry-after")
    if status == 429:
        return UpstreamStatusError(
            429,
            "rate_limit_exceeded",
            f"upstream rate limit: {shown}",
            retryable=True,
            retry_after=retry_after,
            type="requests",
        )
    if status in _FINAL_STATUSES:
        return UpstreamStatusError(
            status,
            "upstream_rejected_request",
            shown,
            retryable=False,
            type="invalid_request_error",
        )
    return UpstreamStatusError(
        502, "upstream_error", f"upstream answered {status}: {shown}", retryable=True
    )


def _error_status(body: bytes) -> str | None:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(decoded, list) and decoded:
        decoded = decoded[0]
    error = decoded.get("error") if isinstance(decoded, dict) else None
    state = error.get("status") if isinstance(error, dict) else None
    return state if isinstance(state, str) else None


def _block_error(feedback: Any) -> UpstreamStatusError:
    reason = str(get_field(feedback, "blockReason") or "BLOCKED")
    detail = get_field(feedback, "blockReasonMessage")
    message = f"The prompt was blocked by the upstream's safety filter: {reason}."
    if isinstance(detail, str) and detail:
        message = f"{message} {detail}"
    return UpstreamStatusError(
        400,
        "content_filter",
        message,
        retryable=False,
        type="invalid_request_error",
        counts_against_channel=False,
    )


def _prompt_block(answer: dict[str, Any]) -> Any:
    """Return the ``promptFeedback`` of a blocked prompt (no candidates), or None."""
    feedback = get_field(answer, "promptFeedback")
    candidates = answer.get("candidates")
    if get_field(feedback, "blockReason") and not candidates:
        return feedback
    return None


def _index(candidate: dict[str, Any]) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and index >= 0 else 0


def _candidate_parts(candidate: dict[str, Any]) -> Any:
    content = candidate.get("content")
    return content.get("parts") if isinstance(content, dict) else None


def decode_answer(body: bytes) -> dict[str, Any]:
    """Decode a non-streamed ``GenerateContentResponse``, refusing anything that is not one.

    Raises:
        UpstreamProtocolError: quoting the body when it is not a JSON answer.
        UpstreamStatusError: for an ``error`` object in a 200, or a blocked prompt (400
            ``content_filter``, final).
    """
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None
    if isinstance(decoded, list) and len(decoded) == 1:
        decoded = decoded[0]
    if isinstance(decoded, dict) and "error" in decoded and "candidates" not in decoded:
        raise status_error(502, {}, body)
    if not isinstance(decoded, dict):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a GenerateContentResponse: {quoted!r}"
        raise UpstreamProtocolError(msg)
    feedback = _prompt_block(decoded)
    if feedback is not None:
        raise _block_error(feedback)
    if not isinstance(decoded.get("candidates"), list) or not decoded["candidates"]:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without candidates: {quoted!r}"
        raise UpstreamProtocolError(msg)
    return decoded


def _choice(candidate: dict[str, Any]) -> Choice:
    parts = decode_parts(_candidate_parts(candidate))
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    reason = get_field(candidate, "finishReason")
    finish = finish_reason(reason or "STOP", has_calls=has_calls)
    return Choice(index=_index(candidate), parts=parts, finish_reason=finish)


def _stream_error(chunk: dict[str, Any], data: str) -> StreamError:
    """Return a mid-stream ``{"error": ...}`` event; a quota error stays a retryable 429."""
    error = chunk.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = upstream_message(data.encode())
    if code == 429:
        return StreamError(f"upstream rate limit: {message}", "rate_limit_exceeded", status=429)
    return StreamError(message)


class GeminiStream:
    """Decodes a Gemini ``alt=sse`` stream into canonical events.

    State is kept per candidate (its tool calls, whether it finished), so that ``STOP``
    after a function call is ``tool_calls`` even when the call came in an earlier event
    (case BC16). The stream is complete once every candidate seen has a ``finishReason``
    and that event carried the final ``usageMetadata``; a ``finishReason`` without usage
    waits for the end of the stream, where a later usage-only event may still come.
    """

    __slots__ = ("_calls", "_emitted", "_finished", "_seen", "complete")

    def __init__(self) -> None:
        self.complete = False
        self._calls: dict[int, int] = {}
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._emitted = False

    def feed(self, event: SSEEvent) -> list[Event]:
        """Return the canonical events of one ``GenerateContentResponse``.

        Raises:
            UpstreamStatusError: 400 ``content_filter`` when the prompt is blocked before
                anything was answered.
        """
        try:
            chunk = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and "candidates" not in chunk:
            return [_stream_error(chunk, event.data)]
        events: list[Event] = []
        feedback = _prompt_block(chunk)
        if feedback is not None:
            if not self._emitted:
                raise _block_error(feedback)
            events.extend(self._block_after_start())
        candidates = chunk.get("candidates")
        for candidate in candidates if isinstance(candidates, list) else ():
            if isinstance(candidate, dict):
                events.extend(self._candidate_events(candidate))
        usage = usage_from_gemini(get_field(chunk, "usageMetadata"))
        if usage is not None:
            events.append(UsageUpdate(usage))
        if events:
            self._emitted = True
        if self._seen and self._finished >= self._seen and usage is not None:
            self.complete = True
        return events

    def _block_after_start(self) -> list[Event]:
        open_choices = (self._seen - self._finished) or {0}
        self._finished |= open_choices
        self._seen |= open_choices
        return [Finish("content_filter", index=i) for i in sorted(open_choices)]

    def _candidate_events(self, candidate: dict[str, Any]) -> list[Event]:
        index = _index(candidate)
        self._seen.add(index)
        events: list[Event] = []
        for part in decode_parts(_candidate_parts(candidate)):
            if isinstance(part, Text):
                if part.text:
                    events.append(TextDelta(part.text, index=index))
            elif isinstance(part, Reasoning):
                events.append(ReasoningDelta(part.text, signature=part.signature, index=index))
            elif isinstance(part, ToolCall):
                call_index = self._calls.get(index, 0)
                self._calls[index] = call_index + 1
                events.append(
                    ToolCallStart(
                        call_index=call_index,
                        id=part.id,
                        name=part.name,
                        index=index,
                        signature=part.signature,
                    )
                )
                events.append(
                    ToolCallDelta(call_index=call_index, arguments=part.arguments, index=index)
                )
        reason = get_field(candidate, "finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            has_calls = self._calls.get(index, 0) > 0
            events.append(Finish(finish_reason(reason, has_calls=has_calls), index=index))
        return events


class GeminiUpstream:
    """Upstream codec for the Gemini API (``generateContent``)."""

    protocol = "gemini"

    async def build(
        self,
        channel: ChannelEntry,
        request: ChatRequest,
        raw: dict[str, Any] | None,
        *,
        client_headers: Mapping[str, str],  # noqa: ARG002 - Gemini upstreams need none
        http: httpx.AsyncClient,
    ) -> UpstreamCall:
        """Encode the call; a same-protocol body is relayed as the client sent it.

        Raises:
            GatewayError: 400 for an image that cannot be fetched, before any upstream call.
        """
        model = channel.upstream_model(request.model).removeprefix("models/")
        body = raw if raw is not None else await encode_generate_request(request, model, http)
        if request.stream:
            url = f"{channel.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        else:
            url = f"{channel.base_url}/v1beta/models/{model}:generateContent"
        headers = [
            ("x-goog-api-key", channel.api_key),
            ("content-type", "application/json"),
            ("accept", "text/event-stream" if request.stream else "application/json"),
        ]
        return UpstreamCall(url, headers, msgspec.json.encode(body))

    def decode_response(self, body: bytes) -> ChatResponse:
        """Decode a ``GenerateContentResponse``; every candidate becomes a choice."""
        answer = decode_answer(body)
        response_id = get_field(answer, "responseId")
        return ChatResponse(
            id=response_id if isinstance(response_id, str) and response_id else new_call_id(),
            model=str(get_field(answer, "modelVersion") or ""),
            choices=[_choice(c) for c in answer["candidates"] if isinstance(c, dict)],
            usage=usage_from_gemini(get_field(answer, "usageMetadata")),
        )

    def open_stream(self) -> GeminiStream:
        """Return a stream decoder."""
        return GeminiStream()

    def status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """Map an error response."""
        return status_error(status, headers, body)
