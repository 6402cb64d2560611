"""OpenAI surface: chat completions, Responses, embeddings and the model list.

Streams follow the chunk schema of the openai SDK: a role chunk, one chunk per word (or per
tool-argument fragment), a finish chunk with an empty `delta`, then, with
`stream_options.include_usage`, a `"choices": []` usage chunk (every other chunk then has
`"usage": null`), then `data: [DONE]`. A mid-stream failure is `data: {"error": {...}}` with
no `[DONE]` after it. Responses API streams send `response.created`, `response.in_progress`,
the item and part events, one `response.output_text.delta` per word and `response.completed`
with the usage; a failure there is an `error` event.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.simulator.composer import (
    DEFAULT_DIMENSIONS,
    Answer,
    ToolCall,
    embedding_base64,
    embedding_vector,
    json_text,
)
from gateway.simulator.errors import (
    DEFAULT_STREAM_ERROR_STATUS,
    Protocol,
    ProviderError,
    default_message,
    openai_error,
)
from gateway.simulator.wire import (
    Frame,
    FrameKind,
    StreamResponse,
    json_response,
    sse,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.simulator.faults import FaultSpec
    from gateway.simulator.wire import Call, Response

MODELS: Final = (
    ("gpt-4o-mini", 1721172741),
    ("gpt-4o", 1715367049),
    ("gpt-4.1-mini", 1744318173),
    ("o3-mini", 1737146383),
    ("text-embedding-3-small", 1705948997),
)
"""Models listed by `GET /v1/models` (any model name is served)."""

OWNED_BY: Final = "openai"
FINGERPRINT: Final = "fp_simulator"
ARGUMENT_FRAGMENT: Final = 8
"""Characters of tool-call arguments per stream chunk."""

_encode = msgspec.json.encode
_DONE: Final = Frame(b"data: [DONE]\n\n", FrameKind.TAIL)

Outcome = Answer | ToolCall


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = (
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, got {value!r}."
        )
        raise ProviderError(400, msg, param=name)
    return value


def output_limit(body: dict[str, Any], *names: str) -> int | None:
    """Return the first output token limit set among `names` (BC24: the first one wins)."""
    for name in names:
        value = _positive(body, name)
        if value is not None:
            return value
    return None


def _model(body: dict[str, Any], call: Call) -> str:
    model = body.get("model", call.model)
    if not isinstance(model, str) or not model:
        msg = "you must provide a model parameter"
        raise ProviderError(400, msg, param="model")
    return model


def _content_texts(content: Any, texts: list[str]) -> int:
    """Append the texts of an OpenAI content value to `texts`; return its image count."""
    if isinstance(content, str):
        texts.append(content)
        return 0
    images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
            elif part.get("type") not in (None, "refusal"):
                images += 1
    return images


def chat_prompt(messages: Sequence[Any]) -> tuple[list[str], int]:
    """Return the counted texts and the image count of chat `messages`."""
    texts: list[str] = []
    images = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        images += _content_texts(message.get("content"), texts)
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                function = call.get("function") or {}
                texts.append(json_text(function.get("arguments", "")))
    return texts, images


def chosen_tool(tools: Any, choice: Any) -> tuple[str, Any] | None:
    """Return the name and parameters of the tool to call, or None for a text answer."""
    if not isinstance(tools, list) or choice == "none":
        return None
    functions = []
    for tool in tools:
        if isinstance(tool, dict):
            function = tool.get("function") if "function" in tool else tool
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                functions.append(function)
    if not functions:
        return None
    wanted = None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name") or choice.get("name")
    function = next((f for f in functions if f["name"] == wanted), functions[0])
    return function["name"], function.get("parameters")


def _outcomes(
    call: Call,
    body: dict[str, Any],
    model: str,
    count: int,
    limit: int | None,
    *,
    last_tool_result: str | None,
    has_tool_result: bool,
    id_prefix: str,
) -> list[Outcome]:
    composer, fault = call.composer, call.fault
    if last_tool_result is not None:
        answer = composer.tool_result_answer(last_tool_result, limit)
        return [answer] * count
    tool = None if has_tool_result else chosen_tool(body.get("tools"), body.get("tool_choice"))
    if tool is not None:
        name, schema = tool
        return [composer.tool_call(name, schema, composer.new_id(id_prefix)) for _ in range(count)]
    return [
        composer.answer(model, index=i, words=fault.words, text=fault.text, limit=limit)
        for i in range(count)
    ]


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(outcome: Outcome) -> str:
    if isinstance(outcome, ToolCall):
        return "tool_calls"
    return "length" if outcome.truncated else "stop"


def _fragments(text: str) -> list[str]:
    return [text[i : i + ARGUMENT_FRAGMENT] for i in range(0, len(text), ARGUMENT_FRAGMENT)]


def stream_error_status(fault: FaultSpec, protocol: Protocol) -> int:
    """Return the status whose error kind a mid-stream failure reports."""
    return fault.status if fault.status is not None else DEFAULT_STREAM_ERROR_STATUS[protocol]


def chat_error_event(fault: FaultSpec) -> bytes:
    """Return the OpenAI mid-stream error event for `fault`."""
    status = stream_error_status(fault, Protocol.OPENAI)
    return sse({"error": openai_error(status, default_message(status))})


def chat_completions(call: Call) -> Response:
    """Answer `POST /v1/chat/completions`."""
    body = call.request.json_object()
    model = _model(body, call)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        msg = "Missing required parameter: 'messages'."
        raise ProviderError(400, msg, param="messages")
    count = _positive(body, "n") or 1
    limit = output_limit(body, "max_completion_tokens", "max_tokens")

    texts, images = chat_prompt(messages)
    prompt = call.composer.prompt_tokens(texts, images)
    last = messages[-1]
    last_tool_result = None
    if isinstance(last, dict) and last.get("role") == "tool":
        last_texts: list[str] = []
        _content_texts(last.get("content"), last_texts)
        last_tool_result = "".join(last_texts)
    has_tool_result = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
    outcomes = _outcomes(
        call,
        body,
        model,
        count,
        limit,
        last_tool_result=last_tool_result,
        has_tool_result=has_tool_result,
        id_prefix="call_",
    )
    completion = sum(outcome.tokens for outcome in outcomes)
    completion_id = call.composer.new_id("chatcmpl-")
    created = int(time.time())

    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = (
            isinstance(options, dict)
            and options.get("include_usage") is True
            and not call.fault.no_usage
        )
        frames = _chat_frames(completion_id, created, model, outcomes, include_usage)
        if include_usage:
            usage = _chunk_head(completion_id, created, model) + b"[]," + b'"usage":'
            usage += _encode(_usage(prompt, completion)) + b"}\n\n"
            frames.append(Frame(usage, FrameKind.TAIL))
        frames.append(_DONE)
        error = chat_error_event(call.fault)
        return StreamResponse(frames, lambda _index: error)

    choices = []
    for index, outcome in enumerate(outcomes):
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(outcome, ToolCall):
            message["tool_calls"] = [
                {
                    "id": outcome.id,
                    "type": "function",
                    "function": {"name": outcome.name, "arguments": outcome.arguments},
                }
            ]
        else:
            message["content"] = outcome.text
        message["annotations"] = []
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(outcome),
            }
        )
    result: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if not call.fault.no_usage:
        result["usage"] = _usage(prompt, completion)
    result["service_tier"] = "default"
    result["system_fingerprint"] = FINGERPRINT
    return json_response(result)


def _chunk_head(completion_id: str, created: int, model: str) -> bytes:
    return (
        b'data: {"id":'
        + _encode(completion_id)
        + b',"object":"chat.completion.chunk","created":'
        + str(created).encode()
        + b',"model":'
        + _encode(model)
        + b',"service_tier":"default","system_fingerprint":"'
        + FINGERPRINT.encode()
        + b'","choices":'
    )


def _chat_frames(
    completion_id: str,
    created: int,
    model: str,
    outcomes: Sequence[Outcome],
    include_usage: bool,
) -> list[Frame]:
    head = _chunk_head(completion_id, created, model) + b"["
    tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
    frames: list[Frame] = []

    def add(index: int, delta: dict[str, Any], finish: str | None, kind: FrameKind) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        frames.append(Frame(head + _encode(choice) + tail, kind))

    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, ToolCall):
            start = {
                "index": 0,
                "id": outcome.id,
                "type": "function",
                "function": {"name": outcome.name, "arguments": ""},
            }
            delta = {"role": "assistant", "content": None, "tool_calls": [start], "refusal": None}
            add(index, delta, None, FrameKind.STRUCTURE)
            for fragment in _fragments(outcome.arguments):
                piece = {"index": 0, "function": {"arguments": fragment}}
                add(index, {"tool_calls": [piece]}, None, FrameKind.CONTENT)
        else:
            add(
                index,
                {"role": "assistant", "content": "", "refusal": None},
                None,
                FrameKind.STRUCTURE,
            )
            for word in outcome.pieces:
                add(index, {"content": word}, None, FrameKind.CONTENT)
        add(index, {}, _finish(outcome), FrameKind.TAIL)
    return frames


def list_models(_call: Call) -> Response:
    """Answer `GET /v1/models`."""
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": OWNED_BY}
        for name, created in MODELS
    ]
    return json_response({"object": "list", "data": data})


def get_model(call: Call) -> Response:
    """Answer `GET /v1/models/{model}`; every model name exists."""
    created = dict(MODELS).get(call.model, MODELS[0][1])
    return json_response(
        {"id": call.model, "object": "model", "created": created, "owned_by": OWNED_BY}
    )


def embeddings(call: Call) -> Response:
    """Answer `POST /v1/embeddings` (float or base64 vectors)."""
    body = call.request.json_object()
    model = _model(body, call)
    raw = body.get("input")
    inputs: list[Any]
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        msg = "'input' is a required property and must not be empty."
        raise ProviderError(400, msg, param="input")
    dimensions = min(_positive(body, "dimensions") or DEFAULT_DIMENSIONS, 16_384)
    as_base64 = body.get("encoding_format") == "base64"

    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            text = item
            tokens += call.composer.count(item)
        elif isinstance(item, list):
            text = json_text(item)
            tokens += len(item)
        else:
            msg = f"Invalid type for 'input[{index}]': expected a string or an array of tokens."
            raise ProviderError(400, msg, param=f"input[{index}]")
        vector = embedding_vector(text, dimensions)
        embedding: Any = embedding_base64(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    result: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not call.fault.no_usage:
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_response(result)


def _responses_prompt(body: dict[str, Any]) -> tuple[list[str], int, str | None, bool]:
    """Return texts, images, the last tool output and whether any tool output exists."""
    texts: list[str] = []
    images = 0
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    items = body.get("input")
    if isinstance(items, str):
        texts.append(items)
        return texts, images, None, False
    if not isinstance(items, list):
        msg = "Missing required parameter: 'input'."
        raise ProviderError(400, msg, param="input")
    last_output = None
    has_output = False
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        last_output = None
        if kind == "message":
            images += _content_texts(item.get("content"), texts)
        elif kind == "function_call":
            texts.append(json_text(item.get("arguments", "")))
        elif kind == "function_call_output":
            output = item.get("output", "")
            if isinstance(output, list):
                parts: list[str] = []
                images += _content_texts(output, parts)
                output = "".join(parts)
            last_output = json_text(output)
            texts.append(last_output)
            has_output = True
    return texts, images, last_output, has_output


def _responses_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _response_object(
    body: dict[str, Any],
    response_id: str,
    model: str,
    created: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _output_item(outcome: Outcome, item_id: str, *, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if isinstance(outcome, ToolCall):
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": outcome.arguments if done else "",
            "call_id": outcome.id,
            "name": outcome.name,
        }
    content = [_text_part(outcome.text)] if done else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def responses(call: Call) -> Response:
    """Answer `POST /v1/responses` (Responses API)."""
    body = call.request.json_object()
    model = _model(body, call)
    limit = output_limit(body, "max_output_tokens")
    texts, images, last_output, has_output = _responses_prompt(body)
    prompt = call.composer.prompt_tokens(texts, images)
    (outcome,) = _outcomes(
        call,
        body,
        model,
        1,
        limit,
        last_tool_result=last_output,
        has_tool_result=has_output,
        id_prefix="call_",
    )
    composer = call.composer
    response_id = composer.new_id("resp_")
    item_id = composer.new_id("fc_" if isinstance(outcome, ToolCall) else "msg_")
    created = int(time.time())
    status = "incomplete" if isinstance(outcome, Answer) and outcome.truncated else "completed"
    usage = None if call.fault.no_usage else _responses_usage(prompt, outcome.tokens)
    final_item = _output_item(outcome, item_id, done=True)
    final = _response_object(
        body, response_id, model, created, status=status, output=[final_item], usage=usage
    )
    if body.get("stream") is not True:
        return json_response(final)

    start = _response_object(
        body, response_id, model, created, status="in_progress", output=[], usage=None
    )
    events: list[tuple[str, dict[str, Any], FrameKind]] = [
        ("response.created", {"response": start}, FrameKind.STRUCTURE),
        ("response.in_progress", {"response": start}, FrameKind.STRUCTURE),
        (
            "response.output_item.added",
            {"output_index": 0, "item": _output_item(outcome, item_id, done=False)},
            FrameKind.STRUCTURE,
        ),
    ]
    at = {"item_id": item_id, "output_index": 0}
    if isinstance(outcome, ToolCall):
        events.extend(
            ("response.function_call_arguments.delta", {**at, "delta": fragment}, FrameKind.CONTENT)
            for fragment in _fragments(outcome.arguments)
        )
        events.append(
            (
                "response.function_call_arguments.done",
                {**at, "name": outcome.name, "arguments": outcome.arguments},
                FrameKind.TAIL,
            )
        )
    else:
        part_at = {**at, "content_index": 0}
        events.append(
            (
                "response.content_part.added",
                {**part_at, "part": _text_part("")},
                FrameKind.STRUCTURE,
            )
        )
        events.extend(
            (
                "response.output_text.delta",
                {**part_at, "delta": word, "logprobs": []},
                FrameKind.CONTENT,
            )
            for word in outcome.pieces
        )
        events.append(
            (
                "response.output_text.done",
                {**part_at, "text": outcome.text, "logprobs": []},
                FrameKind.TAIL,
            )
        )
        events.append(
            (
                "response.content_part.done",
                {**part_at, "part": _text_part(outcome.text)},
                FrameKind.TAIL,
            )
        )
    events.append(
        ("response.output_item.done", {"output_index": 0, "item": final_item}, FrameKind.TAIL)
    )
    completed = "response.incomplete" if status == "incomplete" else "response.completed"
    events.append((completed, {"response": final}, FrameKind.TAIL))

    frames = [
        Frame(sse({"type": name, **payload, "sequence_number": number}, name), kind)
        for number, (name, payload, kind) in enumerate(events)
    ]
    error_status = stream_error_status(call.fault, Protocol.OPENAI)
    error = openai_error(error_status, default_message(error_status))

    def error_event(index: int) -> bytes:
        payload = {
            "type": "error",
            "code": error["code"] or error["type"],
            "message": error["message"],
            "param": None,
            "sequence_number": index,
        }
        return sse(payload, "error")

    return StreamResponse(frames, error_event)
