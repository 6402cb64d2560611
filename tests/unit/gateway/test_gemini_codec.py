"""The Gemini codecs: upstream encoding and decoding, the client surface, and their round trips."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import string
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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
from gateway.errors import GatewayError, UpstreamError, UpstreamStatusError
from gateway.providers.gemini import (
    SIGNATURE_SENTINEL,
    GeminiUpstream,
    encode_generate_request,
    finish_reason,
    status_error,
    usage_from_gemini,
)
from gateway.sse import SSEDecoder, SSEEvent
from gateway.surfaces.gemini import (
    GeminiClient,
    decode_embedding_call,
    decode_generate_request,
    error_body,
    json_schema,
    usage_metadata,
)
from shared.money import Usage

# ---------------------------------------------------------------------------- helpers


def _refuse(request: httpx.Request) -> httpx.Response:
    msg = f"unexpected fetch of {request.url}"
    raise AssertionError(msg)


def _encode(request: ChatRequest, model: str = "gemini-2.5-flash", **kwargs: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        transport = kwargs.get("transport") or httpx.MockTransport(_refuse)
        async with httpx.AsyncClient(transport=transport) as http:
            return await encode_generate_request(request, model, http)

    return asyncio.run(run())


def _event(data: str) -> SSEEvent:
    return SSEEvent("message", data, data.encode())


def _feed_all(payloads: list[Any]) -> tuple[list[Event], bool]:
    stream = GeminiUpstream().open_stream()
    events: list[Event] = []
    for payload in payloads:
        events.extend(stream.feed(_event(json.dumps(payload))))
    return events, stream.complete


def _chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **fields)


# ---------------------------------------------------------------------------- mapping tables


@pytest.mark.parametrize(
    ("gemini", "has_calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", False, "content_filter"),
        ("IMAGE_RECITATION", False, "content_filter"),
        ("OTHER", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
    ],
)
def test_finish_reason_table(gemini: str, has_calls: bool, expected: str) -> None:
    assert finish_reason(gemini, has_calls=has_calls) == expected


def test_unknown_finish_reason_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert finish_reason("BRAND_NEW_REASON") == "stop"
    assert "unknown Gemini finish reason" in caplog.text


@pytest.mark.parametrize(
    ("reason", "gemini"),
    [
        ("stop", "STOP"),
        ("tool_calls", "STOP"),
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
    ],
)
def test_reverse_finish_reason_table(reason: str, gemini: str) -> None:
    client = GeminiClient(model="m", request_id="req_1")
    response = ChatResponse(id="x", model="m", choices=[Choice(0, [Text("a")], reason)])  # type: ignore[arg-type]

    body = json.loads(client.encode_response(response, Usage(), 0))

    assert body["candidates"][0]["finishReason"] == gemini


def test_usage_normalisation_bc11_b() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 10000,
            "cachedContentTokenCount": 8000,
            "candidatesTokenCount": 100,
            "thoughtsTokenCount": 50,
            "toolUsePromptTokenCount": 7,
            "totalTokenCount": 10157,
        }
    )

    assert usage == Usage(
        input_tokens=10007, cached_input_tokens=8000, output_tokens=150, reasoning_tokens=50
    )
    assert usage_metadata(usage) == {
        "promptTokenCount": 10007,
        "candidatesTokenCount": 100,
        "totalTokenCount": 10157,
        "cachedContentTokenCount": 8000,
        "thoughtsTokenCount": 50,
    }


# ---------------------------------------------------------------------------- streams


BC09 = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}],
        "usageMetadata": {
            "promptTokenCount": 8,
            "candidatesTokenCount": n,
            "totalTokenCount": 8 + n,
        },
    }
    for t, n in (("A", 1), ("BCD", 5))
] + [
    {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "E"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20},
    }
]


def test_bc09_running_totals_end_with_the_last() -> None:
    events, complete = _feed_all(BC09)

    usages = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert usages[-1] == Usage(input_tokens=8, output_tokens=12)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "ABCDE"
    assert complete


def test_bc16_stop_after_a_streamed_call_is_tool_calls() -> None:
    events, _ = _feed_all(
        [
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                            ],
                        },
                        "index": 0,
                    }
                ]
            },
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": ""}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 7},
            },
        ]
    )

    start = next(e for e in events if isinstance(e, ToolCallStart))
    assert start.id.startswith("call_") and len(start.id) > 5 and start.name == "get_weather"
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == ['{"city":"Paris"}']
    assert [e.reason for e in events if isinstance(e, Finish)] == ["tool_calls"]
    assert not any(isinstance(e, TextDelta) for e in events)


def test_finish_without_usage_waits_for_the_end_of_the_stream() -> None:
    stream = GeminiUpstream().open_stream()
    stream.feed(_event('{"candidates":[{"finishReason":"STOP","index":0}]}'))
    assert not stream.complete
    stream.feed(_event('{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1}}'))
    assert stream.complete


def test_bc15_2_finish_without_content() -> None:
    events, _ = _feed_all([{"candidates": [{"finishReason": "MAX_TOKENS", "index": 0}]}])

    assert events == [Finish("length")]


def test_bc23_candidates_keep_their_index() -> None:
    events, complete = _feed_all(
        [
            {
                "candidates": [
                    {"content": {"parts": [{"text": w}]}, "finishReason": "STOP", "index": i}
                    for i, w in enumerate(("Red", "Blue", "Green"))
                ],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3},
            }
        ]
    )

    assert [(e.index, e.text) for e in events if isinstance(e, TextDelta)] == [
        (0, "Red"),
        (1, "Blue"),
        (2, "Green"),
    ]
    assert [(e.index, e.reason) for e in events if isinstance(e, Finish)] == [
        (0, "stop"),
        (1, "stop"),
        (2, "stop"),
    ]
    assert complete


def test_mid_stream_error_is_a_stream_error() -> None:
    events, _ = _feed_all(
        [{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]
    )

    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert events[0].message == "overloaded"


def test_mid_stream_quota_error_stays_a_429() -> None:
    events, _ = _feed_all(
        [{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]
    )

    assert events == [StreamError("upstream rate limit: quota", "rate_limit_exceeded", status=429)]


# ---------------------------------------------------------------------------- safety blocks


PROMPT_BLOCK = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 13, "totalTokenCount": 13},
}
OUTPUT_BLOCK = {
    "candidates": [
        {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
            ],
        }
    ],
    "usageMetadata": {"promptTokenCount": 13, "totalTokenCount": 13},
}


def test_bc19_1_prompt_block_is_a_final_400() -> None:
    with pytest.raises(UpstreamStatusError) as blocked:
        GeminiUpstream().decode_response(json.dumps(PROMPT_BLOCK).encode())
    assert blocked.value.status == 400 and blocked.value.code == "content_filter"
    assert "PROHIBITED_CONTENT" in blocked.value.message
    assert not blocked.value.retryable and not blocked.value.counts_against_channel

    with pytest.raises(UpstreamStatusError) as streamed:
        _feed_all([PROMPT_BLOCK])
    assert streamed.value.code == "content_filter"


def test_bc19_1_prompt_block_after_output_finishes_as_content_filter() -> None:
    first = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}

    events, _ = _feed_all([first, PROMPT_BLOCK])

    assert [e for e in events if isinstance(e, Finish)] == [Finish("content_filter")]


def test_bc19_2_output_block() -> None:
    answer = GeminiUpstream().decode_response(json.dumps(OUTPUT_BLOCK).encode())

    assert answer.choices == [Choice(0, [], "content_filter")]
    assert answer.usage == Usage(input_tokens=13)
    events, _ = _feed_all([OUTPUT_BLOCK])
    assert events == [Finish("content_filter"), UsageUpdate(Usage(input_tokens=13))]


_KEYS = st.sampled_from(
    [
        "candidates",
        "content",
        "parts",
        "text",
        "thought",
        "thoughtSignature",
        "functionCall",
        "functionResponse",
        "name",
        "args",
        "id",
        "finishReason",
        "index",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "promptFeedback",
        "blockReason",
        "error",
        "inlineData",
        "mimeType",
        "data",
        "fileData",
        "role",
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 100)
    | st.sampled_from(["STOP", "SAFETY", "MAX_TOKENS", "", "model", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)


@given(payload=_JSON)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bc19_structurally_minimal_payloads_never_crash(payload: Any) -> None:
    body = json.dumps(payload).encode()
    with contextlib.suppress(UpstreamError):
        GeminiUpstream().decode_response(body)
    stream = GeminiUpstream().open_stream()
    with contextlib.suppress(UpstreamError):
        stream.feed(_event(body.decode()))


@given(payload=_JSON)
@settings(max_examples=300, deadline=None)
def test_client_decoder_refuses_garbage_with_a_400(payload: Any) -> None:
    try:
        decode_generate_request(
            payload if isinstance(payload, dict) else {"contents": payload}, "m", stream=False
        )
    except GatewayError as exc:
        assert exc.status == 400


# ---------------------------------------------------------------------------- request encoding


def test_bc20_1_system_texts_join_and_user_turns_merge() -> None:
    body = _encode(
        _chat(
            Message("system", [Text("Be terse.")]),
            Message("system", [Text("Answer in French.")]),
            Message("user", [Text("A")]),
            Message("user", [Text("B")]),
        )
    )

    assert body == {
        "systemInstruction": {"parts": [{"text": "Be terse.\nAnswer in French."}]},
        "contents": [{"role": "user", "parts": [{"text": "A"}, {"text": "B"}]}],
    }


def test_bc20_2_only_a_system_message() -> None:
    body = _encode(_chat(Message("system", [Text("Say hi")])))

    assert body == {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}


def test_bc20_3_tool_results_answer_in_call_order() -> None:
    body = _encode(
        _chat(
            Message("user", [Text("weather and time?")]),
            Message(
                "assistant",
                [
                    ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
                    ToolCall("call_2", "get_time", "{}"),
                ],
            ),
            Message("tool", [ToolResult("call_2", "14:00")]),
            Message("tool", [ToolResult("call_1", '{"temp_c":21}')]),
        )
    )

    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "id": "call_1",
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                    }
                },
                {"functionCall": {"id": "call_2", "name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call_1",
                        "name": "get_weather",
                        "response": {"temp_c": 21},
                    }
                },
                {
                    "functionResponse": {
                        "id": "call_2",
                        "name": "get_time",
                        "response": {"result": "14:00"},
                    }
                },
            ],
        },
    ]


_ROLES = st.sampled_from(["system", "user", "assistant", "tool"])


@st.composite
def _awkward_messages(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    calls: list[str] = []
    for position in range(draw(st.integers(1, 8))):
        role = draw(_ROLES)
        text = draw(st.sampled_from(["", "x", "hello"]))
        if role == "assistant":
            parts: list[Part] = [Text(text)] if text else []
            for _ in range(draw(st.integers(0, 2))):
                call_id = f"call_{position}_{len(calls)}"
                calls.append(call_id)
                parts.append(ToolCall(call_id, "f", "{}"))
            messages.append(Message("assistant", parts))
        elif role == "tool":
            call_id = draw(st.sampled_from(calls)) if calls else "call_unknown"
            messages.append(Message("tool", [ToolResult(call_id, text)]))
        else:
            messages.append(Message(role, [Text(text)]))
    return messages


@given(messages=_awkward_messages())
@settings(max_examples=300, deadline=None)
def test_bc20_contents_always_alternate_and_are_never_empty(messages: list[Message]) -> None:
    body = _encode(ChatRequest(model="m", messages=messages))

    contents = body["contents"]
    assert contents
    assert all(c["parts"] for c in contents)
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(contents))
    assert all(c["role"] in ("user", "model") for c in contents)
    assert all(p.get("text") != "" for c in contents for p in c["parts"])
    system = [
        t.text
        for m in messages
        if m.role == "system"
        for t in m.parts
        if isinstance(t, Text) and t.text
    ]
    if system and any(m.role != "system" and _has_content(m) for m in messages):
        assert body["systemInstruction"] == {"parts": [{"text": "\n".join(system)}]}


def _has_content(message: Message) -> bool:
    return any(not isinstance(p, Text) or p.text for p in message.parts)


def test_bc22_data_url_image_is_inlined_exactly() -> None:
    body = _encode(
        _chat(
            Message(
                "user", [Text("what is this?"), Image(media_type="image/jpeg", data="/9j/4A==")]
            )
        )
    )

    assert body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
    ]


def test_bc22_remote_image_is_fetched_through_media() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"

    def serve(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "http://images.test/cat.png"
        return httpx.Response(200, content=png, headers={"content-type": "image/png"})

    body = _encode(
        _chat(Message("user", [Image(media_type="", url="http://images.test/cat.png")])),
        transport=httpx.MockTransport(serve),
    )

    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
    ]


def test_google_file_uris_stay_file_data() -> None:
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc"

    body = _encode(_chat(Message("user", [Image(media_type="application/pdf", url=uri)])))

    assert body["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "application/pdf", "fileUri": uri}}
    ]


def test_bc23_bc24_generation_config() -> None:
    body = _encode(
        _chat(
            Message("user", [Text("x")]),
            n=3,
            max_output_tokens=256,
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop=["END"],
            seed=7,
            response_schema={"type": "object"},
            reasoning=ReasoningSettings(budget_tokens=1024),
        )
    )

    assert body["generationConfig"] == {
        "maxOutputTokens": 256,
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "seed": 7,
        "stopSequences": ["END"],
        "candidateCount": 3,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }


def test_effort_is_a_level_for_gemini_3_and_a_budget_before() -> None:
    request = _chat(
        Message("user", [Text("x")]), reasoning=ReasoningSettings(effort="high", include=False)
    )

    assert _encode(request, "gemini-3.1-pro-preview")["generationConfig"] == {
        "thinkingConfig": {"thinkingLevel": "HIGH"}
    }
    assert _encode(request, "gemini-2.5-pro")["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 24576}
    }


def test_tools_and_tool_choice() -> None:
    tools = [Tool("a", "does a", {"type": "object"}), Tool("b")]
    for choice, config in [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("tool", "b"), {"mode": "ANY", "allowedFunctionNames": ["b"]}),
    ]:
        body = _encode(_chat(Message("user", [Text("x")]), tools=tools, tool_choice=choice))
        assert body["toolConfig"] == {"functionCallingConfig": config}
        assert body["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "a",
                        "description": "does a",
                        "parametersJsonSchema": {"type": "object"},
                    },
                    {"name": "b"},
                ]
            }
        ]


def test_gemini_3_call_without_signature_gets_the_sentinel_once() -> None:
    request = _chat(
        Message("user", [Text("x")]),
        Message("assistant", [ToolCall("c1", "f", "{}"), ToolCall("c2", "g", "{}")]),
        Message("tool", [ToolResult("c1", "{}"), ToolResult("c2", "{}")]),
    )

    model_parts = _encode(request, "gemini-3-flash-preview")["contents"][1]["parts"]
    older = _encode(request, "gemini-2.5-flash")["contents"][1]["parts"]

    assert [p.get("thoughtSignature") for p in model_parts] == [SIGNATURE_SENTINEL, None]
    assert all("thoughtSignature" not in p for p in older)


def test_signatures_are_echoed_back() -> None:
    request = _chat(
        Message("user", [Text("x")]),
        Message(
            "assistant",
            [
                Reasoning("thinking", signature="s1"),
                Reasoning(signature="s2"),
                Text("answer"),
                ToolCall("c1", "f", "{}", signature="s3"),
            ],
        ),
    )

    parts = _encode(request, "gemini-3-flash-preview")["contents"][1]["parts"]

    assert parts == [
        {"text": "thinking", "thought": True, "thoughtSignature": "s1"},
        {"text": "answer", "thoughtSignature": "s2"},
        {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": "s3"},
    ]


# ---------------------------------------------------------------------------- errors


def test_status_errors() -> None:
    limited = status_error(
        429,
        {"retry-after": "30"},
        b'{"error":{"code":429,"message":"quota exhausted","status":"RESOURCE_EXHAUSTED"}}',
    )
    assert (limited.status, limited.code, limited.retryable) == (429, "rate_limit_exceeded", True)
    assert "quota exhausted" in limited.message and limited.headers == {"retry-after": "30"}
    invalid = status_error(
        400, {}, b'{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}'
    )
    assert (invalid.status, invalid.retryable) == (400, False)
    overloaded = status_error(
        503, {}, b'{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}'
    )
    assert (overloaded.status, overloaded.retryable) == (502, True)


def test_error_body_shape() -> None:
    body = json.loads(
        error_body(
            GatewayError(429, "rate_limit_exceeded", "slow down", headers={"retry-after": "7"})
        )
    )

    assert body["error"]["code"] == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert body["error"]["message"] == "slow down"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in body[
        "error"
    ]["details"]
    for status, name in [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
    ]:
        assert json.loads(error_body(GatewayError(status, "x", "m")))["error"]["status"] == name


# ---------------------------------------------------------------------------- client decoding


def test_json_schema_from_gemini_dialect() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "type": {"type": "STRING", "nullable": True, "enum": ["a", "b"]},
            "items": {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": 1},
        },
        "required": ["type"],
        "propertyOrdering": ["type", "items"],
    }

    assert json_schema(schema) == {
        "type": "object",
        "properties": {
            "type": {"type": ["string", "null"], "enum": ["a", "b"]},
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        },
        "required": ["type"],
    }


def test_bc35_request_decodes_both_schema_dialects() -> None:
    request = decode_generate_request(
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": {"role": "user", "parts": [{"text": "S" * 30_000}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {"name": "a", "parametersJsonSchema": {"type": "object"}},
                        {"name": "b", "parameters": {"type": "OBJECT", "properties": {}}},
                    ]
                },
                {"googleSearch": {}},
            ],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}},
                "thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": True},
            },
        },
        "gemini-3.1-pro-preview",
        stream=True,
    )

    assert request.messages[0] == Message("system", [Text("S" * 30_000)])
    assert [(t.name, t.parameters) for t in request.tools] == [
        ("a", {"type": "object"}),
        ("b", {"type": "object", "properties": {}}),
    ]
    assert request.response_schema == {"type": "object", "properties": {"x": {"type": "string"}}}
    assert request.reasoning == ReasoningSettings(effort="high", include=True)
    assert request.stream and request.model == "gemini-3.1-pro-preview"


def test_function_responses_without_ids_answer_their_calls() -> None:
    request = decode_generate_request(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "x"}]},
                {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "f", "args": {"a": 1}}},
                        {"functionCall": {"name": "g", "args": {}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "g", "response": {"ok": 1}}},
                        {"functionResponse": {"name": "f", "response": {"ok": 2}}},
                        {"text": "thanks"},
                    ],
                },
            ]
        },
        "m",
        stream=False,
    )

    calls = request.messages[1].parts
    assert [m.role for m in request.messages] == ["user", "assistant", "tool", "user"]
    results = request.messages[2].parts
    assert isinstance(calls[0], ToolCall) and isinstance(calls[1], ToolCall)
    assert isinstance(results[0], ToolResult) and isinstance(results[1], ToolResult)
    assert (results[0].call_id, results[1].call_id) == (calls[1].id, calls[0].id)
    assert request.messages[3] == Message("user", [Text("thanks")])


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"maxOutputTokens": 0}, "max_output_tokens"),
        ({"maxOutputTokens": -1}, "max_output_tokens"),
        ({"candidateCount": 0}, "candidate_count"),
        ({"candidateCount": 9}, "candidate_count"),
        ({"temperature": 3}, "temperature"),
        ({"topP": 1.5}, "top_p"),
        ({"thinkingConfig": {"thinkingLevel": "EXTREME"}}, "thinking_level"),
    ],
)
def test_bad_generation_config_is_a_400(config: dict[str, Any], field: str) -> None:
    with pytest.raises(GatewayError) as refused:
        decode_generate_request(
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config},
            "m",
            stream=False,
        )
    assert refused.value.status == 400 and field in refused.value.message


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"contents": []},
        {"contents": [{"role": "user", "parts": []}]},
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@"}}]}]},
        {"contents": [{"parts": [{"inlineData": {"data": "QQ=="}}]}]},
    ],
)
def test_bad_contents_are_a_400(payload: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as refused:
        decode_generate_request(payload, "m", stream=False)
    assert refused.value.status == 400


def test_url_safe_inline_data_becomes_standard_base64() -> None:
    raw = bytes(range(250, 256)) * 3
    request = decode_generate_request(
        {
            "contents": [
                {
                    "parts": [
                        {
                            "inline_data": {
                                "mime_type": "image/png",
                                "data": base64.urlsafe_b64encode(raw).decode().rstrip("="),
                            }
                        }
                    ]
                }
            ]
        },
        "m",
        stream=False,
    )

    [image] = request.messages[0].parts
    assert isinstance(image, Image) and image.data == base64.b64encode(raw).decode()


def test_embedding_calls_decode_to_one_input_per_content() -> None:
    batch = decode_embedding_call(
        {
            "requests": [
                {"model": "models/e", "content": {"parts": [{"text": "a"}, {"text": "b"}]}},
                {"content": {"parts": [{"text": "c"}]}, "taskType": "RETRIEVAL_QUERY"},
            ]
        },
        "e",
        "batchEmbedContents",
    )
    single = decode_embedding_call(
        {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 8}, "e", "embedContent"
    )

    assert (batch.model, batch.inputs, batch.dimensions) == ("e", ["a\nb", "c"], None)
    assert (single.inputs, single.dimensions) == (["x"], 8)
    assert single.raw == {"model": "e", "input": ["x"], "encoding_format": "float", "dimensions": 8}


@pytest.mark.parametrize(
    ("payload", "action"),
    [
        ({}, "batchEmbedContents"),
        ({"requests": [{"content": {"parts": []}}]}, "batchEmbedContents"),
        ({"content": {"parts": [{"text": ""}]}}, "embedContent"),
        ({"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0}, "embedContent"),
        (
            {
                "requests": [
                    {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 8},
                    {"content": {"parts": [{"text": "y"}]}, "outputDimensionality": 16},
                ]
            },
            "batchEmbedContents",
        ),
    ],
)
def test_bad_embedding_calls_are_a_400(payload: dict[str, Any], action: str) -> None:
    with pytest.raises(GatewayError) as refused:
        decode_embedding_call(payload, "e", action)
    assert refused.value.status == 400


# ---------------------------------------------------------------------------- round trips

_WORDS = st.text(string.ascii_letters + " .,!?éü", min_size=1, max_size=12)
_NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)
_SIGNATURES = st.none() | st.text(
    string.ascii_letters + string.digits + "+/=", min_size=4, max_size=12
)
_ARGS = st.dictionaries(_NAMES, st.integers(-5, 5) | _WORDS | st.booleans(), max_size=3)
_SCHEMAS = st.sampled_from(
    [
        {"type": "object"},
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        {"type": "array", "items": {"type": "integer"}},
    ]
)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


@st.composite
def _assistant_parts(draw: st.DrawFn, prefix: str, allow_calls: bool = True) -> list[Part]:
    parts: list[Part] = []
    if draw(st.booleans()):
        parts.append(Reasoning(draw(_WORDS), signature=draw(_SIGNATURES)))
    signature = draw(_SIGNATURES)
    if signature is not None:
        parts.append(Reasoning(signature=signature))
    parts.append(Text(draw(_WORDS)))
    if allow_calls:
        for number in range(draw(st.integers(0, 2))):
            parts.append(
                ToolCall(
                    f"{prefix}_{number}",
                    draw(_NAMES),
                    _json(draw(_ARGS)),
                    signature=draw(_SIGNATURES),
                )
            )
    return parts


@st.composite
def _requests(draw: st.DrawFn) -> tuple[ChatRequest, str]:
    messages: list[Message] = []
    system = draw(st.lists(_WORDS, max_size=2))
    if system:
        messages.append(Message("system", [Text("\n".join(system))]))
    for turn in range(draw(st.integers(1, 4))):
        user_parts: list[Part] = [Text(draw(_WORDS))]
        if draw(st.booleans()):
            data = base64.b64encode(draw(st.binary(min_size=1, max_size=24))).decode()
            user_parts.append(Image(media_type="image/png", data=data))
        previous = messages[-1] if messages and messages[-1].role == "assistant" else None
        calls = [p for p in previous.parts if isinstance(p, ToolCall)] if previous else []
        if calls:
            messages.append(
                Message(
                    "tool",
                    [ToolResult(c.id, _json(draw(_ARGS) or {"ok": True}), c.name) for c in calls],
                )
            )
        else:
            messages.append(Message("user", user_parts))
        messages.append(Message("assistant", draw(_assistant_parts(f"call_{turn}"))))
    messages.append(Message("user", [Text(draw(_WORDS))]))
    tools = [
        Tool(name, draw(st.none() | _WORDS), draw(_SCHEMAS))
        for name in draw(st.lists(_NAMES, max_size=2, unique=True))
    ]
    choice = None
    if tools:
        mode = draw(st.sampled_from(["auto", "none", "required", "tool", None]))
        if mode == "tool":
            choice = ToolChoice("tool", tools[0].name)
        elif mode is not None:
            choice = ToolChoice(mode)  # type: ignore[arg-type]
    reasoning = draw(
        st.none()
        | st.builds(ReasoningSettings, budget_tokens=st.integers(-1, 30000), include=st.booleans())
        | st.builds(
            ReasoningSettings,
            effort=st.sampled_from(["minimal", "low", "medium", "high"]),
            include=st.booleans(),
        )
    )
    schema = draw(st.none() | _SCHEMAS)
    model = "gemini-3-pro-preview" if reasoning and reasoning.effort else "gemini-2.5-flash"
    request = ChatRequest(
        model=model,
        messages=messages,
        stream=draw(st.booleans()),
        tools=tools,
        tool_choice=choice,
        max_output_tokens=draw(st.none() | st.integers(1, 65536)),
        temperature=draw(st.none() | st.sampled_from([0.0, 0.5, 1.25, 2.0])),
        top_p=draw(st.none() | st.sampled_from([0.0, 0.9, 1.0])),
        top_k=draw(st.none() | st.integers(1, 100)),
        stop=draw(st.lists(_WORDS, max_size=3)),
        n=draw(st.integers(1, 8)),
        seed=draw(st.none() | st.integers(0, 2**31)),
        reasoning=reasoning,
        response_schema=schema,
        json_mode=schema is None and draw(st.booleans()),
    )
    return request, model


def _expected_request(request: ChatRequest, model: str) -> ChatRequest:
    """What survives a round trip: the Gemini-3 signature sentinel is added to unsigned calls."""
    if not model.startswith("gemini-3"):
        return request
    messages = []
    for message in request.messages:
        calls = [p for p in message.parts if isinstance(p, ToolCall)]
        if calls and not any(c.signature for c in calls):
            first = calls[0]
            signed = ToolCall(first.id, first.name, first.arguments, signature=SIGNATURE_SENTINEL)
            message = Message(message.role, [signed if p is first else p for p in message.parts])
        messages.append(message)
    return msgspec.structs.replace(request, messages=messages)


@given(drawn=_requests())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_request_round_trip(drawn: tuple[ChatRequest, str]) -> None:
    request, model = drawn

    body = _encode(request, model)
    decoded = decode_generate_request(json.loads(json.dumps(body)), model, stream=request.stream)

    assert decoded == _expected_request(request, model)


@st.composite
def _responses(draw: st.DrawFn) -> ChatResponse:
    choices = []
    for index in range(draw(st.integers(1, 3))):
        parts = draw(_assistant_parts(f"call_{index}")) if draw(st.booleans()) else []
        has_calls = any(isinstance(p, ToolCall) for p in parts)
        finish = draw(
            st.sampled_from(["length", "content_filter", "tool_calls" if has_calls else "stop"])
        )
        choices.append(Choice(index, parts, finish))  # type: ignore[arg-type]
    return ChatResponse(id="1", model="client-model", choices=choices)


_USAGES = st.builds(
    lambda i, c, o, r: Usage(
        input_tokens=i, cached_input_tokens=min(c, i), output_tokens=o + r, reasoning_tokens=r
    ),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**5),
    st.integers(0, 10**5),
)


@given(response=_responses(), usage=_USAGES)
@settings(deadline=None)
def test_response_round_trip(response: ChatResponse, usage: Usage) -> None:
    client = GeminiClient(model="client-model", request_id="req_1")

    decoded = GeminiUpstream().decode_response(client.encode_response(response, usage, 0))

    assert decoded == msgspec.structs.replace(response, usage=usage)


@st.composite
def _streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for index in range(draw(st.integers(1, 3))):
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                events.append(ReasoningDelta(draw(_WORDS), index=index))
            else:
                events.append(TextDelta(draw(_WORDS), index=index))
        calls = draw(st.integers(0, 2))
        for call_index in range(calls):
            arguments = _json(draw(_ARGS))
            cut = draw(st.integers(0, len(arguments)))
            events.append(
                ToolCallStart(call_index, f"call_{index}_{call_index}", draw(_NAMES), index=index)
            )
            events.extend(
                ToolCallDelta(call_index, piece, index=index)
                for piece in (arguments[:cut], arguments[cut:])
                if piece
            )
        reason = draw(
            st.sampled_from(["length", "content_filter", "tool_calls" if calls else "stop"])
        )
        events.append(Finish(reason, index=index))  # type: ignore[arg-type]
    return events


def _summary(events: list[Event]) -> dict[str, Any]:
    texts: dict[int, str] = {}
    thoughts: dict[int, str] = {}
    calls: dict[tuple[int, int], list[str]] = {}
    finishes: dict[int, str] = {}
    for event in events:
        if isinstance(event, TextDelta):
            texts[event.index] = texts.get(event.index, "") + event.text
        elif isinstance(event, ReasoningDelta):
            thoughts[event.index] = thoughts.get(event.index, "") + event.text
        elif isinstance(event, ToolCallStart):
            calls[(event.index, event.call_index)] = [event.id, event.name, ""]
        elif isinstance(event, ToolCallDelta):
            calls[(event.index, event.call_index)][2] += event.arguments
        elif isinstance(event, Finish):
            finishes[event.index] = event.reason
    return {
        "texts": texts,
        "thoughts": thoughts,
        "calls": {k: (i, n, json.loads(a or "{}")) for k, (i, n, a) in calls.items()},
        "finishes": finishes,
    }


@given(events=_streams(), usage=_USAGES, sse=st.booleans(), split=st.integers(1, 4))
@settings(deadline=None)
def test_stream_round_trip(events: list[Event], usage: Usage, sse: bool, split: int) -> None:
    client = GeminiClient(model="client-model", request_id="req_1", sse=sse)
    wire = bytearray(client.stream_open())
    for start in range(0, len(events), split):
        wire += client.encode_events(events[start : start + split])
    wire += client.stream_close(usage, 0, complete=True, error=None)

    if sse:
        assert wire.endswith(b"\r\n\r\n") and b"[DONE]" not in wire
        frames = [e.data for e in SSEDecoder().feed(bytes(wire))]
    else:
        frames = [json.dumps(f) for f in json.loads(wire)]
    stream = GeminiUpstream().open_stream()
    decoded = [e for frame in frames for e in stream.feed(_event(frame))]

    assert _summary(decoded) == _summary(events)
    last = json.loads(frames[-1])
    assert all("finishReason" in c for c in last["candidates"]) and "usageMetadata" in last
    assert all(json.loads(f)["modelVersion"] == "client-model" for f in frames)
    assert [e.usage for e in decoded if isinstance(e, UsageUpdate)] == [usage]
    assert stream.complete


def test_stream_error_closes_the_array() -> None:
    client = GeminiClient(model="m", request_id="req_1", sse=False)

    wire = (
        client.stream_open()
        + client.encode_events([TextDelta("Hel")])
        + client.encode_events([StreamError("overloaded", status=503)])
        + client.stream_close(Usage(), 0, complete=False, error=None)
    )

    frames = json.loads(wire)
    assert frames[-1]["error"]["code"] == 503 and frames[-1]["error"]["status"] == "UNAVAILABLE"


def test_truncated_stream_ends_with_an_error_frame() -> None:
    client = GeminiClient(model="m", request_id="req_1")

    wire = client.encode_events([TextDelta("Hel")]) + client.stream_close(
        Usage(), 0, complete=False, error=None
    )

    last = json.loads(SSEDecoder().feed(wire)[-1].data)
    assert last["error"]["code"] == 502 and "ended before" in last["error"]["message"]


def test_passthrough_rewrites_only_the_model() -> None:
    client = GeminiClient(model="client-name", request_id="req_1")
    upstream = '{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}],"modelVersion":"gemini-x"}'

    frame = client.passthrough_event(_event(upstream), [], lambda _: 0)

    assert frame.endswith(b"\r\n\r\n")
    relayed = json.loads(frame.removeprefix(b"data: "))
    assert relayed == {**json.loads(upstream), "modelVersion": "client-name"}
    assert client.stream_close(Usage(), 0, complete=True, error=None) == b""
