"""Cloudflare Workers AI channels behind ``/v1/chat/completions``: native and OpenAI-compatible."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import openai
import pytest

from gateway.tokens import count_tokens
from shared.services import admin
from tests.support import Provisioner, Setup, replay, simulator_requests, sse_data

pytestmark = pytest.mark.e2e

ACCOUNT = "acct-test"


def workers_base(simulator_url: str, fault: str | None = None) -> str:
    """Return a Workers AI channel base URL on the simulator."""
    prefix = f"/_fault/{fault}" if fault else ""
    return f"{simulator_url}{prefix}/client/v4/accounts/{ACCOUNT}"


async def replay_base(simulator_url: str, chunks: list[str], **kwargs: Any) -> str:
    """Return a Workers AI channel base URL that replays exactly ``chunks``."""
    openai_base = await replay(simulator_url, chunks, **kwargs)
    return openai_base.removesuffix("/v1") + f"/client/v4/accounts/{ACCOUNT}"


async def add_channel(
    provision: Provisioner,
    models: list[str],
    *,
    base_url: str,
    kind: str = "workers-ai",
    settings: dict[str, Any] | None = None,
    model_map: dict[str, str] | None = None,
    priority: int = 0,
) -> int:
    """Create a channel of any kind, with settings (the provisioner's helper takes none)."""
    async with provision.sessions() as session:
        row = await admin.add_channel(
            session,
            f"channel-{secrets.token_hex(4)}",
            kind=kind,
            base_url=base_url,
            api_key="cf-upstream-token",
            models=models,
            model_map=model_map,
            priority=priority,
            settings=settings,
        )
    return row.id


async def workers_setup(
    provision: Provisioner,
    *,
    fault: str | None = None,
    api: str | None = None,
    base_url: str | None = None,
) -> tuple[Setup, str]:
    """Provision a model served by one Workers AI channel; returns it and its upstream name."""
    setup = await provision.setup(channel=False)
    upstream = f"@cf/test/{setup.model}"
    await add_channel(
        provision,
        [setup.model],
        base_url=base_url or workers_base(provision.simulator_url, fault),
        settings={"api": api} if api else None,
        model_map={setup.model: upstream},
    )
    await provision.wait_visible(setup.key, setup.model)
    return setup, upstream


async def sent_to(provision: Provisioner, upstream: str) -> list[dict[str, Any]]:
    """Return what the simulator received for ``upstream`` (its path or its body's model)."""
    requests = await simulator_requests(provision.simulator_url)
    return [
        r
        for r in requests
        if upstream in r["path"]
        or (isinstance(r["body"], dict) and r["body"].get("model") == upstream)
    ]


async def test_native_non_stream_bills_upstream_usage(provision: Provisioner) -> None:
    setup, upstream = await workers_setup(provision)

    raw = await provision.openai(setup.key).chat.completions.with_raw_response.create(
        model=setup.model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=40,
    )
    completion = raw.parse()

    assert completion.model == setup.model
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    [sent] = await sent_to(provision, upstream)
    assert sent["path"] == f"/client/v4/accounts/{ACCOUNT}/ai/run/{upstream}"
    assert sent["headers"]["authorization"] == "Bearer cf-upstream-token"
    assert sent["body"] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 40,
    }
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row["estimated"] is False and row["status"] == "ok"
    assert row["upstream_model"] == upstream
    assert raw.headers["x-tollgate-cost"] == usage.model_extra["cost"]


async def test_native_stream_with_usage(provision: Provisioner) -> None:
    setup, upstream = await workers_setup(provision)

    stream = await provision.openai(setup.key).chat.completions.create(
        model=setup.model,
        messages=[{"role": "user", "content": "Say hello world"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    [sent] = await sent_to(provision, upstream)
    assert sent["body"]["stream"] is True
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["estimated"] is False and row["status"] == "ok"
    assert (row["input_tokens"], row["output_tokens"]) == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_native_without_usage_is_estimated(provision: Provisioner, stream: bool) -> None:
    setup, _ = await workers_setup(provision, fault="no_usage=1,text=Hello+world")
    client = provision.openai(setup.key)

    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=setup.model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = await client.chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
        text = completion.choices[0].message.content or ""
        assert completion.usage is not None
        assert completion.usage.model_extra["estimated"] is True

    assert text == "Hello world"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["estimated"] is True and row["status"] == "ok"
    assert row["output_tokens"] == count_tokens("Hello world")
    assert row["input_tokens"] > 0 and row["cost"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_openai_compatible_api(provision: Provisioner, stream: bool) -> None:
    setup, upstream = await workers_setup(provision, api="openai")
    client = provision.openai(setup.key)

    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=setup.model,
                messages=[{"role": "user", "content": "hi"}],
                max_completion_tokens=30,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
        assert all(c.model == setup.model for c in chunks)
    else:
        completion = await client.chat.completions.create(
            model=setup.model,
            messages=[{"role": "user", "content": "hi"}],
            max_completion_tokens=30,
        )
        assert completion.choices[0].message.content
        usage = completion.usage
    assert usage is not None

    [sent] = await sent_to(provision, upstream)
    assert sent["path"] == f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert sent["body"]["model"] == upstream
    assert sent["body"]["max_tokens"] == 30 and "max_completion_tokens" not in sent["body"]
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        False,
    )


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_native_tool_calls(provision: Provisioner, stream: bool) -> None:
    setup, upstream = await workers_setup(provision)
    client = provision.openai(setup.key)
    messages = [{"role": "user", "content": "Weather in Paris?"}]

    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=setup.model, messages=messages, tools=TOOLS, stream=True
            )
        ]
        calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
        assert calls[0].id and calls[0].function.name == "get_weather"
        arguments = "".join(c.function.arguments or "" for c in calls)
        finish = [
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        ]
        assert finish == ["tool_calls"]
    else:
        completion = await client.chat.completions.create(
            model=setup.model, messages=messages, tools=TOOLS
        )
        [call] = completion.choices[0].message.tool_calls or []
        assert call.id.startswith("call_") and call.function.name == "get_weather"
        arguments = call.function.arguments
        assert completion.choices[0].finish_reason == "tool_calls"
    assert json.loads(arguments)["city"]

    [sent] = await sent_to(provision, upstream)
    assert sent["body"]["tools"][0]["function"]["name"] == "get_weather"

    # The tool's answer goes back in the native message form.
    follow = await client.chat.completions.create(
        model=setup.model,
        tools=TOOLS,
        messages=[
            *messages,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21C and sunny"},
        ],
    )
    assert follow.choices[0].message.content
    sent = (await sent_to(provision, upstream))[-1]
    assert sent["body"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "21C and sunny",
    }
    assert sent["body"]["messages"][-2]["tool_calls"][0]["id"] == "call_1"


async def test_daily_allocation_429_only_channel(provision: Provisioner) -> None:
    body = (
        '{"result":null,"success":false,"errors":[{"code":3036,"message":'
        '"Account has reached its daily free allocation"}],"messages":[]}'
    )
    base = await replay_base(
        provision.simulator_url, [body], status=429, content_type="application/json"
    )
    setup, _ = await workers_setup(provision, base_url=base)

    with pytest.raises(openai.RateLimitError) as refused:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "rate_limit_exceeded"
    assert "daily free allocation" in refused.value.message
    assert "3036" in refused.value.message
    assert refused.value.response.headers["x-request-id"].startswith("req_")
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] == "error" and row["cost"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("failure", ["status=429", "status=500", "status=503", "cut=0"])
async def test_failover_to_second_channel(
    provision: Provisioner, failure: str, stream: bool
) -> None:
    setup = await provision.setup(channel=False)
    first = await add_channel(
        provision,
        [setup.model],
        base_url=workers_base(provision.simulator_url, failure),
        priority=1,
    )
    second = await add_channel(
        provision, [setup.model], base_url=workers_base(provision.simulator_url), priority=2
    )
    await provision.wait_visible(setup.key, setup.model)
    client = provision.openai(setup.key)

    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=setup.model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        ]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = await client.chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["channel_id"], row["attempts"], row["status"]) == (second, 2, "ok")
    assert first != second


async def test_bad_request_is_final(provision: Provisioner) -> None:
    setup = await provision.setup(channel=False)
    await add_channel(
        provision,
        [setup.model],
        base_url=workers_base(provision.simulator_url, "status=400"),
        priority=1,
    )
    await add_channel(
        provision, [setup.model], base_url=workers_base(provision.simulator_url), priority=2
    )
    await provision.wait_visible(setup.key, setup.model)

    with pytest.raises(openai.BadRequestError) as refused:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "upstream_rejected_request"
    assert "5006" in refused.value.message
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["attempts"] == 1 and row["cost"] == 0


async def test_unsupported_parameter_is_refused_not_dropped(provision: Provisioner) -> None:
    setup, upstream = await workers_setup(provision)

    with pytest.raises(openai.BadRequestError) as refused:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert refused.value.code == "unsupported_parameter"
    assert await sent_to(provision, upstream) == []


async def test_mid_stream_error_ends_stream_and_bills_delivered(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    setup, _ = await workers_setup(provision, fault="error_after=2,text=one+two+three+four")

    async with http.stream(
        "POST",
        f"{provision.gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {setup.key}"},
        json={
            "model": setup.model,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as response:
        body = (await response.aread()).decode()

    assert response.status_code == 200
    data = sse_data(body)
    chunks = [json.loads(d) for d in data if d.startswith("{")]
    text = "".join(
        (c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices")
    )
    assert text == "one two"
    assert "error" in chunks[-1]
    assert "[DONE]" not in data
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] == "error" and row["estimated"] is True
    assert row["output_tokens"] == count_tokens("one two")


async def test_stream_cut_without_done_is_truncated(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    base = await replay_base(
        provision.simulator_url,
        ['data: {"response":"Hel"}\n\n', 'data: {"response":"lo"}\n\n'],
        close="abort",
    )
    setup, _ = await workers_setup(provision, base_url=base)

    async with http.stream(
        "POST",
        f"{provision.gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {setup.key}"},
        json={
            "model": setup.model,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as response:
        body = (await response.aread()).decode()

    data = sse_data(body)
    assert "[DONE]" not in data
    assert json.loads(data[-1])["error"]["code"] in ("upstream_truncated", "upstream_unreachable")
    finishes = [
        c["choices"][0]["finish_reason"]
        for c in (json.loads(d) for d in data if d.startswith("{"))
        if c.get("choices") and c["choices"][0].get("finish_reason")
    ]
    assert finishes == []
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] in ("truncated", "error") and row["estimated"] is True
    assert row["output_tokens"] == count_tokens("Hello")
