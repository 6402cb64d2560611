"""Anthropic Messages surface: `/v1/messages`, `/v1/messages/count_tokens` and the model list.

Streams write an `event:` line and a `data:` line for every event (the Python SDK skips events
without `event:`): `message_start` (with the input usage and `output_tokens` 1), one `ping`,
then per block `content_block_start`, one delta per word or tool-argument fragment
(`thinking_delta` then `signature_delta` for thinking, `text_delta`, `input_json_delta`) and
`content_block_stop`, then `message_delta` with the stop reason and the cumulative usage (all
four fields), then `message_stop`. A mid-stream failure is `event: error` with
`{"type": "error", "error": {"type": "overloaded_error", ...}}` (or the kind of `status`).

Cache usage: when a system or message block carries `cache_control` (or the request has a
top-level `cache_control`), the prompt prefix up to and including the last marked block (for a
top-level mark, everything before the last message) counts as cached: its tokens, by the prompt
rule of `gateway.simulator.composer`, are reported as `cache_read_input_tokens` (or as
`cache_creation_input_tokens` with the fault `cache=write`), and `input_tokens` is the rest, so
the three fields add up to the prompt count. Thinking, enabled by `thinking.type` `enabled` or
`adaptive`, adds a thinking block of a fixed text with a deterministic signature; its tokens are
part of `output_tokens` and of the `max_tokens` budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.simulator.composer import Answer, ToolCall, json_text, signature_for
from gateway.simulator.errors import Protocol, ProviderError, anthropic_error, default_message
from gateway.simulator.openai import ARGUMENT_FRAGMENT, stream_error_status
from gateway.simulator.wire import Frame, FrameKind, StreamResponse, json_response, sse

if TYPE_CHECKING:
    from gateway.simulator.composer import Composer
    from gateway.simulator.wire import Call, Response

MODELS: Final = (
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
)
"""Models listed by `GET /v1/models` with an `anthropic-version` header."""

_decode = msgspec.json.decode


class _Prompt:
    """Counted texts of a Messages request, and where its cached prefix ends."""

    __slots__ = (
        "cached_images",
        "cached_texts",
        "has_tool_result",
        "images",
        "last_tool_result",
        "texts",
    )

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.images = 0
        self.cached_texts = 0
        self.cached_images = 0
        self.last_tool_result: str | None = None
        self.has_tool_result = False

    def mark(self) -> None:
        self.cached_texts = len(self.texts)
        self.cached_images = self.images

    def add_blocks(self, content: Any) -> None:
        if isinstance(content, str):
            self.texts.append(content)
            return
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                self.texts.append(str(block.get("text", "")))
            elif kind in ("image", "document"):
                self.images += 1
            elif kind == "tool_use":
                self.texts.append(json_text(block.get("input", {})))
            elif kind == "tool_result":
                result = _Prompt()
                result.add_blocks(block.get("content", ""))
                self.texts.extend(result.texts)
                self.images += result.images
                self.last_tool_result = "".join(result.texts)
                self.has_tool_result = True
            if "cache_control" in block:
                self.mark()


def _prompt(body: dict[str, Any]) -> _Prompt:
    prompt = _Prompt()
    prompt.add_blocks(body.get("system"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        msg = "messages: Field required"
        raise ProviderError(400, msg)
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            msg = f"messages.{index}: Input should be a valid dictionary"
            raise ProviderError(400, msg)
        if index == len(messages) - 1 and body.get("cache_control"):
            prompt.mark()
        prompt.last_tool_result = None
        prompt.add_blocks(message.get("content"))
    return prompt


def _usage(composer: Composer, prompt: _Prompt, cache: str | None) -> dict[str, Any]:
    total = composer.prompt_tokens(prompt.texts, prompt.images)
    cached = 0
    if prompt.cached_texts or prompt.cached_images:
        cached = composer.prompt_tokens(prompt.texts[: prompt.cached_texts], prompt.cached_images)
        cached = min(cached, total)
    written = cached if cache == "write" else 0
    read = 0 if cache == "write" else cached
    return {
        "input_tokens": total - cached,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 0,
        "service_tier": "standard",
    }


def _tool(body: dict[str, Any]) -> tuple[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    custom = [
        t
        for t in tools
        if isinstance(t, dict) and "input_schema" in t and isinstance(t.get("name"), str)
    ]
    if not custom:
        return None
    wanted = choice.get("name") if isinstance(choice, dict) else None
    tool = next((t for t in custom if t["name"] == wanted), custom[0])
    return tool["name"], tool["input_schema"]


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens")
    if value is None:
        msg = "max_tokens: Field required"
        raise ProviderError(400, msg)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"max_tokens: Input should be greater than or equal to 1, got {value!r}"
        raise ProviderError(400, msg)
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        msg = "model: Field required"
        raise ProviderError(400, msg)
    return model


def messages(call: Call) -> Response:
    """Answer `POST /v1/messages`."""
    body = call.request.json_object()
    model = _model(body)
    max_tokens = _max_tokens(body)
    prompt = _prompt(body)
    composer, fault = call.composer, call.fault

    thinking = None
    settings = body.get("thinking")
    if isinstance(settings, dict) and settings.get("type") in ("enabled", "adaptive"):
        thinking = composer.thinking()
    budget = max_tokens - (thinking.tokens if thinking else 0)
    outcome: Answer | ToolCall
    tool = None if prompt.has_tool_result else _tool(body)
    if prompt.last_tool_result is not None:
        outcome = composer.tool_result_answer(prompt.last_tool_result, max(budget, 0))
    elif tool is not None:
        outcome = composer.tool_call(tool[0], tool[1], composer.new_id("toolu_"))
    else:
        outcome = composer.answer(model, words=fault.words, text=fault.text, limit=max(budget, 0))
    if isinstance(outcome, ToolCall):
        stop_reason = "tool_use"
    else:
        stop_reason = "max_tokens" if outcome.truncated else "end_turn"

    usage = _usage(composer, prompt, fault.cache)
    usage["output_tokens"] = outcome.tokens + (thinking.tokens if thinking else 0)
    message_id = composer.new_id("msg_")
    if body.get("stream") is True:
        return _stream(call, message_id, model, thinking, outcome, stop_reason, usage)

    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append(
            {
                "type": "thinking",
                "thinking": thinking.text,
                "signature": signature_for(thinking.text),
            }
        )
    if isinstance(outcome, ToolCall):
        content.append(
            {
                "type": "tool_use",
                "id": outcome.id,
                "name": outcome.name,
                "input": _decode(outcome.arguments),
            }
        )
    else:
        content.append({"type": "text", "text": outcome.text})
    result: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    if not fault.no_usage:
        result["usage"] = usage
    return json_response(result)


def _stream(
    call: Call,
    message_id: str,
    model: str,
    thinking: Answer | None,
    outcome: Answer | ToolCall,
    stop_reason: str,
    usage: dict[str, Any],
) -> StreamResponse:
    frames: list[Frame] = []

    def add(event: str, data: dict[str, Any], kind: FrameKind = FrameKind.STRUCTURE) -> None:
        frames.append(Frame(sse({"type": event, **data}, event), kind))

    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if not call.fault.no_usage:
        message["usage"] = start_usage
    add("message_start", {"message": message})
    add("ping", {})

    index = 0
    if thinking is not None:
        add(
            "content_block_start",
            {
                "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        )
        for word in thinking.pieces:
            add(
                "content_block_delta",
                {"index": index, "delta": {"type": "thinking_delta", "thinking": word}},
                FrameKind.CONTENT,
            )
        signature = {"type": "signature_delta", "signature": signature_for(thinking.text)}
        add("content_block_delta", {"index": index, "delta": signature})
        add("content_block_stop", {"index": index})
        index += 1
    if isinstance(outcome, ToolCall):
        block = {"type": "tool_use", "id": outcome.id, "name": outcome.name, "input": {}}
        add("content_block_start", {"index": index, "content_block": block})
        arguments = outcome.arguments
        for start in range(0, len(arguments), ARGUMENT_FRAGMENT):
            fragment = {
                "type": "input_json_delta",
                "partial_json": arguments[start : start + ARGUMENT_FRAGMENT],
            }
            add("content_block_delta", {"index": index, "delta": fragment}, FrameKind.CONTENT)
    else:
        add("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for word in outcome.pieces:
            add(
                "content_block_delta",
                {"index": index, "delta": {"type": "text_delta", "text": word}},
                FrameKind.CONTENT,
            )
    add("content_block_stop", {"index": index})

    ending: dict[str, Any] = {"delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    if not call.fault.no_usage:
        ending["usage"] = {
            key: usage[key]
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        }
    add("message_delta", ending, FrameKind.TAIL)
    add("message_stop", {}, FrameKind.TAIL)

    status = stream_error_status(call.fault, Protocol.ANTHROPIC)
    error = sse(
        {"type": "error", "error": anthropic_error(status, default_message(status))}, "error"
    )
    return StreamResponse(frames, lambda _index: error)


def count_tokens(call: Call) -> Response:
    """Answer `POST /v1/messages/count_tokens`."""
    body = call.request.json_object()
    _model(body)
    prompt = _prompt(body)
    return json_response({"input_tokens": call.composer.prompt_tokens(prompt.texts, prompt.images)})


def _model_object(model_id: str, display: str, created: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": display, "created_at": created}


def list_models(_call: Call) -> Response:
    """Answer `GET /v1/models` for Anthropic clients."""
    data = [_model_object(*model) for model in MODELS]
    return json_response(
        {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


def get_model(call: Call) -> Response:
    """Answer `GET /v1/models/{model}` for Anthropic clients; every model name exists."""
    known = {model[0]: model for model in MODELS}
    model = known.get(call.model, (call.model, call.model, MODELS[0][2]))
    return json_response(_model_object(*model))
