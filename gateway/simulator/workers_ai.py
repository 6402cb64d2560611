"""Cloudflare Workers AI native surface: `POST /client/v4/accounts/{account}/ai/run/{model}`.

Text generation takes `messages` or `prompt` (and `max_tokens`, default `DEFAULT_MAX_TOKENS`,
as on Cloudflare). Not streamed, the answer is
`{"result": {"response", "usage"}, "success": true, "errors": [], "messages": []}`; streamed,
it is one `data: {"response": "<word>"}` event per word, then
`data: {"response": "", "usage": {...}}`, then `data: [DONE]`. Tools (Cloudflare's flat
`{"name", "parameters"}` form or OpenAI's) give `"response": null` and
`"tool_calls": [{"name", "arguments"}]`. A body with `text` and no `messages` or `prompt` is an
embedding request: `{"result": {"shape": [n, d], "data": [...], "pooling": "mean"}, ...}`.
Errors, HTTP or mid-stream, use the Cloudflare envelope `{"success": false, "errors": [...]}`.
The OpenAI-compatible paths under `.../ai/v1/` are served by `gateway.simulator.openai`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.simulator.composer import DEFAULT_DIMENSIONS, Answer, ToolCall, embedding_vector
from gateway.simulator.errors import Protocol, ProviderError, default_message, workers_ai_errors
from gateway.simulator.openai import chat_prompt, chosen_tool, output_limit, stream_error_status
from gateway.simulator.wire import Frame, FrameKind, StreamResponse, json_response, sse

if TYPE_CHECKING:
    from gateway.simulator.wire import Call, Response

DEFAULT_MAX_TOKENS: Final = 256
"""Output limit when the request names none."""

_decode = msgspec.json.decode
_DONE: Final = Frame(b"data: [DONE]\n\n", FrameKind.TAIL)


def _envelope(result: Any) -> dict[str, Any]:
    return {"result": result, "success": True, "errors": [], "messages": []}


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _embeddings(body: dict[str, Any]) -> Response:
    raw = body["text"]
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        msg = "Type mismatch of '/text', 'array' not in 'string'"
        raise ProviderError(400, msg)
    data = [embedding_vector(text, DEFAULT_DIMENSIONS) for text in texts]
    return json_response(
        _envelope({"shape": [len(data), DEFAULT_DIMENSIONS], "data": data, "pooling": "mean"})
    )


def run(call: Call) -> Response:
    """Answer `POST .../ai/run/{model}`."""
    body = call.request.json_object()
    messages = body.get("messages")
    prompt_text = body.get("prompt")
    if messages is None and prompt_text is None and "text" in body:
        return _embeddings(body)
    if isinstance(messages, list) and messages:
        texts, images = chat_prompt(messages)
    elif isinstance(prompt_text, str):
        texts, images, messages = [prompt_text], 0, []
    else:
        msg = "Type mismatch of '/messages', 'array' not in 'object'; 'prompt' is required"
        raise ProviderError(400, msg)
    composer, fault = call.composer, call.fault
    prompt = composer.prompt_tokens(texts, images)
    limit = output_limit(body, "max_tokens") or DEFAULT_MAX_TOKENS

    outcome: Answer | ToolCall
    last = messages[-1] if messages else None
    has_tool_result = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
    tool = None if has_tool_result else chosen_tool(body.get("tools"), None)
    if isinstance(last, dict) and last.get("role") == "tool":
        outcome = composer.tool_result_answer(str(last.get("content", "")), limit)
    elif tool is not None:
        outcome = composer.tool_call(tool[0], tool[1], "")
    else:
        outcome = composer.answer(call.model, words=fault.words, text=fault.text, limit=limit)
    usage = _usage(prompt, outcome.tokens)

    if body.get("stream") is not True:
        result: dict[str, Any]
        if isinstance(outcome, ToolCall):
            calls = [{"name": outcome.name, "arguments": _decode(outcome.arguments)}]
            result = {"response": None, "tool_calls": calls}
        else:
            result = {"response": outcome.text}
        if not fault.no_usage:
            result["usage"] = usage
        return json_response(_envelope(result))

    frames: list[Frame] = []
    if isinstance(outcome, ToolCall):
        calls = [{"name": outcome.name, "arguments": _decode(outcome.arguments)}]
        frames.append(Frame(sse({"response": "", "tool_calls": calls}), FrameKind.CONTENT))
    else:
        frames.extend(Frame(sse({"response": word}), FrameKind.CONTENT) for word in outcome.pieces)
    if not fault.no_usage:
        frames.append(Frame(sse({"response": "", "usage": usage}), FrameKind.TAIL))
    frames.append(_DONE)
    status = stream_error_status(fault, Protocol.WORKERS_AI)
    error = sse({"success": False, "errors": workers_ai_errors(status, default_message(status))})
    return StreamResponse(frames, lambda _index: error)
