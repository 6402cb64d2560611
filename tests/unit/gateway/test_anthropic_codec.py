"""The Anthropic Messages codecs: upstream (gateway/providers) and client (gateway/surfaces).

Round trips (canonical → Anthropic → canonical) are property tests; the handed cases are
checked with their exact bytes, cut at every offset where the case asks for it.
"""

from __future__ import annotations

import json
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
    merge_usage,
)
from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamStatusError
from gateway.providers.anthropic import (
    AnthropicStream,
    AnthropicUpstream,
    decode_message,
    encode_messages_request,
    status_error,
    usage_from_anthropic,
)
from gateway.snapshot import ChannelEntry
from gateway.sse import SSEDecoder
from gateway.surfaces.anthropic import (
    AnthropicClient,
    decode_messages_request,
    error_body,
    error_type,
)
from shared.money import Usage

# --------------------------------------------------------------------------- strategies

_words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
)
_ids = st.from_regex(r"[a-zA-Z0-9_-]{1,16}", fullmatch=True)
_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
_json_values = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), _words)
_arguments = st.dictionaries(_names, _json_values, max_size=3).map(
    lambda d: msgspec.json.encode(d).decode()
)
_image = st.one_of(
    st.builds(
        Image,
        media_type=st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        data=st.sampled_from(["/9j/4A==", "iVBORw0KGgo=", "R0lGODlh"]),
    ),
    st.builds(Image, media_type=st.just(""), url=st.just("https://example.test/cat.png")),
)
_user_part = st.one_of(st.builds(Text, _words, cache=st.booleans()), _image)
_reasoning_part = st.one_of(
    st.builds(Reasoning, text=st.text(max_size=20), signature=_ids),
    st.builds(Reasoning, redacted=_ids),
)


@st.composite
def _conversation(draw: st.DrawFn) -> list[Message]:
    messages = [
        Message("system", [Text(draw(_words), cache=draw(st.booleans()))])
        for _ in range(draw(st.integers(0, 3)))
    ]
    for _ in range(draw(st.integers(1, 3))):
        user: list[Part] = draw(st.lists(_user_part, min_size=1, max_size=3))
        if messages and messages[-1].role == "user":
            messages[-1].parts.extend(user)  # one Anthropic user turn
        else:
            messages.append(Message("user", user))
        parts: list[Part] = draw(st.lists(_reasoning_part, max_size=2))
        parts += draw(st.lists(st.builds(Text, _words, cache=st.booleans()), max_size=2))
        calls = draw(
            st.lists(
                st.builds(ToolCall, id=_ids, name=_names, arguments=_arguments),
                max_size=3,
                unique_by=lambda c: c.id,
            )
        )
        parts += calls
        if not parts:
            parts = [Text(draw(_words))]
        messages.append(Message("assistant", parts))
        if calls:
            results: list[Part] = [
                ToolResult(
                    call_id=c.id,
                    content=draw(st.text(max_size=20)),
                    name=c.name,
                    is_error=draw(st.booleans()),
                )
                for c in calls
            ]
            messages.append(Message("tool", results))
            # A user message after the tool results shares their Anthropic user turn.
            if draw(st.booleans()):
                messages.append(Message("user", [Text(draw(_words))]))
    return messages


_schema = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(_names, st.just({"type": "string"}), max_size=3),
    }
)


@st.composite
def _requests(draw: st.DrawFn) -> ChatRequest:
    max_tokens = draw(st.integers(1, 64_000))
    tools = draw(
        st.lists(
            st.builds(Tool, name=_names, description=st.none() | _words, parameters=_schema),
            max_size=3,
        )
    )
    choice = None
    parallel = None
    if tools:
        choice = draw(
            st.none()
            | st.builds(ToolChoice, st.sampled_from(["auto", "none", "required"]))
            | st.builds(ToolChoice, st.just("tool"), _names)
        )
        # Messages says "no parallel calls" only inside a tool choice.
        if choice is not None and choice.mode != "none":
            parallel = draw(st.sampled_from([None, False]))
    reasoning = None
    if draw(st.booleans()):
        if max_tokens > 1024 and draw(st.booleans()):
            budget = draw(st.integers(1024, max_tokens - 1))
            reasoning = ReasoningSettings(budget_tokens=budget, include=draw(st.booleans()))
        else:
            reasoning = ReasoningSettings(include=draw(st.booleans()))
    sampling: dict[str, Any] = {}
    if reasoning is None:
        sampling = {
            "temperature": draw(st.none() | st.floats(0, 1)),
            "top_p": draw(st.none() | st.floats(0, 1)),
            "top_k": draw(st.none() | st.integers(0, 500)),
        }
    return ChatRequest(
        model=draw(_names),
        messages=draw(_conversation()),
        stream=draw(st.booleans()),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_output_tokens=max_tokens,
        stop=draw(st.lists(_words, max_size=2)),
        reasoning=reasoning,
        response_schema=draw(st.none() | _schema),
        user=draw(st.none() | _words),
        **sampling,
    )


# --------------------------------------------------------------------------- round trips


@given(_requests())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_request_survives_canonical_anthropic_canonical(request: ChatRequest) -> None:
    body = encode_messages_request(request, request.model)
    wire = msgspec.json.decode(msgspec.json.encode(body))

    assert decode_messages_request(wire) == request


_usages = st.builds(
    lambda cached, written, fresh, thinking, text: Usage(
        input_tokens=cached + written + fresh,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=thinking + text,
        reasoning_tokens=thinking,
    ),
    *(st.integers(0, 100_000) for _ in range(5)),
)


@st.composite
def _responses(draw: st.DrawFn) -> ChatResponse:
    parts: list[Part] = draw(st.lists(_reasoning_part, max_size=2))
    parts += draw(st.lists(st.builds(Text, _words), max_size=2))
    calls = draw(
        st.lists(st.builds(ToolCall, id=_ids, name=_names, arguments=_arguments), max_size=2)
    )
    parts += calls
    reasons = ["tool_calls", "length"] if calls else ["stop", "length", "content_filter"]
    return ChatResponse(
        id="msg_x",
        model="claude-x",
        choices=[Choice(index=0, parts=parts, finish_reason=draw(st.sampled_from(reasons)))],
        usage=draw(_usages),
    )


@given(_responses())
def test_response_survives_canonical_anthropic_canonical(response: ChatResponse) -> None:
    assert response.usage is not None
    client = AnthropicClient(model="claude-x", request_id="req_x")

    body = client.encode_response(response, response.usage, 0)

    assert decode_message(msgspec.json.decode(body)) == response


def _sse_events(payload: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parse an SSE body, checking that every event has both an event and a data line."""
    events = []
    for raw in payload.decode().split("\n\n"):
        lines = [line for line in raw.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), raw
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        events.append((name, data))
    return events


def _collect(events: list[Event]) -> dict[str, Any]:
    """Reduce canonical stream events to what a client ends up with."""
    text, thinking, signatures = "", "", ""
    redacted: list[str] = []
    calls: dict[int, list[str]] = {}
    finish = None
    usage = None
    for event in events:
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ReasoningDelta):
            thinking += event.text
            signatures += event.signature or ""
            if event.redacted is not None:
                redacted.append(event.redacted)
        elif isinstance(event, ToolCallStart):
            calls[event.call_index] = [event.id, event.name, ""]
        elif isinstance(event, ToolCallDelta):
            calls[event.call_index][2] += event.arguments
        elif isinstance(event, Finish):
            finish = event.reason
        elif isinstance(event, UsageUpdate):
            usage = merge_usage(usage, event.usage)
    return {
        "text": text,
        "thinking": thinking,
        "signatures": signatures,
        "redacted": redacted,
        "calls": [(i, n, json.loads(a or "{}")) for i, n, a in calls.values()],
        "finish": finish,
        "usage": usage,
    }


def _decode_stream(payload: bytes, cut: int | None = None) -> tuple[list[Event], bool]:
    decoder, stream = SSEDecoder(), AnthropicStream()
    pieces = [payload] if cut is None else [payload[:cut], payload[cut:]]
    events: list[Event] = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            events.extend(stream.feed(sse))
    for sse in decoder.flush():
        events.extend(stream.feed(sse))
    return events, stream.complete


@st.composite
def _event_streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    if draw(st.booleans()):
        events += [ReasoningDelta(text=t) for t in draw(st.lists(_words, min_size=1, max_size=3))]
        events.append(ReasoningDelta(signature=draw(_ids)))
    if draw(st.booleans()):
        events.append(ReasoningDelta(redacted=draw(_ids)))
    events += [TextDelta(t) for t in draw(st.lists(_words, max_size=3))]
    calls = draw(
        st.lists(st.tuples(_ids, _names, _arguments), max_size=2, unique_by=lambda c: c[0])
    )
    for position, (call_id, name, arguments) in enumerate(calls):
        events.append(ToolCallStart(call_index=position, id=call_id, name=name))
        cut = draw(st.integers(0, len(arguments)))
        for piece in (arguments[:cut], arguments[cut:]):
            if piece:
                events.append(ToolCallDelta(call_index=position, arguments=piece))
    events.append(Finish("tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))))
    events.append(UsageUpdate(draw(_usages)))
    return events


@given(_event_streams(), st.integers(1, 6))
def test_stream_survives_canonical_anthropic_canonical(events: list[Event], batches: int) -> None:
    client = AnthropicClient(model="claude-x", request_id="req_x")
    usage = _collect(events)["usage"]
    size = max(1, len(events) // batches)

    payload = b"".join(
        client.encode_events(events[i : i + size]) for i in range(0, len(events), size)
    )
    payload += client.stream_close(usage, 1, complete=True, error=None)
    decoded, complete = _decode_stream(payload)

    assert complete
    assert _collect(decoded) == _collect(events)
    names = [name for name, _ in _sse_events(payload)]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop")


# --------------------------------------------------------------------------- BC08, BC11


def _frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def bc08_stream(start_usage: dict[str, int], delta_usage: dict[str, int]) -> str:
    """The upstream bytes of case BC08, with the usage of its variant."""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "usage": start_usage,
    }
    return "".join(
        [
            _frame("message_start", {"type": "message_start", "message": message}),
            _frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _frame(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi!"},
                },
            ),
            _frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": delta_usage,
                },
            ),
            _frame("message_stop", {"type": "message_stop"}),
        ]
    )


BC08_A = bc08_stream(
    {"input_tokens": 27, "output_tokens": 1},
    {"input_tokens": 27, "cache_read_input_tokens": 0, "output_tokens": 47},
)
BC08_B = bc08_stream(
    {"input_tokens": 0, "output_tokens": 0},
    {"input_tokens": 4522, "cache_creation_input_tokens": 4511, "output_tokens": 5},
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (BC08_A, Usage(input_tokens=27, output_tokens=47)),
        (BC08_B, Usage(input_tokens=9033, cache_write_tokens=4511, output_tokens=5)),
    ],
    ids=["variant-a", "variant-b"],
)
def test_bc08_cumulative_usage_is_merged_not_added_at_every_cut(
    payload: str, expected: Usage
) -> None:
    raw = payload.encode()
    for cut in range(len(raw)):
        events, complete = _decode_stream(raw, cut)
        collected = _collect(events)
        assert complete and collected["text"] == "Hi!" and collected["finish"] == "stop"
        assert collected["usage"] == expected, cut


def test_bc11_cache_usage_is_normalised() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 3,
            "cache_read_input_tokens": 20000,
            "cache_creation_input_tokens": 1500,
            "output_tokens": 50,
        },
    }

    response = AnthropicUpstream().decode_response(msgspec.json.encode(body))

    assert response.usage == Usage(
        input_tokens=21503, cached_input_tokens=20000, cache_write_tokens=1500, output_tokens=50
    )
    client = AnthropicClient(model="claude-x", request_id="req_x")
    echoed = json.loads(client.encode_response(response, response.usage, 0))
    assert echoed["usage"] == body["usage"]


def test_thinking_tokens_are_the_reasoning_part_of_output() -> None:
    usage = usage_from_anthropic(
        {"input_tokens": 5, "output_tokens": 90, "output_tokens_details": {"thinking_tokens": 60}}
    )

    assert usage == Usage(input_tokens=5, output_tokens=90, reasoning_tokens=60)


# --------------------------------------------------------------------------- stream decoding


def test_usage_is_reported_only_when_the_answer_ends_so_failover_stays_possible() -> None:
    start = bc08_stream({"input_tokens": 27, "output_tokens": 1}, {"output_tokens": 3})
    head = start.split("event: content_block_delta")[0]
    error = _frame(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )

    events, complete = _decode_stream((head + error).encode())

    assert not complete
    assert events == [StreamError("Overloaded", code="overloaded_error", status=529)]


def test_stream_with_thinking_tool_use_and_redacted_thinking() -> None:
    frames = [
        _frame(
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 9, "output_tokens": 1}},
            },
        ),
        _frame("ping", {"type": "ping"}),
        _frame(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm."},
            },
        ),
        _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "sig=="},
            },
        ),
        _frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _frame(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "redacted_thinking", "data": "ENC"},
            },
        ),
        _frame("content_block_stop", {"type": "content_block_stop", "index": 1}),
        _frame(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
            },
        ),
        _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
            },
        ),
        _frame("content_block_stop", {"type": "content_block_stop", "index": 2}),
        _frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 57, "output_tokens_details": {"thinking_tokens": 20}},
            },
        ),
        _frame("message_stop", {"type": "message_stop"}),
    ]

    events, complete = _decode_stream("".join(frames).encode())

    assert complete
    assert _collect(events) == {
        "text": "",
        "thinking": "Hmm.",
        "signatures": "sig==",
        "redacted": ["ENC"],
        "calls": [("toolu_1", "get_weather", {"city": "Paris"})],
        "finish": "tool_calls",
        "usage": Usage(input_tokens=9, output_tokens=57, reasoning_tokens=20),
    }


# --------------------------------------------------------------------------- request encoding


def _request(*messages: Message, **extra: Any) -> ChatRequest:
    return ChatRequest(model="claude-x", messages=list(messages), **extra)


def test_bc24_missing_limit_gets_the_default_max_tokens() -> None:
    body = encode_messages_request(_request(Message("user", [Text("hi")])), "claude-x")

    assert body["max_tokens"] == 4096
    assert (
        encode_messages_request(
            _request(Message("user", [Text("hi")])), "m", default_max_tokens=8192
        )["max_tokens"]
        == 8192
    )


def test_system_placement_and_role_alternation() -> None:
    request = _request(
        Message("system", [Text("Be terse.")]),
        Message("system", [Text("Answer in French.")]),
        Message("user", [Text("A")]),
        Message("user", [Text("B")]),
        Message("assistant", [ToolCall("call_1", "f", '{"x":1}'), ToolCall("call_2", "g", "{}")]),
        Message("tool", [ToolResult("call_1", "one")]),
        Message("tool", [ToolResult("call_2", "two")]),
        Message("system", [Text("Now be verbose.")]),
        Message("user", [Text("C")]),
    )

    body = encode_messages_request(request, "claude-x")

    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "two"},
                {"type": "text", "text": "<system>\nNow be verbose.\n</system>"},
                {"type": "text", "text": "C"},
            ],
        },
    ]


def test_only_system_messages_become_the_user_turn() -> None:
    body = encode_messages_request(_request(Message("system", [Text("Say hi")])), "claude-x")

    assert "system" not in body
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]


def test_tool_ids_are_made_valid_and_results_follow_them() -> None:
    request = _request(
        Message("user", [Text("go")]),
        Message("assistant", [ToolCall("call.1:x", "f", "{}"), ToolCall("", "g", "{}")]),
        Message("tool", [ToolResult("call.1:x", "a"), ToolResult("", "b")]),
    )

    turns = encode_messages_request(request, "claude-x")["messages"]

    calls = [b["id"] for b in turns[1]["content"]]
    results = [b["tool_use_id"] for b in turns[2]["content"]]
    assert calls == results == ["call_1_x", "toolu_0001"]


def test_thinking_without_a_signature_is_not_sent_back() -> None:
    request = _request(
        Message("user", [Text("q")]),
        Message("assistant", [Reasoning(text="from another model"), Text("a")]),
        Message("user", [Text("q2")]),
    )

    turns = encode_messages_request(request, "claude-x")["messages"]

    assert turns[1]["content"] == [{"type": "text", "text": "a"}]


def test_reasoning_budget_and_effort_become_valid_thinking() -> None:
    user = Message("user", [Text("q")])

    def thinking(reasoning: ReasoningSettings, limit: int) -> Any:
        request = _request(user, reasoning=reasoning, max_output_tokens=limit, temperature=0.2)
        body = encode_messages_request(request, "claude-x")
        assert "temperature" not in body or "thinking" not in body
        return body.get("thinking")

    assert thinking(ReasoningSettings(budget_tokens=10), 4000) == {
        "type": "enabled",
        "budget_tokens": 1024,
    }
    assert thinking(ReasoningSettings(budget_tokens=9000), 4000) == {
        "type": "enabled",
        "budget_tokens": 3999,
    }
    assert thinking(ReasoningSettings(effort="medium"), 16000) == {
        "type": "enabled",
        "budget_tokens": 8192,
    }
    assert thinking(ReasoningSettings(budget_tokens=2000), 1000) is None
    assert thinking(ReasoningSettings(), 1000) == {"type": "adaptive"}


def test_bc22_data_url_image_keeps_its_bytes_and_type() -> None:
    request = _request(
        Message("user", [Text("what is this?"), Image(media_type="image/jpeg", data="/9j/4A==")])
    )

    turns = encode_messages_request(request, "claude-x")["messages"]

    assert turns[0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A=="},
    }


def test_remote_images_are_inlined_when_fetched_and_linked_otherwise() -> None:
    image = Image(media_type="", url="https://example.test/cat.png")
    request = _request(Message("user", [image]))

    inlined = encode_messages_request(
        request, "m", images={"https://example.test/cat.png": ("image/png", "iVBORw0KGgo=")}
    )
    linked = encode_messages_request(request, "m")

    assert inlined["messages"][0]["content"][0]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    assert linked["messages"][0]["content"][0]["source"] == {
        "type": "url",
        "url": "https://example.test/cat.png",
    }


def test_json_mode_becomes_an_instruction_and_a_schema_becomes_output_format() -> None:
    user = Message("user", [Text("q")])

    json_mode = encode_messages_request(_request(user, json_mode=True), "m")
    schema = encode_messages_request(_request(user, response_schema={"type": "object"}), "m")

    assert "JSON" in json_mode["system"][-1]["text"]
    assert schema["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object"}}
    }


def _channel(**settings: Any) -> ChannelEntry:
    return ChannelEntry(
        id=1,
        name="c",
        kind="anthropic",
        base_url="http://127.0.0.1:9",
        api_key="sk-up",
        models=frozenset({"claude-x"}),
        model_map={"claude-x": "claude-upstream"},
        priority=0,
        weight=1,
        groups=None,
        relay_url=None,
        relay_secret=None,
        settings=settings,
    )


async def test_build_passes_through_the_body_and_the_client_headers() -> None:
    raw = {"model": "claude-x", "max_tokens": 5, "messages": [], "context_management": {"x": 1}}
    client_headers = {
        "x-api-key": "sk-tenant-secret",
        "authorization": "Bearer sk-tenant-secret",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "a,b",
        "user-agent": "claude-cli/2.0.0 (external, cli)",
        "x-app": "cli",
        "x-stainless-lang": "js",
        "cookie": "no",
    }
    request = _request(Message("user", [Text("x")]), max_output_tokens=5)

    async with httpx.AsyncClient() as http:
        call = await AnthropicUpstream().build(
            _channel(auth="bearer"), request, raw, client_headers=client_headers, http=http
        )

    assert call.url == "http://127.0.0.1:9/v1/messages"
    assert msgspec.json.decode(call.body) == {**raw, "model": "claude-upstream"}
    assert dict(call.headers) == {
        "x-api-key": "sk-up",
        "authorization": "Bearer sk-up",
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "a,b",
        "user-agent": "claude-cli/2.0.0 (external, cli)",
        "x-app": "cli",
        "x-stainless-lang": "js",
    }


async def test_build_converts_and_names_the_default_version() -> None:
    request = _request(Message("user", [Text("x")]), stream=True)

    async with httpx.AsyncClient() as http:
        call = await AnthropicUpstream().build(
            _channel(default_max_tokens=1000), request, None, client_headers={}, http=http
        )

    headers = dict(call.headers)
    assert headers["anthropic-version"] == "2023-06-01" and "authorization" not in headers
    assert headers["accept"] == "text/event-stream"
    body = msgspec.json.decode(call.body)
    assert (body["model"], body["max_tokens"], body["stream"]) == ("claude-upstream", 1000, True)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (529, (529, "overloaded_error", True)),
        (429, (429, "rate_limit_exceeded", True)),
        (400, (400, "upstream_rejected_request", False)),
        (413, (413, "upstream_rejected_request", False)),
        (500, (502, "upstream_error", True)),
        (401, (502, "upstream_error", True)),
    ],
)
def test_upstream_error_statuses(status: int, expected: tuple[int, str, bool]) -> None:
    body = b'{"type":"error","error":{"type":"x","message":"boom"},"request_id":"r"}'

    error = status_error(status, {"retry-after": "3"}, body)

    assert (error.status, error.code, error.retryable) == expected
    assert "boom" in error.message


def test_a_200_that_is_not_a_message_is_refused() -> None:
    with pytest.raises(UpstreamProtocolError, match="not JSON"):
        AnthropicUpstream().decode_response(b"unsupported model: x")
    with pytest.raises(UpstreamStatusError) as overloaded:
        AnthropicUpstream().decode_response(
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
        )
    assert overloaded.value.status == 529


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    error = GatewayError(status, "some_code", "went wrong")

    assert error_type(error) == kind
    assert json.loads(error_body(error, "req_1")) == {
        "type": "error",
        "error": {"type": kind, "message": "went wrong"},
        "request_id": "req_1",
    }


def test_mid_stream_errors_are_error_events() -> None:
    client = AnthropicClient(model="m", request_id="req_1")
    overloaded = StreamError("Overloaded", code="overloaded_error", status=529)

    events = _sse_events(client.encode_events([TextDelta("Hel"), overloaded]))
    truncated = _sse_events(client.stream_close(Usage(), 0, complete=False, error=None))

    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert truncated[0][1]["error"]["type"] == "api_error"


# --------------------------------------------------------------------------- client decoding


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_missing_max_tokens_is_an_invalid_request() -> None:
    body = _body()
    del body["max_tokens"]

    with pytest.raises(GatewayError, match="max_tokens: Field required") as refused:
        decode_messages_request(body)
    assert refused.value.status == 400
    assert decode_messages_request(body, require_max_tokens=False).max_output_tokens is None


def test_system_entries_unknown_fields_and_metadata_are_accepted() -> None:
    body = _body(
        system=[{"type": "text", "text": "A", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Mid-conversation rule."},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {
                "role": "user",
                "content": [{"type": "document", "source": {}}, {"type": "text", "text": "x"}],
            },
        ],
        metadata={"user_id": '{"device_id":"d","session_id":"s"}'},
        context_management={"edits": []},
        output_config={"effort": "xhigh"},
        thinking={"type": "adaptive"},
        some_future_field=True,
    )

    request = decode_messages_request(body)

    assert [m.role for m in request.messages] == ["system", "user", "system", "assistant", "user"]
    assert request.messages[0].parts == [Text("A", cache=True)]
    assert request.messages[2].parts == [Text("Mid-conversation rule.")]
    assert request.user == '{"device_id":"d","session_id":"s"}'
    assert request.reasoning == ReasoningSettings(effort="high")


def test_tool_choices_tools_and_tool_results() -> None:
    body = _body(
        tools=[
            {"name": "f", "description": "d", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "r1"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
    )

    request = decode_messages_request(body)

    assert request.tools == [Tool("f", "d", {"type": "object"})]
    assert (request.tool_choice, request.parallel_tool_calls) == (ToolChoice("required"), False)
    assert request.messages[2:] == [
        Message("tool", [ToolResult("t1", "r1", name="f", is_error=True)]),
        Message("user", [Text("and?")]),
    ]


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [(["length"], "max_tokens"), (["tool_calls"], "tool_use"), (["content_filter"], "refusal")],
)
def test_bc15_finish_reasons_map_back_to_stop_reasons(reasons: list[str], expected: str) -> None:
    client = AnthropicClient(model="m", request_id="req_1")
    events: list[Event] = [Finish(r) for r in reasons]  # type: ignore[arg-type]

    payload = client.encode_events(events) + client.stream_close(
        Usage(), 0, complete=True, error=None
    )

    [delta] = [d for n, d in _sse_events(payload) if n == "message_delta"]
    assert delta["delta"]["stop_reason"] == expected


def test_bc18_whole_tool_arguments_become_an_input_json_delta() -> None:
    client = AnthropicClient(model="m", request_id="req_1")
    events: list[Event] = [
        ToolCallStart(call_index=0, id="", name="add_numbers"),
        ToolCallDelta(call_index=0, arguments='{"a":17,"b":25}'),
        ToolCallStart(call_index=1, id="call_2", name="no_arguments"),
        Finish("tool_calls"),
        UsageUpdate(Usage(input_tokens=40, output_tokens=9)),
    ]

    payload = client.encode_events(events) + client.stream_close(
        Usage(input_tokens=40, output_tokens=9), 0, complete=True, error=None
    )

    sse = _sse_events(payload)
    starts = [d["content_block"] for n, d in sse if n == "content_block_start"]
    assert starts[0]["type"] == "tool_use" and starts[0]["id"].startswith("toolu_")
    assert starts[0]["input"] == {}
    pieces: dict[int, str] = {}
    for name, data in sse:
        if name == "content_block_delta":
            pieces[data["index"]] = pieces.get(data["index"], "") + data["delta"]["partial_json"]
    assert {i: json.loads(p) for i, p in pieces.items()} == {0: {"a": 17, "b": 25}, 1: {}}
    [delta] = [d for n, d in sse if n == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 9
    assert [n for n, _ in sse][-1] == "message_stop"


def test_passthrough_answer_gets_the_client_model_and_keeps_or_fills_usage() -> None:
    client = AnthropicClient(model="team-claude", request_id="req_1")
    message = {"id": "msg_1", "type": "message", "model": "up", "content": []}
    usage = {"input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 2}

    kept = json.loads(
        client.passthrough_response(json.dumps({**message, "usage": usage}).encode(), Usage(), 0)
    )
    filled = json.loads(
        client.passthrough_response(
            json.dumps(message).encode(), Usage(input_tokens=4, output_tokens=1), 0
        )
    )

    assert kept == {**message, "model": "team-claude", "usage": usage}
    assert filled["usage"] == {
        "input_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }


def test_passthrough_events_keep_their_data_and_always_have_an_event_line() -> None:
    client = AnthropicClient(model="team-claude", request_id="req_1")
    start = _frame(
        "message_start", {"type": "message_start", "message": {"model": "up", "usage": {}}}
    )
    unnamed = 'data: {"type":"content_block_stop","index":0}\n\n'
    ping = 'event: ping\ndata: {"type": "ping"}\n\n'

    relayed = b"".join(
        client.passthrough_event(event, [], lambda _: 0)
        for event in SSEDecoder().feed((start + unnamed + ping).encode())
    )

    events = _sse_events(relayed)
    assert events == [
        (
            "message_start",
            {"type": "message_start", "message": {"model": "team-claude", "usage": {}}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("ping", {"type": "ping"}),
    ]
    assert b'data: {"type": "ping"}' in relayed  # relayed as the upstream wrote it
    assert (
        client.stream_close(Usage(), 5, complete=True, error=None)
        == b": x-tollgate-cost: 0.000000005\n\n"
    )


async def test_bc23_n_above_one_is_refused_not_dropped() -> None:
    request = _request(Message("user", [Text("one word")]), n=3)

    async with httpx.AsyncClient() as http:
        with pytest.raises(GatewayError, match="`n` was 3") as refused:
            await AnthropicUpstream().build(_channel(), request, None, client_headers={}, http=http)

    assert (refused.value.status, refused.value.param) == (400, "n")
