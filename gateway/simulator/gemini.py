"""Gemini surface: `generateContent`, `streamGenerateContent`, `countTokens`, embeddings, models.

`streamGenerateContent?alt=sse` sends `data: <GenerateContentResponse>` events, each ended by
CRLF CRLF, and no `[DONE]`; without `alt=sse` the body is one JSON array whose elements are
written one by one. Each event holds the next word (or the function call, or a thought word)
of every candidate, with `usageMetadata` as running totals; the last event has an empty text
part, the `finishReason` of every candidate and the final totals. `thoughtsTokenCount` is
reported when `thinkingConfig` turns thinking on (`includeThoughts`, a non-zero
`thinkingBudget` or a `thinkingLevel`); thought parts (`"thought": true`) are sent only with
`includeThoughts`. `candidatesTokenCount` excludes thoughts, and `totalTokenCount` is prompt +
candidates + thoughts. A mid-stream failure is `data: {"error": {"code", "message", "status"}}`
(an array element without `alt=sse`). With the fault `block=prompt` the answer is
`{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": ...}` with no
candidates; with `block=output` it is one candidate with `finishReason` `SAFETY` and a blocked
safety rating, and no content (case BC19); both are HTTP 200 and, streamed, a single event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.simulator.composer import (
    DEFAULT_DIMENSIONS,
    Answer,
    ToolCall,
    embedding_vector,
    json_text,
)
from gateway.simulator.errors import Protocol, ProviderError, default_message, gemini_error
from gateway.simulator.openai import stream_error_status
from gateway.simulator.wire import Frame, FrameKind, StreamResponse, json_response, sse

if TYPE_CHECKING:
    from gateway.simulator.composer import Composer
    from gateway.simulator.wire import Call, Response

MODELS: Final = (
    ("gemini-2.5-flash", "Gemini 2.5 Flash"),
    ("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ("gemini-2.0-flash", "Gemini 2.0 Flash"),
    ("gemini-embedding-001", "Gemini Embedding 001"),
)
"""Models listed by `GET /v1beta/models` (any model name is served)."""

MAX_CANDIDATES: Final = 8
"""Largest `candidateCount`."""

ARRAY_TYPE: Final = b"application/json; charset=UTF-8"
SSE_TYPE: Final = b"text/event-stream"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def _get(mapping: Any, camel: str) -> Any:
    """Return `mapping[camel]`, or its snake_case twin (the REST API accepts both)."""
    if not isinstance(mapping, dict):
        return None
    if camel in mapping:
        return mapping[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping.get(snake)


class _Prompt:
    """Counted texts of a Gemini request and what its last turn holds."""

    __slots__ = ("has_tool_result", "images", "last_tool_result", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.images = 0
        self.last_tool_result: str | None = None
        self.has_tool_result = False

    def add_parts(self, content: Any) -> None:
        parts = _get(content, "parts")
        if not isinstance(parts, list):
            return
        results: list[str] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                if not part.get("thought"):
                    self.texts.append(text)
            elif _get(part, "inlineData") is not None or _get(part, "fileData") is not None:
                self.images += 1
            elif (call := _get(part, "functionCall")) is not None:
                self.texts.append(json_text(_get(call, "args") or {}))
            elif (response := _get(part, "functionResponse")) is not None:
                result = json_text(_get(response, "response") or {})
                self.texts.append(result)
                results.append(result)
        self.last_tool_result = "\n".join(results) if results else None
        self.has_tool_result = self.has_tool_result or bool(results)


def _prompt(body: dict[str, Any]) -> _Prompt:
    prompt = _Prompt()
    prompt.add_parts(_get(body, "systemInstruction"))
    prompt.last_tool_result = None
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        msg = "* GenerateContentRequest.contents: contents is not specified"
        raise ProviderError(400, msg)
    for content in contents:
        prompt.add_parts(content)
    return prompt


def _tool(body: dict[str, Any]) -> tuple[str, Any] | None:
    config = _get(_get(body, "toolConfig"), "functionCallingConfig")
    if str(_get(config, "mode") or "").upper() == "NONE":
        return None
    allowed = _get(config, "allowedFunctionNames")
    declarations = [
        declaration
        for tool in body.get("tools") or ()
        for declaration in _get(tool, "functionDeclarations") or ()
        if isinstance(declaration, dict) and isinstance(declaration.get("name"), str)
    ]
    if isinstance(allowed, list):
        declarations = [d for d in declarations if d["name"] in allowed]
    if not declarations:
        return None
    first = declarations[0]
    schema = _get(first, "parametersJsonSchema") or _get(first, "parameters")
    return first["name"], schema


def _thinking(config: Any) -> tuple[bool, bool]:
    """Return whether thinking is on and whether thoughts are included."""
    thinking = _get(config, "thinkingConfig")
    if not isinstance(thinking, dict):
        return False, False
    include = _get(thinking, "includeThoughts") is True
    budget = _get(thinking, "thinkingBudget")
    on = (
        include
        or (isinstance(budget, int) and budget != 0)
        or bool(_get(thinking, "thinkingLevel"))
    )
    return on, include


def _usage(prompt: int, candidates: int, thoughts: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + (thoughts or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    return usage


class _Candidate:
    """What one candidate says, as stream parts with running token counts."""

    __slots__ = ("finish", "parts", "steps", "thinking")

    def __init__(
        self, composer: Composer, outcome: Answer | ToolCall, thought: Answer | None, include: bool
    ) -> None:
        # Each step: (part or None, candidate tokens so far, thought tokens so far).
        self.steps: list[tuple[dict[str, Any], int, int]] = []
        self.parts: list[dict[str, Any]] = []
        thought_tokens = 0
        self.thinking = thought is not None
        if thought is not None:
            thought_tokens = thought.tokens
            if include:
                self.parts.append({"text": thought.text, "thought": True})
                for size in range(1, len(thought.pieces) + 1):
                    so_far = composer.count("".join(thought.pieces[:size]))
                    self.steps.append(
                        ({"text": thought.pieces[size - 1], "thought": True}, 0, so_far)
                    )
        if isinstance(outcome, ToolCall):
            part = {"functionCall": {"name": outcome.name, "args": _decode(outcome.arguments)}}
            self.parts.append(part)
            self.steps.append((part, outcome.tokens, thought_tokens))
            self.finish = "STOP"
        else:
            self.parts.append({"text": outcome.text})
            for size in range(1, len(outcome.pieces) + 1):
                so_far = composer.count("".join(outcome.pieces[:size]))
                self.steps.append(({"text": outcome.pieces[size - 1]}, so_far, thought_tokens))
            self.finish = "MAX_TOKENS" if outcome.truncated else "STOP"


def _blocked(call: Call, prompt_tokens: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Return the answer of a `block=prompt|output` fault (case BC19)."""
    blocked: dict[str, Any]
    if call.fault.block == "prompt":
        blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    else:
        rating = {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
        blocked = {
            "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [rating]}]
        }
    if not call.fault.no_usage:
        blocked["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
        }
    blocked.update(meta)
    return blocked


def _candidates(call: Call, body: dict[str, Any], model: str, prompt: _Prompt) -> list[_Candidate]:
    composer, fault = call.composer, call.fault
    config = _get(body, "generationConfig")
    limit = _get(config, "maxOutputTokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        msg = "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
        raise ProviderError(400, msg)
    count = _get(config, "candidateCount") or 1
    if not isinstance(count, int) or not 1 <= count <= MAX_CANDIDATES:
        msg = "* GenerateContentRequest.generation_config.candidate_count: must be 1 to 8"
        raise ProviderError(400, msg)
    thinking_on, include = _thinking(config)
    thought = composer.thinking() if thinking_on else None
    tool = None if prompt.has_tool_result else _tool(body)

    candidates = []
    for index in range(count):
        outcome: Answer | ToolCall
        if prompt.last_tool_result is not None:
            outcome = composer.tool_result_answer(prompt.last_tool_result, limit)
        elif tool is not None:
            outcome = composer.tool_call(tool[0], tool[1], "")
        else:
            outcome = composer.answer(
                model, index=index, words=fault.words, text=fault.text, limit=limit
            )
        candidates.append(_Candidate(composer, outcome, thought, include))
    return candidates


def generate_content(call: Call) -> Response:
    """Answer `:generateContent` and `:streamGenerateContent`."""
    request = call.request
    body = request.json_object()
    model = call.model.removeprefix("models/")
    prompt = _prompt(body)
    prompt_tokens = call.composer.prompt_tokens(prompt.texts, prompt.images)
    streaming = request.path.endswith(":streamGenerateContent")
    sse_mode = request.query("alt") == "sse"
    meta = {"modelVersion": model, "responseId": call.composer.new_id("")}
    no_usage = call.fault.no_usage

    if call.fault.block is not None:
        blocked = _blocked(call, prompt_tokens, meta)
        if not streaming:
            return json_response(blocked)
        return _stream([(blocked, FrameKind.TAIL)], sse_mode, fault_status(call))

    candidates = _candidates(call, body, model, prompt)
    thinking = candidates[0].thinking
    final_usage = _usage(
        prompt_tokens,
        sum(c.steps[-1][1] if c.steps else 0 for c in candidates),
        sum(c.steps[-1][2] if c.steps else 0 for c in candidates) if thinking else None,
    )
    if not streaming:
        result: dict[str, Any] = {
            "candidates": [
                {
                    "content": {"parts": c.parts, "role": "model"},
                    "finishReason": c.finish,
                    "index": i,
                }
                for i, c in enumerate(candidates)
            ]
        }
        if not no_usage:
            result["usageMetadata"] = final_usage
        result.update(meta)
        return json_response(result)

    events: list[tuple[dict[str, Any], FrameKind]] = []
    for step in range(max(len(c.steps) for c in candidates)):
        entries = []
        emitted = thoughts = 0
        for index, candidate in enumerate(candidates):
            if step < len(candidate.steps):
                part = candidate.steps[step][0]
                entries.append({"content": {"parts": [part], "role": "model"}, "index": index})
            if candidate.steps:
                _part, emitted_here, thoughts_here = candidate.steps[
                    min(step, len(candidate.steps) - 1)
                ]
                emitted += emitted_here
                thoughts += thoughts_here
        event: dict[str, Any] = {"candidates": entries}
        if not no_usage:
            event["usageMetadata"] = _usage(prompt_tokens, emitted, thoughts if thinking else None)
        events.append(({**event, **meta}, FrameKind.CONTENT))
    final: dict[str, Any] = {
        "candidates": [
            {
                "content": {"parts": [{"text": ""}], "role": "model"},
                "finishReason": c.finish,
                "index": i,
            }
            for i, c in enumerate(candidates)
        ]
    }
    if not no_usage:
        final["usageMetadata"] = final_usage
    events.append(({**final, **meta}, FrameKind.TAIL))
    return _stream(events, sse_mode, fault_status(call))


def fault_status(call: Call) -> int:
    """Return the status whose error kind a mid-stream failure reports."""
    return stream_error_status(call.fault, Protocol.GEMINI)


def _stream(
    events: list[tuple[dict[str, Any], FrameKind]], sse_mode: bool, error_status: int
) -> StreamResponse:
    error = {"error": gemini_error(error_status, default_message(error_status))}
    if sse_mode:
        frames = [Frame(sse(event, crlf=True), kind) for event, kind in events]
        error_event = sse(error, crlf=True)
        return StreamResponse(frames, lambda _index: error_event, SSE_TYPE)

    frames = []
    for index, (event, kind) in enumerate(events):
        data = (b"[" if index == 0 else b",\r\n") + _encode(event)
        if index == len(events) - 1:
            data += b"]"
        frames.append(Frame(data, kind))
    encoded = _encode(error)

    def error_element(index: int) -> bytes:
        return (b"[" if index == 0 else b",\r\n") + encoded + b"]"

    return StreamResponse(frames, error_element, ARRAY_TYPE)


def count_tokens(call: Call) -> Response:
    """Answer `:countTokens` (`contents`, or a whole `generateContentRequest`)."""
    body = call.request.json_object()
    inner = _get(body, "generateContentRequest")
    prompt = _prompt(inner if isinstance(inner, dict) else body)
    total = call.composer.prompt_tokens(prompt.texts, prompt.images)
    return json_response(
        {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    )


def _embedding(composer: Composer, request: Any) -> tuple[dict[str, Any], int]:
    prompt = _Prompt()
    prompt.add_parts(_get(request, "content"))
    if not prompt.texts:
        msg = "* EmbedContentRequest.content: content is not specified"
        raise ProviderError(400, msg)
    dimensions = _get(request, "outputDimensionality") or DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or dimensions < 1:
        msg = "* EmbedContentRequest.output_dimensionality: must be positive"
        raise ProviderError(400, msg)
    text = "\n".join(prompt.texts)
    return {"values": embedding_vector(text, dimensions)}, composer.count(text)


def embed_content(call: Call) -> Response:
    """Answer `:embedContent`."""
    embedding, _tokens = _embedding(call.composer, call.request.json_object())
    return json_response({"embedding": embedding})


def batch_embed_contents(call: Call) -> Response:
    """Answer `:batchEmbedContents`."""
    requests = call.request.json_object().get("requests")
    if not isinstance(requests, list) or not requests:
        msg = "* BatchEmbedContentsRequest.requests: requests is not specified"
        raise ProviderError(400, msg)
    embeddings = [_embedding(call.composer, request)[0] for request in requests]
    return json_response({"embeddings": embeddings})


def _model_object(name: str, display: str) -> dict[str, Any]:
    embedding = "embedding" in name
    methods = (
        ["embedContent", "batchEmbedContents", "countTokens"]
        if embedding
        else [
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ]
    )
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": display,
        "description": f"{display} (simulated).",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 2048 if embedding else 65536,
        "supportedGenerationMethods": methods,
    }


def list_models(_call: Call) -> Response:
    """Answer `GET /v1beta/models`."""
    return json_response({"models": [_model_object(*model) for model in MODELS]})


def get_model(call: Call) -> Response:
    """Answer `GET /v1beta/models/{model}`; every model name exists."""
    name = call.model.removeprefix("models/")
    display = dict(MODELS).get(name, name)
    return json_response(_model_object(name, display))
