"""The Responses API surface: request decoding, the response object and the event stream."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gateway.canonical import (
    ChatResponse,
    Choice,
    Finish,
    Image,
    Message,
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
from gateway.errors import GatewayError
from gateway.surfaces.responses import (
    ResponsesClient,
    ResponsesContext,
    decode_responses_request,
    encode_encrypted,
)
from shared.money import Usage

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command.",
    "strict": False,
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
}
CRM = {
    "type": "namespace",
    "name": "crm",
    "description": "Customer records.",
    "tools": [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find a customer.",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        }
    ],
}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}


def decode(**body: Any):
    return decode_responses_request({"model": "m", **body})


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = block.split("\n")
        if not block or lines[0].startswith(":"):
            continue
        assert lines[0].startswith("event: ")
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        events.append(data)
    return events


def test_decode_string_input_and_instructions() -> None:
    request, context = decode(input="hi", instructions="Be brief.", max_output_tokens=50)

    assert request.messages == [
        Message("system", [Text("Be brief.")]),
        Message("user", [Text("hi")]),
    ]
    assert request.max_output_tokens == 50
    assert not request.stream
    assert context.echo["instructions"] == "Be brief."


def test_decode_codex_style_request() -> None:
    request, context = decode(
        instructions="You are Codex.",
        input=[
            {
                "type": "message",
                "id": "msg_dev",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Sandbox: read-only."}],
            },
            {
                "type": "message",
                "id": "msg_user",
                "role": "user",
                "content": [{"type": "input_text", "text": "List files."}],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "I should run ls."}],
                "encrypted_content": "gAAAA-opaque-from-openai",
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "shell",
                "arguments": '{"command":"ls"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
        tools=[SHELL, CRM, {"type": "web_search"}, {"type": "local_shell"}],
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning={"effort": "medium", "summary": "auto"},
        store=False,
        stream=True,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="conv-1",
        client_metadata={"originator": "codex_cli_rs"},
        text={"verbosity": "medium"},
    )

    assert request.stream
    assert [m.role for m in request.messages] == ["system", "system", "user", "assistant", "tool"]
    assert request.messages[3].parts == [
        Reasoning(text="I should run ls."),
        ToolCall(id="call_1", name="shell", arguments='{"command":"ls"}'),
    ]
    assert request.messages[4].parts == [
        ToolResult(call_id="call_1", content="a.txt", name="shell")
    ]
    assert [t.name for t in request.tools] == ["shell", "crm__lookup"]
    assert request.tools[1].description == "Customer records.\n\nFind a customer."
    assert request.tool_choice == ToolChoice("auto")
    assert request.parallel_tool_calls is False
    assert request.reasoning == ReasoningSettings(effort="medium", include=True)
    assert context.summary and context.encrypted_reasoning
    assert context.tool_names["crm__lookup"].namespace == "crm"


def test_decode_assistant_history_merges_into_one_turn() -> None:
    request, _ = decode(
        input=[
            {"role": "user", "content": "hi"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me check."}],
            },
            {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "1"},
            {"type": "function_call_output", "call_id": "c2", "output": "2"},
            {"role": "assistant", "content": "Done."},
        ]
    )
    assert [m.role for m in request.messages] == ["user", "assistant", "tool", "assistant"]
    assert len(request.messages[1].parts) == 3
    assert [p.call_id for p in request.messages[2].parts if isinstance(p, ToolResult)] == [
        "c1",
        "c2",
    ]


def test_decode_namespace_call_and_custom_tool_history() -> None:
    request, context = decode(
        input=[
            {"role": "user", "content": "go"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "namespace": "crm",
                "arguments": '{"id":"7"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "Ann"},
            {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** x"},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"},
        ],
        tools=[CRM, PATCH],
    )
    assert request.messages[1].parts == [
        ToolCall(id="c1", name="crm__lookup", arguments='{"id":"7"}')
    ]
    assert request.messages[2].parts == [
        ToolResult(call_id="c1", content="Ann", name="crm__lookup")
    ]
    assert request.messages[3].parts == [
        ToolCall(id="c2", name="apply_patch", arguments='{"input":"*** x"}')
    ]
    patch = request.tools[1]
    assert patch.parameters["required"] == ["input"]
    assert "lark" in patch.parameters["properties"]["input"]["description"]
    assert context.tool_names["apply_patch"].custom


def test_decode_images_and_tool_output_parts() -> None:
    request, _ = decode(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what?"},
                    {"type": "input_image", "image_url": "data:image/jpg;base64,/9j/4A=="},
                    {"type": "input_image", "image_url": "https://example.test/cat.png"},
                ],
            },
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw=="},
                ],
            },
        ]
    )
    assert request.messages[0].parts == [
        Text("what?"),
        Image("image/jpeg", data="/9j/4A=="),
        Image("", url="https://example.test/cat.png"),
    ]
    assert request.messages[2].parts == [
        ToolResult(call_id="c", content="see", name="f"),
        Image("image/png", data="iVBORw=="),
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0]"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({}, "input"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ],
)
def test_decode_refuses_with_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as refused:
        decode(**body)
    assert refused.value.status == 400
    assert refused.value.param == param


def test_decode_tool_choice_forms() -> None:
    tools = [SHELL, CRM, {"type": "web_search"}]
    request, _ = decode(input="x", tools=tools, tool_choice={"type": "function", "name": "shell"})
    assert request.tool_choice == ToolChoice("tool", "shell")

    request, _ = decode(
        input="x",
        tools=tools,
        tool_choice={"type": "function", "name": "lookup", "namespace": "crm"},
    )
    assert request.tool_choice == ToolChoice("tool", "crm__lookup")

    request, _ = decode(
        input="x",
        tools=tools,
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "shell"}],
        },
    )
    assert request.tool_choice == ToolChoice("required")
    assert [t.name for t in request.tools] == ["shell"]

    request, _ = decode(input="x", tools=tools, tool_choice={"type": "web_search"})
    assert request.tool_choice == ToolChoice("auto")


def test_decode_text_format_and_reasoning_effort() -> None:
    schema = {"type": "object"}
    request, _ = decode(
        input="x",
        text={"format": {"type": "json_schema", "name": "r", "schema": schema, "strict": True}},
        reasoning={"effort": "xhigh"},
    )
    assert request.response_schema == schema
    assert request.reasoning == ReasoningSettings(effort="high", include=False)

    request, _ = decode(
        input="x", text={"format": {"type": "json_object"}}, reasoning={"effort": "none"}
    )
    assert request.json_mode and request.reasoning is None


def test_encrypted_reasoning_round_trips() -> None:
    part = Reasoning(text="thinking", signature="sig-1")
    request, _ = decode(
        input=[
            {"role": "user", "content": "x"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "encrypted_content": encode_encrypted(part),
            },
        ]
    )
    assert request.messages[1].parts == [part]


def client(context: ResponsesContext | None = None, **request: Any) -> ResponsesClient:
    if context is None:
        _, context = decode(input="x", **request)
    return ResponsesClient(model="team-model", request_id="req_abc", context=context)


def test_encode_response_object() -> None:
    _, context = decode(
        input="x",
        tools=[SHELL, CRM],
        reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    answer = ChatResponse(
        id="x",
        model="upstream",
        choices=[
            Choice(
                index=0,
                parts=[
                    Reasoning(text="hmm", signature="s"),
                    Text("Hello"),
                    Text(" world"),
                    ToolCall(id="call_1", name="crm__lookup", arguments='{"id":"7"}'),
                ],
                finish_reason="tool_calls",
            )
        ],
    )
    usage = Usage(input_tokens=10, cached_input_tokens=4, output_tokens=5, reasoning_tokens=2)
    body = json.loads(client(context).encode_response(answer, usage, 1_500_000))

    assert body["id"] == "resp_abc" and body["object"] == "response"
    assert body["status"] == "completed" and body["model"] == "team-model"
    reasoning, message, call = body["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert reasoning["encrypted_content"] == encode_encrypted(Reasoning(text="hmm", signature="s"))
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text"
    assert message["content"][0]["text"] == "Hello world"
    assert call == {
        "id": call["id"],
        "type": "function_call",
        "status": "completed",
        "arguments": '{"id":"7"}',
        "call_id": "call_1",
        "name": "lookup",
        "namespace": "crm",
    }
    assert call["id"].startswith("fc_")
    assert body["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
        "cost": "0.0015",
    }


def test_encode_response_truncated_is_incomplete() -> None:
    answer = ChatResponse(
        id="x", model="m", choices=[Choice(index=0, parts=[Text("Qu")], finish_reason="length")]
    )
    body = json.loads(client().encode_response(answer, Usage(input_tokens=1, output_tokens=2), 0))
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_text_event_sequence() -> None:
    writer = client()
    raw = writer.stream_open()
    raw += writer.encode_events([TextDelta("Hel"), TextDelta("lo")])
    raw += writer.encode_events(
        [Finish("stop"), UsageUpdate(Usage(input_tokens=3, output_tokens=2))]
    )
    raw += writer.stream_close(Usage(input_tokens=3, output_tokens=2), 7, complete=True, error=None)
    events = sse_events(raw)

    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello"
    final = events[-1]["response"]
    assert final["id"] == "resp_abc" and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["input_tokens"] == 3 and final["usage"]["output_tokens"] == 2
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["usage"] is None


def test_stream_reasoning_then_namespaced_call() -> None:
    writer = client(tools=[CRM], reasoning={"summary": "auto"})
    raw = writer.stream_open()
    raw += writer.encode_events(
        [
            ReasoningDelta(text="think"),
            ReasoningDelta(signature="sig"),
            ToolCallStart(call_index=0, id="toolu_1", name="crm__lookup"),
            ToolCallDelta(call_index=0, arguments='{"id":'),
            ToolCallDelta(call_index=0, arguments='"7"}'),
            Finish("tool_calls"),
        ]
    )
    raw += writer.stream_close(Usage(input_tokens=3, output_tokens=9), 1, complete=True, error=None)
    events = sse_events(raw)
    kinds = [e["type"] for e in events]

    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = events[12]["item"]
    assert call["type"] == "function_call"
    assert (call["name"], call["namespace"], call["call_id"]) == ("lookup", "crm", "toolu_1")
    assert call["arguments"] == '{"id":"7"}'
    assert events[11]["arguments"] == '{"id":"7"}' and events[11]["name"] == "lookup"
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "function_call"]


def test_stream_custom_tool_call_item() -> None:
    writer = client(tools=[PATCH])
    raw = writer.stream_open()
    raw += writer.encode_events(
        [
            ToolCallStart(call_index=0, id="call_1", name="apply_patch"),
            ToolCallDelta(call_index=0, arguments='{"input":"*** Begin Patch"}'),
            Finish("tool_calls"),
        ]
    )
    raw += writer.stream_close(Usage(), 0, complete=True, error=None)
    events = sse_events(raw)
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["type"] == "custom_tool_call"
    assert done["input"] == "*** Begin Patch" and done["name"] == "apply_patch"
    assert "response.custom_tool_call_input.done" in [e["type"] for e in events]


def test_stream_length_finish_is_incomplete() -> None:
    writer = client()
    raw = writer.stream_open() + writer.encode_events([TextDelta("Qu"), Finish("length")])
    raw += writer.stream_close(Usage(input_tokens=1, output_tokens=2), 0, complete=True, error=None)
    last = sse_events(raw)[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_truncation_and_errors_fail_the_response() -> None:
    writer = client()
    raw = writer.stream_open() + writer.encode_events([TextDelta("Hel")])
    raw += writer.stream_close(Usage(output_tokens=1), 0, complete=False, error=None)
    events = sse_events(raw)
    assert events[-2]["type"] == "response.output_item.done"
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "upstream_truncated"
    assert events[-1]["response"]["status"] == "failed"

    writer = client()
    raw = writer.stream_open() + writer.encode_events(
        [
            TextDelta("Hel"),
            UsageUpdate(Usage(input_tokens=5, output_tokens=1)),
            StreamError("upstream overloaded"),
        ]
    )
    events = sse_events(raw)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "upstream overloaded"
    assert events[-1]["response"]["usage"]["input_tokens"] == 5
    # The engine still closes the stream; nothing more may follow the terminal event.
    assert writer.stream_close(Usage(), 0, complete=False, error=None) == b""


def test_error_body_is_openai_shaped() -> None:
    body = client().error_body(GatewayError(404, "model_not_found", "no such model"))
    assert msgspec.json.decode(body) == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


def test_tools_are_canonical() -> None:
    request, _ = decode(input="x", tools=[SHELL])
    assert request.tools == [
        Tool(name="shell", description="Run a command.", parameters=SHELL["parameters"])
    ]


def test_call_signature_rides_on_a_reasoning_item_and_comes_back() -> None:
    writer = client(include=["reasoning.encrypted_content"])
    raw = writer.stream_open()
    raw += writer.encode_events(
        [
            ToolCallStart(call_index=0, id="call_1", name="f", signature="gemini-sig"),
            ToolCallDelta(call_index=0, arguments="{}"),
            Finish("tool_calls"),
        ]
    )
    raw += writer.stream_close(Usage(), 0, complete=True, error=None)
    output = sse_events(raw)[-1]["response"]["output"]
    carrier, call = output
    assert carrier["type"] == "reasoning" and call["type"] == "function_call"

    request, _ = decode(
        input=[
            {"role": "user", "content": "x"},
            carrier,
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        ]
    )
    assert request.messages[1].parts == [
        Reasoning(signature="gemini-sig"),
        ToolCall(id="call_1", name="f", arguments="{}"),
    ]

    answer = ChatResponse(
        id="x",
        model="m",
        choices=[
            Choice(
                index=0,
                parts=[ToolCall(id="c", name="f", arguments="{}", signature="s2")],
                finish_reason="tool_calls",
            )
        ],
    )
    body = json.loads(
        client(include=["reasoning.encrypted_content"]).encode_response(answer, Usage(), 0)
    )
    assert [i["type"] for i in body["output"]] == ["reasoning", "function_call"]
    # Without `include`, no carrier: the Gemini codec sends its documented sentinel instead.
    body = json.loads(client().encode_response(answer, Usage(), 0))
    assert [i["type"] for i in body["output"]] == ["function_call"]
