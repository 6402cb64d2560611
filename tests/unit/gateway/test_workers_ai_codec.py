"""The Workers AI upstream codec: request encoding, answer and stream decoding, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest

from gateway.canonical import (
    ChatRequest,
    Finish,
    Image,
    Message,
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
from gateway.errors import UpstreamProtocolError, UpstreamStatusError
from gateway.providers import upstream_codecs
from gateway.providers.workers_ai import WorkersAIStream, WorkersAIUpstream, status_error
from gateway.snapshot import ChannelEntry
from gateway.sse import SSEDecoder
from shared.money import Usage

BASE = "http://127.0.0.1:9/client/v4/accounts/acct"


def channel(settings: dict[str, Any] | None = None, model_map: dict[str, str] | None = None):
    return ChannelEntry(
        id=1,
        name="cf",
        kind="workers-ai",
        base_url=BASE,
        api_key="cf-token",
        models=frozenset({"llama"}),
        model_map=model_map or {"llama": "@cf/meta/llama-3.1-8b-instruct"},
        priority=0,
        weight=1,
        groups=None,
        relay_url=None,
        relay_secret=None,
        settings=settings or {},
    )


def user(text: str) -> Message:
    return Message("user", [Text(text)])


async def build(request: ChatRequest, settings: dict[str, Any] | None = None):
    async with httpx.AsyncClient() as http:
        call = await WorkersAIUpstream().build(
            channel(settings), request, None, client_headers={}, http=http
        )
    return call, json.loads(call.body)


def events_of(raw: bytes) -> list[Any]:
    stream = WorkersAIStream()
    events: list[Any] = []
    for event in SSEDecoder().feed(raw):
        events.extend(stream.feed(event))
    return [stream.complete, *events]


def test_registry_serves_workers_ai_kind() -> None:
    assert isinstance(upstream_codecs()["workers-ai"], WorkersAIUpstream)
    assert WorkersAIUpstream.protocol == "workers-ai"


async def test_native_request_url_auth_and_body() -> None:
    request = ChatRequest(
        model="llama",
        messages=[Message("system", [Text("Be brief.")]), user("hi")],
        stream=True,
        max_output_tokens=64,
        temperature=0.2,
        top_k=5,
    )
    call, body = await build(request)

    assert call.url == f"{BASE}/ai/run/@cf/meta/llama-3.1-8b-instruct"
    assert ("authorization", "Bearer cf-token") in call.headers
    assert body == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "max_tokens": 64,
        "temperature": 0.2,
        "top_k": 5,
    }


async def test_native_request_tools_and_tool_history() -> None:
    request = ChatRequest(
        model="llama",
        messages=[
            user("weather in Paris?"),
            Message(
                "assistant",
                [ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')],
            ),
            Message("tool", [ToolResult(call_id="call_1", content="21C", name="get_weather")]),
        ],
        tools=[Tool(name="get_weather", description="Weather.", parameters={"type": "object"})],
        tool_choice=ToolChoice("tool", "get_weather"),
    )
    _, body = await build(request)

    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "21C",
        "name": "get_weather",
    }
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather.",
                "parameters": {"type": "object"},
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_native_request_drops_tools_when_choice_is_none() -> None:
    request = ChatRequest(
        model="llama",
        messages=[user("hi")],
        tools=[Tool(name="t")],
        tool_choice=ToolChoice("none"),
    )
    _, body = await build(request)
    assert "tools" not in body and "tool_choice" not in body


async def test_native_request_inlines_images_as_data_urls() -> None:
    request = ChatRequest(
        model="llama",
        messages=[Message("user", [Text("what?"), Image("image/jpeg", data="/9j/4A==")])],
    )
    _, body = await build(request)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}},
    ]


@pytest.mark.parametrize(
    ("change", "what"),
    [({"n": 2}, "`n` > 1"), ({"stop": ["END"]}, "stop sequences")],
)
async def test_native_request_refuses_parameters_it_cannot_take(
    change: dict[str, Any], what: str
) -> None:
    request = ChatRequest(model="llama", messages=[user("hi")], **change)
    with pytest.raises(UpstreamStatusError, match=what) as refused:
        await build(request)
    assert refused.value.status == 400
    assert refused.value.retryable  # another channel may serve it
    assert not refused.value.counts_against_channel


async def test_native_request_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = ChatRequest(model="llama", messages=[user("hi")], response_schema=schema)
    _, body = await build(request)
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}


async def test_openai_api_setting_uses_compatible_endpoint() -> None:
    request = ChatRequest(
        model="llama", messages=[user("hi")], stream=True, max_output_tokens=10, stop=["END"]
    )
    call, body = await build(request, {"api": "openai"})

    assert call.url == f"{BASE}/ai/v1/chat/completions"
    assert body["model"] == "@cf/meta/llama-3.1-8b-instruct"
    assert body["max_tokens"] == 10 and "max_completion_tokens" not in body
    assert body["stop"] == ["END"]
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_decode_native_answer_with_usage() -> None:
    body = msgspec.json.encode(
        {
            "result": {
                "response": "Hello there",
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
            },
            "success": True,
            "errors": [],
            "messages": [],
        }
    )
    answer = WorkersAIUpstream().decode_response(body)

    [choice] = answer.choices
    assert choice.parts == [Text("Hello there")]
    assert choice.finish_reason == "stop"
    assert answer.usage == Usage(input_tokens=12, output_tokens=3)


def test_decode_native_answer_without_usage_leaves_it_unknown() -> None:
    body = b'{"result":{"response":"Hi"},"success":true,"errors":[],"messages":[]}'
    assert WorkersAIUpstream().decode_response(body).usage is None


@pytest.mark.parametrize(
    "calls",
    [
        [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    ],
    ids=["flat", "openai-form"],
)
def test_decode_native_tool_calls(calls: list[dict[str, Any]]) -> None:
    body = msgspec.json.encode({"result": {"response": None, "tool_calls": calls}, "success": True})
    [choice] = WorkersAIUpstream().decode_response(body).choices

    [call] = choice.parts
    assert isinstance(call, ToolCall)
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    assert choice.finish_reason == "tool_calls"


def test_decode_openai_compatible_answer() -> None:
    body = msgspec.json.encode(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        }
    )
    answer = WorkersAIUpstream().decode_response(body)
    assert answer.choices[0].parts == [Text("Hi")]
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage == Usage(input_tokens=4, output_tokens=2)


def test_decode_refuses_non_json_and_failed_envelopes() -> None:
    with pytest.raises(UpstreamProtocolError, match="not JSON"):
        WorkersAIUpstream().decode_response(b"upstream overloaded")
    with pytest.raises(UpstreamProtocolError, match="without a Workers AI result"):
        WorkersAIUpstream().decode_response(b'{"success":true}')
    failed = b'{"result":null,"success":false,"errors":[{"code":3043,"message":"boom"}]}'
    with pytest.raises(UpstreamStatusError, match="boom") as error:
        WorkersAIUpstream().decode_response(failed)
    assert error.value.retryable


def test_stream_native_text_usage_and_done() -> None:
    raw = (
        b'data: {"response":"Hello"}\n\n'
        b'data: {"response":" world"}\n\n'
        b'data: {"response":"","usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}\n\n'
        b"data: [DONE]\n\n"
    )
    complete, *events = events_of(raw)

    assert complete
    assert events == [
        TextDelta("Hello"),
        TextDelta(" world"),
        UsageUpdate(Usage(input_tokens=9, output_tokens=2)),
        Finish("stop"),
    ]


def test_stream_without_done_is_incomplete() -> None:
    complete, *events = events_of(b'data: {"response":"Hel"}\n\n')
    assert not complete
    assert events == [TextDelta("Hel")]


def test_stream_flat_tool_call_ends_with_tool_calls() -> None:
    raw = (
        b'data: {"response":"","tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    complete, start, delta, finish = events_of(raw)

    assert complete
    assert (
        isinstance(start, ToolCallStart) and start.name == "get_weather" and start.call_index == 0
    )
    assert isinstance(delta, ToolCallDelta) and json.loads(delta.arguments) == {"city": "Paris"}
    assert finish == Finish("tool_calls")


def test_stream_openai_form_tool_call_fragments() -> None:
    raw = (
        b'data: {"response":"","tool_calls":[{"index":0,"id":"call_1","type":"function",'
        b'"function":{"name":"f","arguments":"{\\"a\\""}}]}\n\n'
        b'data: {"response":"","tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    _, start, first, second, finish = events_of(raw)

    assert start == ToolCallStart(call_index=0, id="call_1", name="f")
    assert first.arguments + second.arguments == '{"a":1}'
    assert finish == Finish("tool_calls")


def test_stream_error_event() -> None:
    raw = (
        b'data: {"response":"Hi"}\n\n'
        b'data: {"success":false,"errors":[{"code":3040,"message":"Capacity temporarily exceeded"}]}\n\n'
    )
    _, text, error = events_of(raw)
    assert text == TextDelta("Hi")
    assert isinstance(error, StreamError) and "Capacity" in error.message


def test_stream_openai_compatible_chunks_finish_once() -> None:
    raw = (
        b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"c","object":"chat.completion.chunk","choices":[],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
        b"data: [DONE]\n\n"
    )
    complete, *events = events_of(raw)
    assert complete
    assert events == [
        TextDelta("Hi"),
        Finish("stop"),
        UsageUpdate(Usage(input_tokens=3, output_tokens=1)),
    ]


def _error(status: int, code: int, message: str = "msg") -> UpstreamStatusError:
    body = msgspec.json.encode(
        {"result": None, "success": False, "errors": [{"code": code, "message": message}]}
    )
    return status_error(status, {"retry-after": "7"}, body)


@pytest.mark.parametrize(
    ("status", "code", "client_status", "retryable"),
    [
        (429, 3036, 429, True),  # daily free allocation used up
        (429, 3040, 429, True),  # out of capacity
        (400, 3040, 429, True),  # capacity code, whatever the status
        (500, 3043, 502, True),
        (503, 3043, 502, True),
        (400, 5006, 400, False),  # the request's own fault
        (400, 5007, 502, True),  # no such model: the channel's fault
        (401, 10000, 502, True),  # the channel's key
    ],
)
def test_status_error_mapping(status: int, code: int, client_status: int, retryable: bool) -> None:
    error = _error(status, code)
    assert (error.status, error.retryable) == (client_status, retryable)
    assert f"Cloudflare error {code}" in error.message


def test_status_error_rate_limit_keeps_retry_after() -> None:
    error = _error(429, 3036, "account has used its daily free allocation")
    assert error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "7"
    assert "daily free allocation" in error.message
