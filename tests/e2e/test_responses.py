"""``/v1/responses`` through the OpenAI SDK and a Codex-CLI-like client, on every upstream kind."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from gateway.providers import upstream_codecs
from tests.e2e.test_workers_ai import add_channel, workers_base
from tests.support import Provisioner, Setup, simulator_requests

pytestmark = pytest.mark.e2e

KINDS = [
    pytest.param(
        kind,
        marks=pytest.mark.skipif(
            kind not in upstream_codecs(), reason=f"no `{kind}` upstream codec in this tree"
        ),
    )
    for kind in ("openai", "workers-ai", "anthropic", "gemini")
]


def base_url(provision: Provisioner, kind: str, fault: str | None = None) -> str:
    prefix = f"/_fault/{fault}" if fault else ""
    root = f"{provision.simulator_url}{prefix}"
    if kind == "workers-ai":
        return workers_base(provision.simulator_url, fault)
    return f"{root}/v1" if kind == "openai" else root


async def setup_kind(
    provision: Provisioner, kind: str = "openai", fault: str | None = None
) -> tuple[Setup, str]:
    setup = await provision.setup(channel=False)
    upstream = f"up-{kind}-{setup.model}"
    await add_channel(
        provision,
        [setup.model],
        base_url=base_url(provision, kind, fault),
        kind=kind,
        model_map={setup.model: upstream},
    )
    await provision.wait_visible(setup.key, setup.model)
    return setup, upstream


async def sent_for(provision: Provisioner, upstream: str) -> list[dict[str, Any]]:
    return [
        r
        for r in await simulator_requests(provision.simulator_url)
        if upstream in r["path"]
        or (isinstance(r["body"], dict) and r["body"].get("model") == upstream)
    ]


async def read_events(
    provision: Provisioner, key: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{provision.gateway_url}/v1/responses",
            headers={"authorization": f"Bearer {key}", "originator": "codex_cli_rs"},
            json=body,
        ) as response,
    ):
        text = (await response.aread()).decode()
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert lines[0].startswith("event: "), block
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        events.append((data["type"], data))
    return response, events


async def test_sdk_non_stream(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision)

    raw = await provision.openai(setup.key).responses.with_raw_response.create(
        model=setup.model, input="Say hello", instructions="Be brief.", max_output_tokens=100
    )
    response = raw.parse()

    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.model == setup.model
    assert response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    [sent] = await sent_for(provision, upstream)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["body"]["max_completion_tokens"] == 100
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["endpoint"], row["status"], row["estimated"]) == ("responses", "ok", False)
    assert (row["input_tokens"], row["output_tokens"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    assert raw.headers["x-tollgate-cost"] == response.usage.model_extra["cost"]


@pytest.mark.parametrize("kind", KINDS)
async def test_sdk_stream(provision: Provisioner, kind: str) -> None:
    setup, _ = await setup_kind(provision, kind)

    stream = await provision.openai(setup.key).responses.create(
        model=setup.model, input=[{"role": "user", "content": "Say hello world"}], stream=True
    )
    events = [event async for event in stream]

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas and final.output_text == deltas
    assert final.id == events[0].response.id
    assert final.usage is not None and final.usage.output_tokens > 0
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] == "ok" and row["endpoint"] == "responses" and row["stream"] is True
    assert (row["input_tokens"], row["output_tokens"]) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )


CODEX_TOOLS = [
    {
        "type": "namespace",
        "name": "repo",
        "description": "Repository helpers.",
        "tools": [
            {
                "type": "function",
                "name": "read_file",
                "description": "Read a file.",
                "strict": False,
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                    "additionalProperties": False,
                },
            }
        ],
    },
    {
        "type": "function",
        "name": "shell",
        "description": "Runs a shell command and returns its output.",
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}},
                "workdir": {"type": "string"},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    {"type": "web_search"},
]


def codex_body(model: str, extra_input: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "model": model,
        "instructions": "You are a coding agent running in the Codex CLI.",
        "input": [
            {
                "type": "message",
                "id": "msg_dev_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>read-only</permissions>"}],
            },
            {
                "type": "message",
                "id": "msg_user_1",
                "role": "user",
                "content": [{"type": "input_text", "text": "Show me README.md"}],
            },
            *(extra_input or ()),
        ],
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-codex-session",
        "client_metadata": {"originator": "codex_cli_rs", "session": "s1"},
        "text": {"verbosity": "medium"},
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_codex_cli_request(provision: Provisioner, kind: str) -> None:
    """BC34: served by any upstream kind, ends with `response.completed`, ids and usage."""
    setup, upstream = await setup_kind(provision, kind)

    response, events = await read_events(provision, setup.key, codex_body(setup.model))

    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [k for k, _ in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    created, completed = events[0][1]["response"], events[-1][1]["response"]
    assert completed["id"] == created["id"] and completed["id"].startswith("resp_")
    usage = completed["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # The simulated model calls the first tool: the namespaced one, returned under its namespace.
    calls = [d["item"] for k, d in events if k == "response.output_item.done"]
    call = next(i for i in calls if i["type"] == "function_call")
    assert (call["name"], call["namespace"]) == ("read_file", "repo")
    assert json.loads(call["arguments"])["path"]
    assert call["call_id"]
    assert "response.function_call_arguments.done" in kinds
    for item in completed["output"]:
        if item["type"] == "reasoning":
            assert item["encrypted_content"].startswith("tg1.")

    # What the upstream got: no web_search, flattened names, the developer text as system.
    [sent] = await sent_for(provision, upstream)
    assert "web_search" not in json.dumps(sent["body"])
    assert "repo__read_file" in json.dumps(sent["body"])
    assert "<permissions>read-only</permissions>" in json.dumps(sent["body"])

    # The next turn sends the reasoning, the call and its output back.
    history = [
        *[i for i in completed["output"] if i["type"] in ("reasoning", "function_call")],
        {"type": "function_call_output", "call_id": call["call_id"], "output": "# Title"},
    ]
    response, events = await read_events(
        provision, setup.key, codex_body(setup.model, extra_input=history)
    )
    assert response.status_code == 200
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["output"]
    text = "".join(d["delta"] for k, d in events if k == "response.output_text.delta")
    assert text
    await provision.wait_settled()
    rows = await provision.usage_rows(setup.tenant_id)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["endpoint"] == "responses" and r["cost"] > 0 for r in rows)


async def test_codex_history_reaches_openai_upstream_as_chat(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "openai")
    history = [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Read it."}],
            "encrypted_content": "gAAAA-foreign",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_7",
            "name": "read_file",
            "namespace": "repo",
            "arguments": '{"path":"README.md"}',
        },
        {"type": "function_call_output", "call_id": "call_7", "output": "# Title"},
    ]

    response, events = await read_events(
        provision, setup.key, codex_body(setup.model, extra_input=history)
    )

    assert events[-1][0] == "response.completed"
    [sent] = await sent_for(provision, upstream)
    messages = sent["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user", "assistant", "tool"]
    assert messages[3]["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "repo__read_file", "arguments": '{"path":"README.md"}'},
        }
    ]
    assert messages[4] == {"role": "tool", "tool_call_id": "call_7", "content": "# Title"}
    assert sent["body"]["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in sent["body"]["tools"]] == ["repo__read_file", "shell"]


async def test_output_limit_gives_incomplete(provision: Provisioner) -> None:
    setup, _ = await setup_kind(provision, "openai", fault="words=40")

    response = await provision.openai(setup.key).responses.create(
        model=setup.model, input="Tell me a story", max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"

    stream = await provision.openai(setup.key).responses.create(
        model=setup.model, input="Tell me a story", max_output_tokens=16, stream=True
    )
    events = [e async for e in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage is not None


async def test_workers_ai_without_usage_is_estimated(provision: Provisioner) -> None:
    setup, _ = await setup_kind(provision, "workers-ai", fault="no_usage=1,text=Hello+world")

    stream = await provision.openai(setup.key).responses.create(
        model=setup.model, input="hi", stream=True
    )
    events = [e async for e in stream]

    final = events[-1].response
    assert events[-1].type == "response.completed" and final.output_text == "Hello world"
    assert final.usage.model_extra["estimated"] is True
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["estimated"] is True and row["output_tokens"] == final.usage.output_tokens


async def test_mid_stream_failure_ends_with_response_failed(provision: Provisioner) -> None:
    setup, _ = await setup_kind(provision, "openai", fault="error_after=2,text=one+two+three")

    response, events = await read_events(
        provision, setup.key, {"model": setup.model, "input": "hi", "stream": True}
    )

    assert response.status_code == 200
    kinds = [k for k, _ in events]
    assert kinds[-1] == "response.failed"
    assert "response.completed" not in kinds
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert failed["id"] == events[0][1]["response"]["id"]
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] == "error"


async def test_errors_are_openai_shaped(provision: Provisioner, http: httpx.AsyncClient) -> None:
    setup, upstream = await setup_kind(provision, "openai")
    client = provision.openai(setup.key)

    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model="no-such-model", input="hi")
    assert missing.value.code == "model_not_found"
    assert missing.value.response.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.BadRequestError) as stored:
        await client.responses.create(model=setup.model, input="hi", previous_response_id="resp_1")
    assert stored.value.code == "unsupported_parameter"
    assert stored.value.param == "previous_response_id"
    with pytest.raises(openai.AuthenticationError):
        await provision.openai("sk-tg-nope").responses.create(model=setup.model, input="hi")
    assert await sent_for(provision, upstream) == []

    limited, _ = await setup_kind(provision, "openai", fault="status=429,retry_after=20")
    with pytest.raises(openai.RateLimitError) as refused:
        await provision.openai(limited.key).responses.create(
            model=limited.model, input="hi", stream=True
        )
    assert refused.value.response.headers["retry-after"] == "20"
    assert refused.value.response.headers["x-request-id"].startswith("req_")

    response = await http.get(
        f"{provision.gateway_url}/v1/responses", headers={"authorization": f"Bearer {setup.key}"}
    )
    assert response.status_code == 405
    assert response.headers["x-request-id"].startswith("req_")
