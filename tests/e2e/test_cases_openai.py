"""The handed cases (../shared/cases/CASES.md) for OpenAI-compatible streams and billing.

Each upstream is the simulator replaying the exact bytes of the case, at the case's write
boundaries.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest

from gateway.surfaces.openai import decode_chat_request
from gateway.tokens import count_prompt, count_tokens
from tests.support import Provisioner, replay, simulator_requests, sse_data

pytestmark = pytest.mark.e2e

BC01_BYTES = (
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}\n\n: keep-alive\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\ndata:[DONE]\n\n'
)


async def _stream(
    provision: Provisioner, key: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[str]]:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{provision.gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json=body,
        ) as response,
    ):
        text = (await response.aread()).decode()
    return response, sse_data(text)


def _contents(data: list[str]) -> str:
    parts = []
    for item in data:
        if item.startswith("{"):
            for choice in json.loads(item).get("choices") or ():
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


def _finish_reasons(data: list[str]) -> list[str]:
    return [
        choice["finish_reason"]
        for item in data
        if item.startswith("{")
        for choice in json.loads(item).get("choices") or ()
        if choice.get("finish_reason")
    ]


def _chat(model: str, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def test_bc01_split_events_survive_every_cut(provision: Provisioner) -> None:
    setup = await provision.setup(channel=False)
    cut_at = BC01_BYTES.index("lo")
    upstream = await replay(provision.simulator_url, [BC01_BYTES[:cut_at], BC01_BYTES[cut_at:]])
    await provision.channel([setup.model], base_url=upstream)
    await provision.wait_visible(setup.key, setup.model)
    body = _chat(setup.model, stream=True)

    response, data = await _stream(provision, setup.key, body)

    assert response.status_code == 200
    assert _contents(data) == "Hello world"
    assert _finish_reasons(data) == ["stop"]
    assert data.count("[DONE]") == 1 and data[-1] == "[DONE]"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["output_tokens"] == count_tokens("Hello world")
    assert row["estimated"] is True and row["status"] == "ok"


async def test_bc01_every_byte_offset_gives_the_same_stream(provision: Provisioner) -> None:
    setup = await provision.setup(balance="100", channel=False)
    raw = BC01_BYTES.encode()
    limit = asyncio.Semaphore(8)

    async def one(offset: int) -> tuple[int, str, list[str], int]:
        async with limit:
            first, second = raw[:offset], raw[offset:]
            # Cuts inside a multi-byte character cannot be sent as text chunks; BC01 is ASCII.
            upstream = await replay(provision.simulator_url, [first.decode(), second.decode()])
            model = f"{setup.model}-{offset}"
            await provision.price(model, "2", "8")
            await provision.channel([model], base_url=upstream)
            await provision.wait_visible(setup.key, model)
            response, data = await _stream(provision, setup.key, _chat(model, stream=True))
            return (
                response.status_code,
                _contents(data),
                _finish_reasons(data),
                data.count("[DONE]"),
            )

    results = await asyncio.gather(*(one(offset) for offset in range(1, len(raw), 3)))

    wrong = [r for r in results if r != (200, "Hello world", ["stop"], 1)]
    assert wrong == []


async def test_bc03_openai_stream_ends_with_exactly_one_done(provision: Provisioner) -> None:
    setup = await provision.setup()

    response, data = await _stream(provision, setup.key, _chat(setup.model, stream=True))

    assert response.status_code == 200
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1


async def test_bc03_truncated_stream_is_an_error_not_a_stop(provision: Provisioner) -> None:
    chunks = [BC01_BYTES.split("\n\n")[0] + "\n\n"]
    setup = await provision.setup(upstream=await replay(provision.simulator_url, chunks))

    response, data = await _stream(provision, setup.key, _chat(setup.model, stream=True))

    assert response.status_code == 200
    assert _contents(data) == "Hello"
    assert "stop" not in _finish_reasons(data)
    assert "[DONE]" not in data
    assert json.loads(data[-1])["error"]["code"] == "upstream_truncated"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["status"] == "truncated"
    assert row["output_tokens"] == count_tokens("Hello")


BC04_TAIL = [
    'data: {"id":"c3","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"Hi there"},"finish_reason":null}],'
    '"usage":null}\n\n',
    'data: {"id":"c3","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
    'data: {"id":"c3","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[],'
    '"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}\n\n',
    "data: [DONE]\n\n",
]


@pytest.mark.parametrize("include_usage", [True, False])
async def test_bc04_usage_chunk_only_when_asked(
    provision: Provisioner, include_usage: bool
) -> None:
    setup = await provision.setup(upstream=await replay(provision.simulator_url, BC04_TAIL))
    started = time.time() - 1
    extra: dict[str, Any] = {"stream": True}
    if include_usage:
        extra["stream_options"] = {"include_usage": True}

    _, data = await _stream(provision, setup.key, _chat(setup.model, **extra))

    chunks = [json.loads(d) for d in data if d.startswith("{")]
    if include_usage:
        usage_chunk = chunks[-1]
        assert usage_chunk["choices"] == []
        assert {
            k: usage_chunk["usage"][k]
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        } == {
            "prompt_tokens": 9,
            "completion_tokens": 2,
            "total_tokens": 11,
        }
        assert all(c.get("usage") is None for c in chunks[:-1])
    else:
        assert all(c["choices"] for c in chunks)
        assert all("usage" not in c for c in chunks)
    assert all(isinstance(c["choices"], list) for c in chunks)
    [sent] = [
        r
        for r in await simulator_requests(provision.simulator_url)
        if r["time"] >= started
        and "/_replay/" in r["path"]
        and r["body"]
        and r["body"].get("model") == setup.model
    ]
    assert sent["body"]["stream_options"]["include_usage"] is True
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (9, 2, False)


def _delta(content: str, finish: str | None = None) -> str:
    body = {
        "id": "c7",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [
            {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
        ],
    }
    return f"data: {json.dumps(body)}\n\n"


BC07_MESSAGES = [{"role": "user", "content": "Say hello world"}]


async def test_bc07_a_upstream_usage_is_billed(provision: Provisioner) -> None:
    script = [
        _delta("Hello"),
        _delta(" world", "stop"),
        'data: {"id":"c7","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[],'
        '"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}\n\n',
        "data: [DONE]\n\n",
    ]
    setup = await provision.setup(upstream=await replay(provision.simulator_url, script))

    await _stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": BC07_MESSAGES}
    )

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (11, 2, False)


async def test_bc07_b_missing_usage_is_estimated_over_content(provision: Provisioner) -> None:
    script = [_delta("Hello"), _delta(" world"), _delta("", "stop"), "data: [DONE]\n\n"]
    setup = await provision.setup(upstream=await replay(provision.simulator_url, script))

    _, data = await _stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": BC07_MESSAGES}
    )

    assert _contents(data) == "Hello world"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["output_tokens"] == 2
    prompt, _ = decode_chat_request({"model": setup.model, "messages": BC07_MESSAGES})
    assert row["input_tokens"] == count_prompt(prompt)
    assert row["estimated"] is True and row["cost"] > 0


async def test_bc07_c_error_text_is_not_billed_as_output(provision: Provisioner) -> None:
    script = [
        _delta("Hello"),
        'data: {"error":{"message":"upstream overloaded, please retry later","type":"server_error"}}\n\n',
    ]
    setup = await provision.setup(upstream=await replay(provision.simulator_url, script))

    _, data = await _stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": BC07_MESSAGES}
    )

    assert _contents(data) == "Hello"
    assert json.loads(data[-1])["error"]["message"] == "upstream overloaded, please retry later"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["output_tokens"] == count_tokens("Hello") == 1
    assert row["status"] == "error" and row["estimated"] is True


@pytest.mark.parametrize("concurrent", [2, 20])
async def test_bc13_concurrent_requests_cannot_overdraw(
    provision: Provisioner, concurrent: int
) -> None:
    # Input is free and output costs 1,000 USD per million tokens, so a hold for
    # max_tokens=60 is exactly 0.06 USD; tenant and key each have 0.10 USD.
    setup = await provision.setup(
        balance="0.1",
        input_price="0",
        output_price="1000",
        fault="delay=0.5",
        key_options={"spend_limit": "0.1"},
    )
    client = provision.openai(setup.key)

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model=setup.model, messages=[{"role": "user", "content": "x"}], max_tokens=60
            )
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            assert exc.body["type"] == "insufficient_quota"  # type: ignore[index]
            return "refused"
        return "served"

    outcomes = await asyncio.gather(*(one() for _ in range(concurrent)))

    assert outcomes.count("served") == 1
    assert outcomes.count("refused") == concurrent - 1
    calls = await simulator_requests(provision.simulator_url)
    assert len([c for c in calls if c["body"] and c["body"].get("model") == setup.model]) == 1
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 100_000_000 - row["cost"] >= 0
    async with provision.sessions() as session:
        from sqlalchemy import text

        spent = await session.scalar(
            text("SELECT spent FROM api_key WHERE id = :k"), {"k": setup.key_id}
        )
    assert spent == row["cost"]


async def test_bc14_price_follows_the_client_model_name(provision: Provisioner) -> None:
    tenant, tenant_id = await provision.tenant("10")
    _, key = await provision.key(tenant)
    client_name = f"team-fast-{tenant}"
    await provision.price(client_name, "2", "8")
    await provision.channel(
        [client_name, f"ghost-{tenant}"],
        model_map={client_name: "upstream-flash", f"ghost-{tenant}": "upstream-ghost"},
    )
    await provision.wait_visible(key, client_name)
    openai_client = provision.openai(key)

    completion = await openai_client.chat.completions.create(
        model=client_name, messages=[{"role": "user", "content": "hi"}]
    )
    chunks = [
        c
        async for c in await openai_client.chat.completions.create(
            model=client_name,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]

    assert completion.model == client_name
    assert {c.model for c in chunks} == {client_name}
    with pytest.raises(openai.BadRequestError) as refused:
        await openai_client.chat.completions.create(
            model=f"ghost-{tenant}", messages=[{"role": "user", "content": "hi"}]
        )
    assert "no price" in refused.value.message
    await provision.wait_settled()
    rows = await provision.usage_rows(tenant_id)
    assert len(rows) == 2
    assert {(r["model"], r["upstream_model"]) for r in rows} == {(client_name, "upstream-flash")}
    assert rows[0]["cost"] == rows[1]["cost"] > 0


async def test_bc25_upstream_429_keeps_status_code_and_retry_after(provision: Provisioner) -> None:
    setup = await provision.setup(fault="status=429,retry_after=30")

    with pytest.raises(openai.RateLimitError) as limited:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )

    assert limited.value.response.headers["retry-after"] == "30"
    assert limited.value.response.headers["content-type"] == "application/json"
    assert limited.value.code == "rate_limit_exceeded"
    body = limited.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}


async def test_bc25_upstream_429_fails_over_to_a_healthy_channel(provision: Provisioner) -> None:
    setup = await provision.setup(fault="status=429,retry_after=30")
    await provision.channel([setup.model], priority=5)

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content


async def test_bc25_gateway_errors_have_the_openai_shape(provision: Provisioner) -> None:
    setup = await provision.setup()

    with pytest.raises(openai.AuthenticationError) as bad_key:
        await provision.openai("sk-tg-not-a-key").chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert bad_key.value.code == "invalid_api_key"
    assert bad_key.value.status_code == 401

    with pytest.raises(openai.NotFoundError) as unknown:
        await provision.openai(setup.key).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert unknown.value.code == "model_not_found"


async def test_bc25_plain_text_200_is_a_502_quoting_the_upstream(provision: Provisioner) -> None:
    upstream = await replay(
        provision.simulator_url, ["unsupported model: x"], content_type="text/plain"
    )
    setup = await provision.setup(upstream=upstream)

    with pytest.raises(openai.InternalServerError) as failed:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )

    assert failed.value.status_code == 502
    assert "unsupported model: x" in failed.value.message
    await provision.wait_settled()
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000


async def test_bc31_model_without_a_channel_for_the_group_is_hidden(provision: Provisioner) -> None:
    other_group = await provision.group("1")
    tenant, _ = await provision.tenant("1")
    usable = f"gemini-2.0-flash-{tenant}"
    claude = f"claude-x-{tenant}"
    gpt = f"gpt-x-{tenant}"
    for model in (usable, claude, gpt):
        await provision.price(model, "1", "1")
    await provision.channel([usable, gpt])
    async with provision.sessions() as session:
        from shared.services.admin import add_channel

        await add_channel(
            session,
            f"claude-only-{tenant}",
            kind="openai",
            base_url=provision.upstream(),
            api_key="x",
            models=[claude],
            groups=[other_group],
        )
    _, key = await provision.key(tenant, models=[usable, claude])
    await provision.wait_visible(key, usable)

    async with httpx.AsyncClient() as client:
        listing = await client.get(
            f"{provision.gateway_url}/v1/models", headers={"authorization": f"Bearer {key}"}
        )
    ids = [m["id"] for m in listing.json()["data"]]
    assert usable in ids and claude not in ids and gpt not in ids
    with pytest.raises(openai.NotFoundError):
        await provision.openai(key).chat.completions.create(
            model=claude, messages=[{"role": "user", "content": "hi"}]
        )


async def test_revoking_a_key_with_the_cli_reaches_running_workers(
    provision: Provisioner, database_url: str
) -> None:
    setup = await provision.setup()
    client = provision.openai(setup.key)
    await client.chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    result = subprocess.run(  # noqa: ASYNC221 - a short CLI call
        [sys.executable, "-m", "gateway", "admin", "key", "revoke", str(setup.key_id)],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == {"id": setup.key_id, "status": "revoked"}
    revoked_at = asyncio.get_running_loop().time()

    refused = 0
    while refused < 10:
        try:
            await client.models.list()
            refused = 0
        except openai.AuthenticationError:
            refused += 1
        assert asyncio.get_running_loop().time() - revoked_at < 1.0, "revocation took over 1 s"
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
