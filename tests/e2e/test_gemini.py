"""The Gemini API, as an upstream (channel kind ``gemini``) and as a client surface (``/v1beta``).

The official ``google-genai`` SDK is pointed at the gateway's ``/v1beta``; upstreams are the
simulator (its Gemini and OpenAI formats) or exact bytes replayed by it, for the handed
cases of ../shared/cases/CASES.md that Gemini owns.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors, types
from sqlalchemy import text

from shared.services import admin
from tests.support import Provisioner, Setup, replay, simulator_requests, sse_data

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------- helpers


def _client(provision: Provisioner, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=provision.gateway_url, api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture
async def gemini(provision: Provisioner) -> AsyncIterator[Any]:
    """A factory of google-genai async clients pointed at the gateway, closed afterwards."""
    clients: list[genai.Client] = []

    def make(key: str) -> Any:
        client = _client(provision, key)
        clients.append(client)
        return client.aio

    yield make
    for client in clients:
        await client.aio.aclose()


async def _replay_root(provision: Provisioner, chunks: list[str], **options: Any) -> str:
    """Register a replay; return the root URL a gemini-kind channel takes."""
    return (await replay(provision.simulator_url, chunks, **options)).removesuffix("/v1")


async def _setup(
    provision: Provisioner,
    *,
    kind: str = "gemini",
    upstream: str | None = None,
    model: str | None = None,
    model_map: dict[str, str] | None = None,
    input_price: str = "2",
    output_price: str = "8",
    cached_price: str | None = None,
    group: str | None = None,
) -> Setup:
    """Provision a tenant, a key and a model on one channel of ``kind``."""
    model = model or f"gemini-t-{secrets.token_hex(4)}"
    group = group or await provision.group("1")
    tenant, tenant_id = await provision.tenant("10", group)
    await provision.price(model, input_price, output_price, cached_price)
    if upstream is None:
        upstream = provision.simulator_url if kind == "gemini" else provision.upstream()
    async with provision.sessions() as session:
        await admin.add_channel(
            session,
            f"channel-{secrets.token_hex(4)}",
            kind=kind,
            base_url=upstream,
            api_key="upstream-test-key",
            models=[model],
            model_map=model_map,
            groups=[group],
        )
    key_id, key = await provision.key(tenant)
    await provision.wait_visible(key, model)
    return Setup(tenant, tenant_id, key, key_id, model)


async def _upstream_calls(provision: Provisioner, marker: str) -> list[dict[str, Any]]:
    """Return the simulator's logged requests whose path holds ``marker``, oldest first."""
    return [e for e in await simulator_requests(provision.simulator_url) if marker in e["path"]]


async def _row(provision: Provisioner, tenant_id: int) -> dict[str, Any]:
    await provision.wait_settled()
    [row] = await provision.usage_rows(tenant_id)
    return row


async def _openai_stream(
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
        raw = (await response.aread()).decode()
    return response, sse_data(raw)


async def _openai_post(provision: Provisioner, key: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{provision.gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json=body,
        )


def _chunks(data: list[str]) -> list[dict[str, Any]]:
    return [json.loads(d) for d in data if d.startswith("{")]


def _contents(data: list[str]) -> str:
    return "".join(
        choice.get("delta", {}).get("content") or ""
        for chunk in _chunks(data)
        for choice in chunk.get("choices") or ()
    )


def _finish_reasons(data: list[str]) -> list[str]:
    return [
        choice["finish_reason"]
        for chunk in _chunks(data)
        for choice in chunk.get("choices") or ()
        if choice.get("finish_reason")
    ]


def _sse(event: dict[str, Any] | str) -> str:
    payload = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
    return f"data: {payload}\r\n\r\n"


def _user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# ---------------------------------------------------------------------------- the SDK


async def test_sdk_generate_content_passthrough(provision: Provisioner, gemini: Any) -> None:
    setup = await _setup(provision)
    client = gemini(setup.key)

    response = await client.models.generate_content(model=setup.model, contents="Say hello")

    assert response.text
    assert response.model_version == setup.model
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage.prompt_token_count,
        usage.candidates_token_count,
    )
    assert row["estimated"] is False and row["status"] == "ok"
    assert row["endpoint"] == "gemini.generateContent"
    [call] = await _upstream_calls(provision, setup.model)
    assert call["path"] == f"/v1beta/models/{setup.model}:generateContent"
    assert call["headers"]["x-goog-api-key"] == "upstream-test-key"


async def test_sdk_stream_passthrough_ends_with_finish_and_usage(
    provision: Provisioner, gemini: Any
) -> None:
    setup = await _setup(provision)
    client = gemini(setup.key)

    chunks = [
        c
        async for c in await client.models.generate_content_stream(
            model=setup.model, contents="Tell me a story", config={"max_output_tokens": 200}
        )
    ]

    assert len(chunks) > 2
    assert "".join(c.text or "" for c in chunks)
    assert {c.model_version for c in chunks} == {setup.model}
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count > 0
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (
        last.usage_metadata.prompt_token_count,
        last.usage_metadata.candidates_token_count,
    )
    assert row["endpoint"] == "gemini.streamGenerateContent" and row["stream"] is True
    [call] = await _upstream_calls(provision, setup.model)
    assert call["path"].endswith(":streamGenerateContent") and call["query"] == "alt=sse"


async def test_sdk_against_an_openai_channel(provision: Provisioner, gemini: Any) -> None:
    setup = await _setup(provision, kind="openai")
    client = gemini(setup.key)
    config = types.GenerateContentConfig(
        system_instruction="Be brief.",
        temperature=0.5,
        max_output_tokens=64,
        stop_sequences=["END"],
    )

    response = await client.models.generate_content(
        model=setup.model, contents="Say hello", config=config
    )
    chunks = [
        c
        async for c in await client.models.generate_content_stream(
            model=setup.model, contents="Say hello", config=config
        )
    ]

    assert response.text and response.model_version == setup.model
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert "".join(c.text or "" for c in chunks) == response.text
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.prompt_token_count == response.usage_metadata.prompt_token_count
    assert all(c.usage_metadata is None for c in chunks[:-1])
    calls = await _upstream_calls(provision, "/v1/chat/completions")
    sent = [c["body"] for c in calls if c["body"] and c["body"].get("model") == setup.model]
    assert sent[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent[0]["max_completion_tokens"] == 64 and sent[0]["stop"] == ["END"]
    assert sent[1]["stream_options"] == {"include_usage": True}
    await provision.wait_settled()
    rows = await provision.usage_rows(setup.tenant_id)
    assert [r["output_tokens"] for r in rows] == [
        response.usage_metadata.candidates_token_count,
        last.usage_metadata.candidates_token_count,
    ]
    assert all(not r["estimated"] for r in rows)


async def test_sdk_count_tokens_and_model_list(provision: Provisioner, gemini: Any) -> None:
    setup = await _setup(provision)
    other = f"gemini-other-{secrets.token_hex(3)}"
    await provision.price(other, "1", "1")
    async with provision.sessions() as session:
        await admin.add_channel(
            session,
            f"channel-{other}",
            kind="gemini",
            base_url=provision.simulator_url,
            api_key="x",
            models=[other],
            groups=[await provision.group("1")],
        )
    client = gemini(setup.key)

    counted = await client.models.count_tokens(model=setup.model, contents="hello there world")
    listed = [m.name async for m in await client.models.list()]
    one = await client.models.get(model=setup.model)

    assert counted.total_tokens and counted.total_tokens > 0
    assert f"models/{setup.model}" in listed and f"models/{other}" not in listed
    assert one.name == f"models/{setup.model}"
    assert "generateContent" in (one.supported_actions or [])
    with pytest.raises(genai_errors.ClientError) as missing:
        await client.models.get(model=other)
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    await provision.wait_settled()
    assert await provision.usage_rows(setup.tenant_id) == []


@pytest.mark.parametrize("kind", ["gemini", "openai"])
async def test_sdk_tool_call_round_trip(provision: Provisioner, gemini: Any, kind: str) -> None:
    setup = await _setup(provision, kind=kind)
    client = gemini(setup.key)
    declaration = types.FunctionDeclaration(
        name="get_weather",
        description="Weather of a city",
        parameters_json_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])

    first = await client.models.generate_content(
        model=setup.model, contents=[question], config=config
    )
    [call] = first.function_calls or []
    answer = types.Part(
        function_response=types.FunctionResponse(
            id=call.id, name=call.name, response={"temp_c": 21}
        )
    )
    second = await client.models.generate_content(
        model=setup.model,
        contents=[
            question,
            first.candidates[0].content,
            types.Content(role="user", parts=[answer]),
        ],
        config=config,
    )

    assert call.name == "get_weather" and isinstance(call.args, dict) and "city" in call.args
    assert "21" in (second.text or "")
    if kind == "openai":
        assert call.id
        calls = await _upstream_calls(provision, "/v1/chat/completions")
        [*_, last] = [c["body"] for c in calls if (c["body"] or {}).get("model") == setup.model]
        assistant, tool = last["messages"][1], last["messages"][2]
        assert assistant["tool_calls"][0]["id"] == call.id
        assert tool == {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c":21}'}


async def test_sdk_tool_call_stream_against_openai_channel(
    provision: Provisioner, gemini: Any
) -> None:
    setup = await _setup(provision, kind="openai")
    client = gemini(setup.key)
    declaration = types.FunctionDeclaration(
        name="add_numbers",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={"a": types.Schema(type="NUMBER"), "b": types.Schema(type="NUMBER")},
            required=["a", "b"],
        ),
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])

    chunks = [
        c
        async for c in await client.models.generate_content_stream(
            model=setup.model, contents="add 17 and 25", config=config
        )
    ]

    calls = [call for c in chunks for call in c.function_calls or ()]
    assert [c.name for c in calls] == ["add_numbers"]
    assert set(calls[0].args or {}) == {"a", "b"}
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count > 0
    sent = [
        c["body"]
        for c in await _upstream_calls(provision, "/v1/chat/completions")
        if (c["body"] or {}).get("model") == setup.model
    ]
    parameters = sent[0]["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["a"] == {"type": "number"}


@pytest.mark.parametrize("kind", ["gemini", "openai"])
async def test_sdk_image_input(provision: Provisioner, gemini: Any, kind: str) -> None:
    setup = await _setup(provision, kind=kind)
    client = gemini(setup.key)
    png = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(32)

    response = await client.models.generate_content(
        model=setup.model,
        contents=[types.Part.from_bytes(data=png, mime_type="image/png"), "what is this?"],
    )

    assert response.text
    encoded = base64.b64encode(png).decode()
    if kind == "openai":
        calls = await _upstream_calls(provision, "/v1/chat/completions")
        [body] = [c["body"] for c in calls if (c["body"] or {}).get("model") == setup.model]
        assert body["messages"][0]["content"] == [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
            {"type": "text", "text": "what is this?"},
        ]
    else:
        [call] = await _upstream_calls(provision, setup.model)
        inline = call["body"]["contents"][0]["parts"][0]["inlineData"]
        # Relayed as the SDK sent it (google-genai writes bytes URL-safe, keys snake_case).
        assert base64.urlsafe_b64decode(inline["data"]) == png
        assert inline.get("mimeType", inline.get("mime_type")) == "image/png"


async def test_sdk_errors_have_the_right_class_and_code(
    provision: Provisioner, gemini: Any
) -> None:
    setup = await _setup(provision)
    limited = await _setup(provision, upstream=f"{provision.simulator_url}/_fault/status=429")
    broken = await _setup(provision, upstream=f"{provision.simulator_url}/_fault/status=500")

    with pytest.raises(genai_errors.ClientError) as invalid:
        await gemini(setup.key).models.generate_content(
            model=setup.model, contents="hi", config={"max_output_tokens": 0}
        )
    with pytest.raises(genai_errors.ClientError) as unauthenticated:
        await gemini("sk-tg-not-a-key").models.generate_content(model=setup.model, contents="hi")
    with pytest.raises(genai_errors.ClientError) as missing:
        await gemini(setup.key).models.generate_content(model="no-such-model", contents="hi")
    with pytest.raises(genai_errors.ClientError) as rate_limited:
        await gemini(limited.key).models.generate_content(model=limited.model, contents="hi")
    with pytest.raises(genai_errors.ServerError) as failed:
        await gemini(broken.key).models.generate_content(model=broken.model, contents="hi")

    assert (invalid.value.code, invalid.value.status) == (400, "INVALID_ARGUMENT")
    assert "max_output_tokens" in (invalid.value.message or "")
    assert (unauthenticated.value.code, unauthenticated.value.status) == (401, "UNAUTHENTICATED")
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
    assert (rate_limited.value.code, rate_limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert failed.value.code == 502 and failed.value.status == "UNAVAILABLE"
    stream = await gemini(limited.key).models.generate_content_stream(
        model=limited.model, contents="hi"
    )
    with pytest.raises(genai_errors.ClientError) as stream_limited:
        async for _ in stream:
            pass
    assert stream_limited.value.code == 429


async def test_sdk_suspended_tenant_is_permission_denied(
    provision: Provisioner, gemini: Any
) -> None:
    setup = await _setup(provision)
    async with provision.sessions() as session:
        await session.execute(
            text("UPDATE tenant SET status = 'suspended' WHERE id = :t"), {"t": setup.tenant_id}
        )
        await session.commit()

    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            await gemini(setup.key).models.generate_content(model=setup.model, contents="hi")
        except genai_errors.ClientError as exc:
            if exc.code == 403:
                assert exc.status == "PERMISSION_DENIED"
                break
        assert asyncio.get_running_loop().time() < deadline, "suspension never took effect"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", ["gemini", "openai"])
async def test_sdk_stream_cut_mid_way_raises(
    provision: Provisioner, gemini: Any, kind: str
) -> None:
    root = provision.simulator_url if kind == "gemini" else provision.upstream()
    upstream = root.replace(provision.simulator_url, f"{provision.simulator_url}/_fault/cut=2")
    setup = await _setup(provision, kind=kind, upstream=upstream)
    received: list[str] = []

    async def read() -> None:
        async for chunk in await gemini(setup.key).models.generate_content_stream(
            model=setup.model, contents="Tell me a long story", config={"max_output_tokens": 100}
        ):
            received.append(chunk.text or "")

    with pytest.raises(genai_errors.ServerError) as failed:
        await read()

    assert failed.value.code == 502 and "".join(received)
    row = await _row(provision, setup.tenant_id)
    # A dropped connection is an upstream error; either way it is not a clean stop.
    assert row["status"] in ("truncated", "error") and row["output_tokens"] > 0


@pytest.mark.parametrize("kind", ["gemini", "openai"])
async def test_sdk_embed_content(provision: Provisioner, gemini: Any, kind: str) -> None:
    setup = await _setup(provision, kind=kind)

    embedded = await gemini(setup.key).models.embed_content(
        model=setup.model,
        contents=["first text", "second text"],
        config={"output_dimensionality": 8},
    )
    async with httpx.AsyncClient(timeout=30) as client:
        single = await client.post(
            f"{provision.gateway_url}/v1beta/models/{setup.model}:embedContent",
            headers={"x-goog-api-key": setup.key},
            json={"content": {"parts": [{"text": "first text"}]}, "outputDimensionality": 8},
        )

    vectors = [e.values for e in embedded.embeddings or ()]
    assert len(vectors) == 2 and all(len(v or ()) == 8 for v in vectors)
    assert single.status_code == 200
    assert single.json()["embedding"]["values"] == vectors[0]
    await provision.wait_settled()
    rows = await provision.usage_rows(setup.tenant_id)
    assert [r["endpoint"] for r in rows] == ["gemini.batchEmbedContents", "gemini.embedContent"]
    assert all(r["input_tokens"] > 0 and r["output_tokens"] == 0 and r["cost"] > 0 for r in rows)


async def test_embed_content_without_text_is_a_400(provision: Provisioner) -> None:
    setup = await _setup(provision)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{provision.gateway_url}/v1beta/models/{setup.model}:batchEmbedContents",
            headers={"x-goog-api-key": setup.key},
            json={"requests": [{"content": {"parts": []}}]},
        )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert await _upstream_calls(provision, setup.model) == []


async def test_array_stream_without_alt_sse(provision: Provisioner) -> None:
    setup = await _setup(provision, kind="openai")
    url = f"{provision.gateway_url}/v1beta/models/{setup.model}:streamGenerateContent"

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url,
            params={"key": setup.key},
            json={"contents": [{"role": "user", "parts": [{"text": "Tell me a story"}]}]},
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    frames = response.json()
    assert isinstance(frames, list) and len(frames) > 1
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    assert frames[-1]["usageMetadata"]["totalTokenCount"] > 0
    assert all("finishReason" not in c for f in frames[:-1] for c in f["candidates"])


async def test_googles_openai_compatible_path(provision: Provisioner) -> None:
    setup = await _setup(provision)
    client = openai.AsyncOpenAI(
        base_url=f"{provision.gateway_url}/v1beta/openai", api_key=setup.key, max_retries=0
    )

    completion = await client.chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content and completion.model == setup.model


async def test_unknown_action_and_path_are_gemini_404s(provision: Provisioner) -> None:
    setup = await _setup(provision)
    async with httpx.AsyncClient(timeout=30) as client:
        action = await client.post(
            f"{provision.gateway_url}/v1beta/models/{setup.model}:predict",
            headers={"x-goog-api-key": setup.key},
            json={},
        )
        wrong_method = await client.get(
            f"{provision.gateway_url}/v1beta/models/{setup.model}:generateContent",
            headers={"x-goog-api-key": setup.key},
        )
    assert action.status_code == 404 and action.json()["error"]["status"] == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == 405


# ---------------------------------------------------------------------------- handed cases

BC03_EVENT = _sse(
    '{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"finishReason":"STOP",'
    '"index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4}}'
)


async def test_bc03_1_gemini_eof_after_finish_is_success(provision: Provisioner) -> None:
    setup = await _setup(provision, upstream=await _replay_root(provision, [BC03_EVENT]))

    response, data = await _openai_stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": _user("hi")}
    )

    assert response.status_code == 200
    assert _contents(data) == "Hi" and _finish_reasons(data) == ["stop"]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (3, 1, "ok")
    assert row["estimated"] is False


async def test_bc03_1_gemini_eof_without_finish_is_truncation(provision: Provisioner) -> None:
    event = _sse(
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"index":0}],'
        '"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4}}'
    )
    setup = await _setup(provision, upstream=await _replay_root(provision, [event]))

    _, data = await _openai_stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": _user("hi")}
    )

    assert "stop" not in _finish_reasons(data) and "[DONE]" not in data
    assert json.loads(data[-1])["error"]["code"] == "upstream_truncated"
    row = await _row(provision, setup.tenant_id)
    assert row["status"] == "truncated" and (row["input_tokens"], row["output_tokens"]) == (3, 1)


BC09_EVENTS = [
    _sse(
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"A"}]},"index":0}],'
        '"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1,"totalTokenCount":9}}'
    ),
    _sse(
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"BCD"}]},"index":0}],'
        '"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":5,"totalTokenCount":13}}'
    ),
    _sse(
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"E"}]},"finishReason":"STOP",'
        '"index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":12,'
        '"totalTokenCount":20}}'
    ),
]


async def test_bc09_cumulative_usage_is_replaced_not_summed(provision: Provisioner) -> None:
    setup = await _setup(provision, upstream=await _replay_root(provision, BC09_EVENTS))
    body = {
        "model": setup.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": _user("hi"),
    }

    _, data = await _openai_stream(provision, setup.key, body)

    assert _contents(data) == "ABCDE"
    usage = _chunks(data)[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        8,
        12,
        20,
    )
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (8, 12)


async def test_bc09_gemini_native_inbound_bills_the_same(
    provision: Provisioner, gemini: Any
) -> None:
    setup = await _setup(provision, upstream=await _replay_root(provision, BC09_EVENTS))

    chunks = [
        c
        async for c in await gemini(setup.key).models.generate_content_stream(
            model=setup.model, contents="hi"
        )
    ]

    assert "".join(c.text or "" for c in chunks) == "ABCDE"
    assert chunks[-1].usage_metadata.candidates_token_count == 12
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (8, 12)


async def test_bc11_b_gemini_cached_tokens_are_inside_the_prompt(provision: Provisioner) -> None:
    answer = (
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP",'
        '"index":0}],"usageMetadata":{"promptTokenCount":10000,"cachedContentTokenCount":8000,'
        '"candidatesTokenCount":100,"totalTokenCount":10100}}'
    )
    upstream = await _replay_root(provision, [answer], content_type="application/json")
    # p = 1 USD, cache read 0.1 USD, q = 2 USD per million tokens.
    setup = await _setup(
        provision, upstream=upstream, input_price="1", output_price="2", cached_price="0.1"
    )

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "messages": _user("hi")}
    )

    usage = response.json()["usage"]
    assert usage["prompt_tokens"] == 10000
    assert usage["prompt_tokens_details"]["cached_tokens"] == 8000
    assert (usage["completion_tokens"], usage["total_tokens"]) == (100, 10100)
    row = await _row(provision, setup.tenant_id)
    # (2000 x 1 + 8000 x 0.1 + 100 x 2) / 10^6 USD = 0.003 USD, in nano-dollars.
    assert row["cost"] == 3_000_000
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
        10000,
        8000,
        100,
    )


async def test_bc15_1_max_tokens_is_length(provision: Provisioner) -> None:
    answer = (
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"Quail"}]},'
        '"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":6,'
        '"candidatesTokenCount":2,"totalTokenCount":8}}'
    )
    upstream = await _replay_root(provision, [answer], content_type="application/json")
    setup = await _setup(provision, upstream=upstream)

    response = await _openai_post(
        provision,
        setup.key,
        {"model": setup.model, "max_tokens": 2, "messages": _user("give me 3 random words")},
    )

    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "Quail"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (6, 2, 8)
    [call] = await _upstream_calls(provision, setup.model)
    assert call["body"]["generationConfig"]["maxOutputTokens"] == 2


async def test_bc15_2_streamed_max_tokens_without_content(provision: Provisioner) -> None:
    events = [
        _sse(
            '{"candidates":[{"content":{"role":"model","parts":[{"text":"Quail"}]},"index":0}],'
            '"usageMetadata":{"promptTokenCount":6,"candidatesTokenCount":1,"totalTokenCount":7}}'
        ),
        _sse(
            '{"candidates":[{"finishReason":"MAX_TOKENS","index":0}],'
            '"usageMetadata":{"promptTokenCount":6,"candidatesTokenCount":2,"totalTokenCount":8}}'
        ),
    ]
    setup = await _setup(provision, upstream=await _replay_root(provision, events))

    _, data = await _openai_stream(
        provision,
        setup.key,
        {"model": setup.model, "max_tokens": 2, "stream": True, "messages": _user("3 words")},
    )

    final = _chunks(data)[-1]
    assert final["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": "length", "logprobs": None}
    ]
    assert data[-1] == "[DONE]"
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (6, 2)


async def test_bc15_reverse_mapping_for_gemini_clients(provision: Provisioner, gemini: Any) -> None:
    setup = await _setup(provision, kind="openai")

    response = await gemini(setup.key).models.generate_content(
        model=setup.model, contents="Tell me a long story", config={"max_output_tokens": 3}
    )

    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


BC16_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
BC16_CALL = (
    '{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather",'
    '"args":{"city":"Paris"}}}]},"index":0}]}'
)
BC16_STOP = (
    '{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP",'
    '"index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":7,'
    '"totalTokenCount":37}}'
)


async def test_bc16_streamed_tool_call_finishes_with_tool_calls(provision: Provisioner) -> None:
    upstream = await _replay_root(provision, [_sse(BC16_CALL), _sse(BC16_STOP)])
    setup = await _setup(provision, upstream=upstream)
    body = {
        "model": setup.model,
        "stream": True,
        "tools": BC16_TOOLS,
        "messages": _user("weather in Paris?"),
    }

    _, data = await _openai_stream(provision, setup.key, body)

    calls = [
        call
        for chunk in _chunks(data)
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert len(calls) == 1
    call = calls[0]
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    assert len(call["id"]) > len("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert _finish_reasons(data) == ["tool_calls"]
    assert all(
        choice["delta"].get("content") in (None,)
        for chunk in _chunks(data)
        for choice in chunk["choices"]
    )
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (30, 7)


async def test_bc16_non_streamed_tool_call(provision: Provisioner) -> None:
    answer = (
        '{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather",'
        '"args":{"city":"Paris"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":'
        '{"promptTokenCount":30,"candidatesTokenCount":7,"totalTokenCount":37}}'
    )
    upstream = await _replay_root(provision, [answer], content_type="application/json")
    setup = await _setup(provision, upstream=upstream)

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model,
        tools=BC16_TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 7)


BC19_PROMPT_BLOCK = (
    '{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},'
    '"usageMetadata":{"promptTokenCount":13,"totalTokenCount":13}}'
)
BC19_OUTPUT_BLOCK = (
    '{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":'
    '"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}],'
    '"usageMetadata":{"promptTokenCount":13,"totalTokenCount":13}}'
)


@pytest.mark.parametrize("stream", [False, True])
async def test_bc19_1_prompt_block_is_a_400_content_filter(
    provision: Provisioner, stream: bool
) -> None:
    if stream:
        upstream = await _replay_root(provision, [_sse(BC19_PROMPT_BLOCK)])
    else:
        upstream = await _replay_root(
            provision, [BC19_PROMPT_BLOCK], content_type="application/json"
        )
    setup = await _setup(provision, upstream=upstream)
    before = await provision.books(setup.tenant_id)

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "stream": stream, "messages": _user("x")}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "content_filter" and "PROHIBITED_CONTENT" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    row = await _row(provision, setup.tenant_id)
    assert row["status"] == "error" and row["cost"] == 0
    assert (await provision.books(setup.tenant_id))["balance"] == before["balance"]


async def test_bc19_1_prompt_block_for_gemini_clients(provision: Provisioner, gemini: Any) -> None:
    setup = await _setup(provision, upstream=f"{provision.simulator_url}/_fault/block=prompt")

    with pytest.raises(genai_errors.ClientError) as blocked:
        await gemini(setup.key).models.generate_content(model=setup.model, contents="x")

    assert blocked.value.code == 400 and "PROHIBITED_CONTENT" in (blocked.value.message or "")
    row = await _row(provision, setup.tenant_id)
    assert row["status"] == "error" and row["cost"] == 0


async def test_bc19_2_output_block_is_an_empty_content_filter_answer(
    provision: Provisioner,
) -> None:
    upstream = await _replay_root(provision, [BC19_OUTPUT_BLOCK], content_type="application/json")
    setup = await _setup(provision, upstream=upstream, input_price="1", output_price="1")

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "messages": _user("x")}
    )

    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "content_filter"
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (13, 0, "ok")
    assert row["cost"] == 13 * 1000


async def test_bc19_2_streamed_output_block(provision: Provisioner) -> None:
    setup = await _setup(
        provision, upstream=await _replay_root(provision, [_sse(BC19_OUTPUT_BLOCK)])
    )

    response, data = await _openai_stream(
        provision, setup.key, {"model": setup.model, "stream": True, "messages": _user("x")}
    )

    assert response.status_code == 200
    assert _finish_reasons(data) == ["content_filter"] and _contents(data) == ""
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (13, 0)


async def _bc20_body(provision: Provisioner, body: dict[str, Any]) -> dict[str, Any]:
    setup = await _setup(provision)
    response = await _openai_post(provision, setup.key, {"model": setup.model, **body})
    assert response.status_code == 200, response.text
    [call] = await _upstream_calls(provision, setup.model)
    sent: dict[str, Any] = call["body"]
    roles = [c["role"] for c in sent["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    assert all(c["parts"] for c in sent["contents"])
    return sent


async def test_bc20_1_system_texts_and_adjacent_user_turns(provision: Provisioner) -> None:
    sent = await _bc20_body(
        provision,
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "A"},
                {"role": "user", "content": "B"},
            ]
        },
    )

    assert sent["systemInstruction"] == {"parts": [{"text": "Be terse.\nAnswer in French."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "A"}, {"text": "B"}]}]


async def test_bc20_2_only_a_system_message(provision: Provisioner) -> None:
    sent = await _bc20_body(provision, {"messages": [{"role": "system", "content": "Say hi"}]})

    assert sent["contents"]
    texts = [p.get("text") for c in sent["contents"] for p in c["parts"]]
    system = [p.get("text") for p in sent.get("systemInstruction", {}).get("parts", ())]
    assert "Say hi" in texts + system


async def test_bc20_3_tool_results_in_one_user_turn_in_call_order(provision: Provisioner) -> None:
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    sent = await _bc20_body(
        provision,
        {
            "tools": tools,
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": '{"city":"Paris"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_2", "content": "14:00"},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
            ],
        },
    )

    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    calls = [p["functionCall"] for p in sent["contents"][1]["parts"]]
    assert [(c["id"], c["name"], c["args"]) for c in calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {"city": "Paris"}),
    ]
    answers = [p["functionResponse"] for p in sent["contents"][2]["parts"]]
    assert answers == [
        {"id": "call_1", "name": "get_weather", "response": {"temp_c": 21}},
        {"id": "call_2", "name": "get_time", "response": {"result": "14:00"}},
    ]
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parametersJsonSchema": {"type": "object"}},
                {"name": "get_time", "parametersJsonSchema": {"type": "object"}},
            ]
        }
    ]


def _image_message(url: str) -> list[dict[str, Any]]:
    return _user(
        [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    )


async def test_bc22_data_url_is_inlined_exactly(provision: Provisioner) -> None:
    setup = await _setup(provision)

    response = await _openai_post(
        provision,
        setup.key,
        {"model": setup.model, "messages": _image_message("data:image/jpg;base64,/9j/4A==")},
    )

    assert response.status_code == 200
    [call] = await _upstream_calls(provision, setup.model)
    assert call["body"]["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
    ]


async def _serve_png(png: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
            + f"Content-Length: {len(png)}\r\n\r\n".encode()
            + png
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/cat.png"


async def test_bc22_remote_image_is_fetched_and_inlined(provision: Provisioner) -> None:
    png = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(64)
    server, url = await _serve_png(png)
    setup = await _setup(provision)
    try:
        response = await _openai_post(
            provision, setup.key, {"model": setup.model, "messages": _image_message(url)}
        )
    finally:
        server.close()
        await server.wait_closed()

    assert response.status_code == 200, response.text
    [call] = await _upstream_calls(provision, setup.model)
    assert call["body"]["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}
    }


@pytest.mark.parametrize(
    "url",
    ["data:image/png;base64,not base64!", "data:image/png,abc", "data:text/plain;base64,QQ=="],
)
async def test_bc22_malformed_data_url_is_a_400_before_any_upstream_call(
    provision: Provisioner, url: str
) -> None:
    setup = await _setup(provision)

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "messages": _image_message(url)}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image_url"
    assert await _upstream_calls(provision, setup.model) == []


async def test_bc22_gemini_client_bad_inline_data_is_a_400(provision: Provisioner) -> None:
    setup = await _setup(provision)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{provision.gateway_url}/v1beta/models/{setup.model}:generateContent",
            headers={"x-goog-api-key": setup.key},
            json={
                "contents": [
                    {"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@not base64"}}]}
                ]
            },
        )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert await _upstream_calls(provision, setup.model) == []


BC23_ANSWER = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": word}]},
            "finishReason": "STOP",
            "index": index,
        }
        for index, word in enumerate(("Red", "Blue", "Green"))
    ],
    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7},
}


async def test_bc23_n_becomes_candidate_count_and_every_candidate_is_kept(
    provision: Provisioner,
) -> None:
    upstream = await _replay_root(
        provision, [json.dumps(BC23_ANSWER)], content_type="application/json"
    )
    setup = await _setup(provision, upstream=upstream)

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model, n=3, messages=[{"role": "user", "content": "one word"}]
    )

    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, "Red", "stop"),
        (1, "Blue", "stop"),
        (2, "Green", "stop"),
    ]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert completion.usage.total_tokens == 7
    [call] = await _upstream_calls(provision, setup.model)
    assert call["body"]["generationConfig"]["candidateCount"] == 3
    row = await _row(provision, setup.tenant_id)
    assert row["output_tokens"] == 3


async def test_bc23_streamed_choice_index_is_the_candidate_index(provision: Provisioner) -> None:
    events = [
        _sse(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": w}]}, "index": i}
                    for i, w in enumerate(("Red", "Blue", "Green"))
                ]
            }
        ),
        _sse(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": ""}]},
                        "finishReason": "STOP",
                        "index": i,
                    }
                    for i in range(3)
                ],
                "usageMetadata": BC23_ANSWER["usageMetadata"],
            }
        ),
    ]
    setup = await _setup(provision, upstream=await _replay_root(provision, events))

    _, data = await _openai_stream(
        provision, setup.key, {"model": setup.model, "n": 3, "stream": True, "messages": _user("x")}
    )

    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in _chunks(data):
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + (
                choice["delta"].get("content") or ""
            )
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: "Red", 1: "Blue", 2: "Green"}
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    row = await _row(provision, setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"]) == (4, 3)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"max_completion_tokens": 256}, 256), ({"max_tokens": 50, "max_completion_tokens": 80}, 80)],
)
async def test_bc24_output_limit_becomes_max_output_tokens(
    provision: Provisioner, limits: dict[str, int], expected: int
) -> None:
    setup = await _setup(provision)

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "messages": _user("hi"), **limits}
    )

    assert response.status_code == 200
    [call] = await _upstream_calls(provision, setup.model)
    assert call["body"]["generationConfig"]["maxOutputTokens"] == expected


@pytest.mark.parametrize("limits", [{"max_tokens": 0}, {"max_completion_tokens": -5}])
async def test_bc24_zero_or_negative_limit_is_a_400(
    provision: Provisioner, limits: dict[str, int]
) -> None:
    setup = await _setup(provision)

    response = await _openai_post(
        provision, setup.key, {"model": setup.model, "messages": _user("hi"), **limits}
    )

    assert response.status_code == 400
    assert await _upstream_calls(provision, setup.model) == []


async def test_bc25_2_gemini_429_is_a_rate_limit_error(provision: Provisioner) -> None:
    setup = await _setup(provision, upstream=f"{provision.simulator_url}/_fault/status=429")

    with pytest.raises(openai.RateLimitError) as limited:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )

    assert limited.value.status_code == 429
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["content-type"] == "application/json"
    body = limited.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}


async def test_bc25_2_gemini_429_fails_over(provision: Provisioner) -> None:
    setup = await _setup(provision, upstream=f"{provision.simulator_url}/_fault/status=429")
    await provision.channel(
        [setup.model], kind="gemini", base_url=provision.simulator_url, priority=5
    )

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content


BC35_MODEL = "gemini-3.1-pro-preview"


def _bc35_requests() -> tuple[dict[str, Any], dict[str, Any]]:
    router = {
        "contents": [{"role": "user", "parts": [{"text": "Fix the failing test in utils.py"}]}],
        "systemInstruction": {"parts": [{"text": "You route requests to a model."}]},
        "generationConfig": {
            "temperature": 0,
            "maxOutputTokens": 1024,
            "responseMimeType": "application/json",
            "responseJsonSchema": {
                "type": "OBJECT",
                "properties": {
                    "reasoning": {"type": "STRING"},
                    "model_choice": {"type": "STRING", "enum": ["flash", "pro"]},
                },
                "required": ["reasoning", "model_choice"],
            },
        },
    }
    system = ("You are an interactive CLI agent specialising in software engineering. " * 420)[
        :30_000
    ]
    agent = {
        "contents": [{"role": "user", "parts": [{"text": "Fix the failing test in utils.py"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": system}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "read_file",
                        "description": "Reads a file.",
                        "parametersJsonSchema": {
                            "type": "object",
                            "properties": {"absolute_path": {"type": "string"}},
                            "required": ["absolute_path"],
                        },
                    },
                    {
                        "name": "run_shell_command",
                        "description": "Runs a command.",
                        "parametersJsonSchema": {
                            "type": "object",
                            "properties": {"command": {"type": "string"}},
                            "required": ["command"],
                        },
                    },
                ]
            }
        ],
        "generationConfig": {
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "HIGH"},
        },
    }
    return router, agent


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_bc35_gemini_cli_session(provision: Provisioner, kind: str) -> None:
    upstream_model = f"upstream-{secrets.token_hex(4)}"
    setup = await _setup(
        provision, kind=kind, model=BC35_MODEL, model_map={BC35_MODEL: upstream_model}
    )
    router, agent = _bc35_requests()
    headers = {"x-goog-api-key": setup.key, "user-agent": "GeminiCLI/0.20.0 (linux; x64)"}
    base = f"{provision.gateway_url}/v1beta/models/{BC35_MODEL}"

    async with httpx.AsyncClient(timeout=30) as client:
        routed = await client.post(f"{base}:generateContent", headers=headers, json=router)
        async with client.stream(
            "POST",
            f"{base}:streamGenerateContent",
            params={"alt": "sse"},
            headers=headers,
            json=agent,
        ) as streamed:
            raw = (await streamed.aread()).decode()

    assert routed.status_code == 200, routed.text
    answer = routed.json()
    assert answer["modelVersion"] == BC35_MODEL
    assert answer["candidates"][0]["content"]["parts"][0]["text"]
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in raw and raw.endswith("\r\n\r\n")
    frames = [json.loads(d) for d in sse_data(raw)]
    assert frames and all(f["modelVersion"] == BC35_MODEL for f in frames)
    assert all("error" not in f for f in frames)
    last = frames[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["promptTokenCount"] > 0
    assert any(
        "functionCall" in part
        for frame in frames
        for candidate in frame["candidates"]
        for part in candidate.get("content", {}).get("parts", ())
    )
    sent = [
        c
        for c in await simulator_requests(provision.simulator_url)
        if upstream_model in json.dumps(c)
    ]
    assert len(sent) == 2
    if kind == "openai":
        json_mode, tool_turn = sent[0]["body"], sent[1]["body"]
        assert json_mode["model"] == upstream_model
        schema = json_mode["response_format"]["json_schema"]["schema"]
        assert schema["type"] == "object"
        assert schema["properties"]["model_choice"] == {"type": "string", "enum": ["flash", "pro"]}
        assert tool_turn["messages"][0] == {
            "role": "system",
            "content": agent["systemInstruction"]["parts"][0]["text"],
        }
        assert [t["function"]["name"] for t in tool_turn["tools"]] == [
            "read_file",
            "run_shell_command",
        ]
        assert tool_turn["reasoning_effort"] == "high"
    else:
        assert sent[0]["path"] == f"/v1beta/models/{upstream_model}:generateContent"
        assert sent[0]["body"] == router and sent[1]["body"] == agent
        assert sent[1]["query"] == "alt=sse"
    await provision.wait_settled()
    rows = await provision.usage_rows(setup.tenant_id)
    assert [(r["model"], r["upstream_model"], r["status"]) for r in rows] == [
        (BC35_MODEL, upstream_model, "ok")
    ] * 2
    assert rows[1]["input_tokens"] == last["usageMetadata"]["promptTokenCount"]
