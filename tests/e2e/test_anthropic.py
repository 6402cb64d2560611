"""The Anthropic Messages protocol end to end: the official SDK against ``/v1/messages``.

Upstreams are the simulator speaking Anthropic (passthrough) or OpenAI (conversion), and
replays of the exact bytes of the handed cases (../shared/cases/CASES.md: BC08, BC11 A,
BC15.3, BC33). Billing is checked against the upstream's own usage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest
from sqlalchemy import text

from shared.money import Price, Usage, compute_cost
from shared.services.admin import add_channel
from tests.support import Provisioner, replay, simulator_requests

pytestmark = pytest.mark.e2e

PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


class Route:
    """A tenant, a key and a model served by one channel of a given kind."""

    def __init__(self, key: str, tenant_id: int, model: str, upstream_model: str) -> None:
        self.key = key
        self.tenant_id = tenant_id
        self.model = model
        self.upstream_model = upstream_model


async def _route(
    provision: Provisioner,
    *,
    kind: str = "anthropic",
    base_url: str | None = None,
    fault: str | None = None,
    cached_price: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Route:
    model = f"claude-{secrets.token_hex(3)}"
    upstream_model = f"up-{model}"
    tenant, tenant_id = await provision.tenant("10")
    await provision.price(model, "2", "8", cached_price)
    if base_url is None:
        root = provision.simulator_url + (f"/_fault/{fault}" if fault else "")
        base_url = root if kind == "anthropic" else f"{root}/v1"
    async with provision.sessions() as session:
        await add_channel(
            session,
            f"channel-{secrets.token_hex(4)}",
            kind=kind,
            base_url=base_url,
            api_key="sk-upstream-test",
            models=[model],
            model_map={model: upstream_model},
            settings=settings,
        )
    _, key = await provision.key(tenant)
    await provision.wait_visible(key, model)
    return Route(key, tenant_id, model, upstream_model)


async def _replay_root(provision: Provisioner, chunks: list[str], **kwargs: Any) -> str:
    """A replay as an Anthropic channel base URL (the root; ``/v1/messages`` is appended)."""
    return (await replay(provision.simulator_url, chunks, **kwargs)).removesuffix("/v1")


def _client(provision: Provisioner, key: str, **kwargs: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=provision.gateway_url, api_key=key, max_retries=0, **kwargs
    )


async def _upstream_calls(provision: Provisioner, upstream_model: str) -> list[dict[str, Any]]:
    return [
        r
        for r in await simulator_requests(provision.simulator_url)
        if isinstance(r["body"], dict) and r["body"].get("model") == upstream_model
    ]


def _cost(usage: Usage, cached: str | None = None) -> int:
    price = Price(
        input=Decimal(2), output=Decimal(8), cached_input=Decimal(cached) if cached else None
    )
    return compute_cost(usage, price, Decimal(1))


def _anthropic_usage(usage: Any) -> Usage:
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=usage.input_tokens + read + written,
        cached_input_tokens=read,
        cache_write_tokens=written,
        output_tokens=usage.output_tokens,
    )


async def _assert_billed(provision: Provisioner, route: Route, usage: Usage) -> dict[str, Any]:
    await provision.wait_settled()
    [row] = await provision.usage_rows(route.tenant_id)
    assert (
        row["input_tokens"],
        row["cached_input_tokens"],
        row["cache_write_tokens"],
        row["output_tokens"],
    ) == (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
    )
    assert row["estimated"] is False and row["status"] == "ok"
    assert row["cost"] == _cost(usage)
    books = await provision.books(route.tenant_id)
    assert books["balance"] == 10_000_000_000 - row["cost"]
    return row


def _events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse an Anthropic SSE body; every event must have an event line and a data line."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        data = json.loads(lines[1][6:])
        assert data["type"] == lines[0][7:]
        events.append((lines[0][7:], data))
    return events


async def _post_messages(
    provision: Provisioner,
    key: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{provision.gateway_url}{path}",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01", **(headers or {})},
            json=body,
        )


# --------------------------------------------------------------------------- SDK, passthrough


CLAUDE_HEADERS = {
    "anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
    "user-agent": "claude-cli/2.0.31 (external, cli)",
    "x-app": "cli",
}


async def test_sdk_non_stream_to_an_anthropic_channel_is_passed_through(
    provision: Provisioner,
) -> None:
    route = await _route(provision)
    client = _client(provision, route.key, default_headers=CLAUDE_HEADERS)
    messages = [{"role": "user", "content": "Say hello world"}]

    raw = await client.messages.with_raw_response.create(
        model=route.model,
        max_tokens=200,
        messages=messages,  # type: ignore[arg-type]
    )
    message = await raw.parse()

    assert message.model == route.model
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert raw.headers["x-request-id"].startswith("req_")
    [call] = await _upstream_calls(provision, route.upstream_model)
    assert call["path"] == "/v1/messages"
    assert call["body"] == {
        "max_tokens": 200,
        "messages": messages,
        "model": route.upstream_model,
    }
    for name, value in CLAUDE_HEADERS.items():
        assert call["headers"][name] == value
    assert call["headers"]["x-api-key"] == "sk-upstream-test"
    sent_version = raw.http_request.headers["anthropic-version"]
    assert call["headers"]["anthropic-version"] == sent_version
    await _assert_billed(provision, route, _anthropic_usage(message.usage))


async def test_sdk_stream_to_an_anthropic_channel_is_passed_through(
    provision: Provisioner,
) -> None:
    route = await _route(provision)
    client = _client(provision, route.key, default_headers=CLAUDE_HEADERS)

    async with client.messages.stream(
        model=route.model,
        max_tokens=300,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Tell me a story"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"context_management": {"edits": []}},
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()

    assert text and message.model == route.model
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].signature  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens  # the marked system prompt was "cached"
    [call] = await _upstream_calls(provision, route.upstream_model)
    assert call["body"]["stream"] is True
    assert call["body"]["context_management"] == {"edits": []}
    assert call["headers"]["user-agent"] == CLAUDE_HEADERS["user-agent"]
    await _assert_billed(provision, route, _anthropic_usage(message.usage))


async def test_passthrough_stream_keeps_every_event_and_renames_the_model(
    provision: Provisioner,
) -> None:
    route = await _route(provision)

    response = await _post_messages(
        provision,
        route.key,
        {
            "model": route.model,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and "ping" in names
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == route.model
    assert "input_tokens" in events[0][1]["message"]["usage"]
    assert "[DONE]" not in response.text


# --------------------------------------------------------------------------- SDK, conversion


async def test_sdk_non_stream_to_an_openai_channel_is_converted(provision: Provisioner) -> None:
    route = await _route(provision, kind="openai")
    client = _client(provision, route.key)

    message = await client.messages.create(
        model=route.model,
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello world"}],
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
    )

    assert message.model == route.model and message.type == "message"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    [call] = await _upstream_calls(provision, route.upstream_model)
    assert call["path"] == "/v1/chat/completions"
    body = call["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello world"},
    ]
    assert (body["max_completion_tokens"], body["stop"], body["user"]) == (200, ["END"], "user-7")
    await _assert_billed(provision, route, _anthropic_usage(message.usage))


async def test_sdk_stream_to_an_openai_channel_is_converted(provision: Provisioner) -> None:
    route = await _route(provision, kind="openai")
    client = _client(provision, route.key)

    async with client.messages.stream(
        model=route.model, max_tokens=200, messages=[{"role": "user", "content": "Tell a story"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()

    assert text and message.content[0].text == text  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.model == route.model
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    [call] = await _upstream_calls(provision, route.upstream_model)
    assert call["body"]["stream_options"] == {"include_usage": True}
    await _assert_billed(provision, route, _anthropic_usage(message.usage))


async def test_converted_stream_has_the_messages_event_sequence(provision: Provisioner) -> None:
    """BC03.3: an OpenAI upstream's ``[DONE]`` never reaches an Anthropic client."""
    route = await _route(provision, kind="openai")

    response = await _post_messages(
        provision,
        route.key,
        {
            "model": route.model,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    events = _events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("content_block_start") == names.count("content_block_stop") == 1
    [(_, delta)] = [e for e in events if e[0] == "message_delta"]
    assert set(delta["usage"]) >= {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    }
    assert "[DONE]" not in response.text


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_round_trip(provision: Provisioner, kind: str, stream: bool) -> None:
    route = await _route(provision, kind=kind)
    client = _client(provision, route.key)
    tools = [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]

    async def ask() -> Any:
        if not stream:
            return await client.messages.create(
                model=route.model,
                max_tokens=300,
                tools=tools,  # type: ignore[arg-type]
                messages=messages,  # type: ignore[arg-type]
            )
        async with client.messages.stream(
            model=route.model,
            max_tokens=300,
            tools=tools,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
        ) as events:
            return await events.get_final_message()

    first = await ask()
    [call] = [block for block in first.content if block.type == "tool_use"]
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21C, sunny"}],
        },
    ]
    second = await ask()

    assert first.stop_reason == "tool_use"
    assert call.name == "get_weather" and isinstance(call.input, dict) and call.input
    assert second.stop_reason == "end_turn"
    assert any(block.type == "text" and block.text for block in second.content)
    calls = await _upstream_calls(provision, route.upstream_model)
    sent = calls[-1]["body"]["messages"]
    if kind == "openai":
        assert sent[1]["tool_calls"][0]["id"] == call.id
        assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "21C, sunny"}
    else:
        assert sent[2]["content"][0]["tool_use_id"] == call.id


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_image_input(provision: Provisioner, kind: str) -> None:
    route = await _route(provision, kind=kind)
    image = {"type": "base64", "media_type": "image/png", "data": PNG_1X1}

    message = await _client(provision, route.key).messages.create(
        model=route.model,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": image},  # type: ignore[typeddict-item]
                ],
            }
        ],
    )

    assert message.content[0].type == "text"
    [call] = await _upstream_calls(provision, route.upstream_model)
    content = call["body"]["messages"][0]["content"]
    if kind == "openai":
        assert content[1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"},
        }
    else:
        assert content[1] == {"type": "image", "source": image}
    assert base64.b64decode(PNG_1X1)[:4] == b"\x89PNG"


@contextlib.asynccontextmanager
async def _image_server(payload: bytes) -> AsyncIterator[str]:
    """Serve ``payload`` as ``image/png`` on 127.0.0.1; yields the image URL."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(payload)}"
        writer.write(head.encode() + b"\r\nConnection: close\r\n\r\n" + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/cat.png"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("image_urls", ["inline", "pass"])
async def test_bc22_remote_image_for_an_anthropic_channel(
    provision: Provisioner, image_urls: str
) -> None:
    route = await _route(provision, settings={"image_urls": image_urls, "auth": "bearer"})
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": ""}},
    ]

    async with _image_server(base64.b64decode(PNG_1X1)) as url:
        content[1]["image_url"] = {"url": url}
        completion = await provision.openai(route.key).chat.completions.create(
            model=route.model,
            messages=[{"role": "user", "content": content}],  # type: ignore[misc]
        )

    assert completion.choices[0].message.content
    [call] = await _upstream_calls(provision, route.upstream_model)
    source = call["body"]["messages"][0]["content"][1]["source"]
    if image_urls == "inline":
        assert source == {"type": "base64", "media_type": "image/png", "data": PNG_1X1}
    else:
        assert source == {"type": "url", "url": url}
    assert call["headers"]["authorization"] == "Bearer sk-upstream-test"
    assert call["headers"]["x-api-key"] == "sk-upstream-test"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "status", "error_class", "error_type"),
    [
        ("status=400", 400, anthropic.BadRequestError, "invalid_request_error"),
        ("status=429", 429, anthropic.RateLimitError, "rate_limit_error"),
        ("status=500", 502, anthropic.InternalServerError, "api_error"),
        ("status=529", 529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_upstream_errors_raise_the_sdk_exception(
    provision: Provisioner,
    fault: str,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
    stream: bool,
) -> None:
    route = await _route(provision, fault=fault)
    client = _client(provision, route.key)

    async def ask() -> None:
        if stream:
            async with client.messages.stream(
                model=route.model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            ) as events:
                await events.get_final_message()
        else:
            await client.messages.create(
                model=route.model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )

    with pytest.raises(error_class) as raised:
        await ask()

    assert raised.value.status_code == status
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == error_type and body["error"]["message"]
    assert raised.value.response.headers["content-type"] == "application/json"
    await provision.wait_settled()
    assert (await provision.books(route.tenant_id))["balance"] == 10_000_000_000


async def test_gateway_errors_raise_the_sdk_exception(provision: Provisioner) -> None:
    route = await _route(provision)
    hi = [{"role": "user", "content": "hi"}]

    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        await _client(provision, "sk-tg-not-a-key").messages.create(
            model=route.model,
            max_tokens=10,
            messages=hi,  # type: ignore[arg-type]
        )
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await _client(provision, route.key).messages.create(
            model="no-such-model",
            max_tokens=10,
            messages=hi,  # type: ignore[arg-type]
        )
    bearer = anthropic.AsyncAnthropic(
        base_url=provision.gateway_url, auth_token=route.key, max_retries=0
    )
    message = await bearer.messages.create(
        model=route.model,
        max_tokens=10,
        messages=hi,  # type: ignore[arg-type]
    )

    assert bad_key.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert message.content


async def test_request_errors_have_the_anthropic_shape(provision: Provisioner) -> None:
    route = await _route(provision)

    missing = await _post_messages(
        provision, route.key, {"model": route.model, "messages": [{"role": "user", "content": "x"}]}
    )
    negative = await _post_messages(
        provision, route.key, {"model": route.model, "max_tokens": -1, "messages": []}
    )
    async with httpx.AsyncClient(timeout=10) as client:
        wrong_method = await client.get(f"{provision.gateway_url}/v1/messages")

    assert missing.status_code == 400
    assert missing.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": missing.headers["x-request-id"],
    }
    assert negative.status_code == 400
    assert negative.json()["error"]["type"] == "invalid_request_error"
    assert wrong_method.status_code == 405
    await provision.wait_settled()
    assert await provision.usage_rows(route.tenant_id) == []


# --------------------------------------------------------------------------- count, models


async def test_count_tokens_is_offline_and_free(provision: Provisioner) -> None:
    route = await _route(provision)

    counted = await _client(provision, route.key).messages.count_tokens(
        model=route.model,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello world"}],
    )

    assert counted.input_tokens > 0
    assert await _upstream_calls(provision, route.upstream_model) == []
    await provision.wait_settled()
    assert await provision.usage_rows(route.tenant_id) == []
    assert (await provision.books(route.tenant_id))["balance"] == 10_000_000_000


async def test_model_listing_in_the_anthropic_shape(provision: Provisioner) -> None:
    route = await _route(provision)
    async with provision.sessions() as session:
        tenant = await session.scalar(
            text("SELECT name FROM tenant WHERE id = :t"), {"t": route.tenant_id}
        )
    _, key = await provision.key(tenant, models=[route.model])
    client = _client(provision, key)

    page = await client.models.list()
    one = await client.models.retrieve(route.model)

    assert [m.id for m in page.data] == [route.model]
    assert page.data[0].type == "model" and page.data[0].display_name == route.model
    assert one.id == route.model and one.created_at.year >= 2024
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("no-such-model")
    async with httpx.AsyncClient() as http:
        raw = await http.get(
            f"{provision.gateway_url}/v1/models",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
    assert raw.json() == {
        "data": [
            {
                "type": "model",
                "id": route.model,
                "display_name": route.model,
                "created_at": one.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ],
        "has_more": False,
        "first_id": route.model,
        "last_id": route.model,
    }


# --------------------------------------------------------------------------- BC08


def _frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def bc08_chunks(start_usage: dict[str, int], delta_usage: dict[str, int]) -> list[str]:
    """The BC08 upstream stream, one write per event."""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "usage": start_usage,
    }
    text_block = {"type": "text", "text": ""}
    text_delta = {"type": "text_delta", "text": "Hi!"}
    return [
        _frame("message_start", {"type": "message_start", "message": message}),
        _frame(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": text_block},
        ),
        _frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": text_delta},
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


BC08_VARIANTS = {
    "A": (
        {"input_tokens": 27, "output_tokens": 1},
        {"input_tokens": 27, "cache_read_input_tokens": 0, "output_tokens": 47},
        (27, 47, 74),
    ),
    "B": (
        {"input_tokens": 0, "output_tokens": 0},
        {"input_tokens": 4522, "cache_creation_input_tokens": 4511, "output_tokens": 5},
        (9033, 5, 9038),
    ),
}


@pytest.mark.parametrize("variant", ["A", "B"])
async def test_bc08_cumulative_anthropic_usage_on_chat_completions(
    provision: Provisioner, variant: str
) -> None:
    start, delta, (prompt, completion, total) = BC08_VARIANTS[variant]
    upstream = await _replay_root(provision, bc08_chunks(start, delta))
    route = await _route(provision, base_url=upstream)

    chunks = [
        chunk
        async for chunk in await provision.openai(route.key).chat.completions.create(
            model=route.model,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi!"
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        prompt,
        completion,
        total,
    )
    written = delta.get("cache_creation_input_tokens", 0)
    row = await _assert_billed(
        provision,
        route,
        Usage(input_tokens=prompt, cache_write_tokens=written, output_tokens=completion),
    )
    assert (row["input_tokens"], row["output_tokens"]) == (prompt, completion)


@pytest.mark.parametrize("variant", ["A", "B"])
async def test_bc08_cumulative_anthropic_usage_on_messages(
    provision: Provisioner, variant: str
) -> None:
    start, delta, (prompt, completion, _) = BC08_VARIANTS[variant]
    upstream = await _replay_root(provision, bc08_chunks(start, delta))
    route = await _route(provision, base_url=upstream)

    response = await _post_messages(
        provision,
        route.key,
        {
            "model": route.model,
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    async with _client(provision, route.key).messages.stream(
        model=route.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = await stream.get_final_message()

    [(_, message_delta)] = [e for e in _events(response.text) if e[0] == "message_delta"]
    assert message_delta["usage"] == delta
    usage = message.usage
    assert usage.input_tokens + (usage.cache_creation_input_tokens or 0) == prompt
    assert usage.output_tokens == completion
    await provision.wait_settled()
    rows = await provision.usage_rows(route.tenant_id)
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(prompt, completion)] * 2
    expected = Usage(
        input_tokens=prompt,
        cache_write_tokens=delta.get("cache_creation_input_tokens", 0),
        output_tokens=completion,
    )
    assert [r["cost"] for r in rows] == [_cost(expected)] * 2


# --------------------------------------------------------------------------- BC11 A


BC11_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Cached answer."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 3,
        "cache_read_input_tokens": 20000,
        "cache_creation_input_tokens": 1500,
        "output_tokens": 50,
    },
}


async def test_bc11_a_cache_usage_is_normalised_and_priced(provision: Provisioner) -> None:
    upstream = await _replay_root(
        provision, [json.dumps(BC11_MESSAGE)], content_type="application/json"
    )
    route = await _route(provision, base_url=upstream, cached_price="0.2")

    completion = await provision.openai(route.key).chat.completions.create(
        model=route.model, messages=[{"role": "user", "content": "hi"}]
    )
    message = await _client(provision, route.key).messages.create(
        model=route.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )

    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (21503, 20000)
    assert (usage.completion_tokens, usage.total_tokens) == (50, 21553)
    assert message.usage.model_dump(exclude_none=True) == BC11_MESSAGE["usage"]
    expected = Usage(
        input_tokens=21503, cached_input_tokens=20000, cache_write_tokens=1500, output_tokens=50
    )
    # 3 + 1500 uncached at 2 USD/M, 20000 cached at 0.2 USD/M, 50 output at 8 USD/M.
    assert _cost(expected, "0.2") == (1503 * 2_000 + 20000 * 200 + 50 * 8_000)
    await provision.wait_settled()
    rows = await provision.usage_rows(route.tenant_id)
    assert [r["cost"] for r in rows] == [_cost(expected, "0.2")] * 2
    assert {
        (r["input_tokens"], r["cached_input_tokens"], r["cache_write_tokens"]) for r in rows
    } == {(21503, 20000, 1500)}


# --------------------------------------------------------------------------- BC15.3


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


_TOOL_DELTA = {
    "tool_calls": [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
}
_OPENAI_USAGE = (
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
    '"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n'
)


def _openai_completion(message: dict[str, Any], finish: str) -> str:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
    )


@pytest.mark.parametrize(
    ("finish", "delta", "message", "expected"),
    [
        ("length", {"content": "Quail"}, {"role": "assistant", "content": "Quail"}, "max_tokens"),
        (
            "tool_calls",
            _TOOL_DELTA,
            {"role": "assistant", "content": None, **_TOOL_DELTA},
            "tool_use",
        ),
    ],
)
async def test_bc15_openai_finish_reasons_become_stop_reasons(
    provision: Provisioner,
    finish: str,
    delta: dict[str, Any],
    message: dict[str, Any],
    expected: str,
) -> None:
    streamed = await replay(
        provision.simulator_url,
        [
            _openai_chunk({"role": "assistant", **delta}),
            _openai_chunk({}, finish),
            _OPENAI_USAGE,
            "data: [DONE]\n\n",
        ],
    )
    whole = await replay(
        provision.simulator_url,
        [_openai_completion(message, finish)],
        content_type="application/json",
    )
    stream_route = await _route(provision, kind="openai", base_url=streamed)
    whole_route = await _route(provision, kind="openai", base_url=whole)
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]

    async with _client(provision, stream_route.key).messages.stream(
        model=stream_route.model,
        max_tokens=2,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "give me 3 random words"}],
    ) as stream:
        streamed_message = await stream.get_final_message()
    whole_message = await _client(provision, whole_route.key).messages.create(
        model=whole_route.model,
        max_tokens=2,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "give me 3 random words"}],
    )

    for result in (streamed_message, whole_message):
        assert result.stop_reason == expected
        assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
        if expected == "tool_use":
            [block] = result.content
            assert block.type == "tool_use" and block.input == {"city": "Paris"}
            assert block.id == "call_1"
        else:
            assert result.content[0].text == "Quail"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- BC33


def _claude_code_body(model: str, *, stream: bool) -> dict[str, Any]:
    """A request shaped like Claude Code's: ~76 KB, 24 tools, three system blocks."""
    filler = " ".join(f"Rule {i}: keep the diff small and explain why." for i in range(220))
    tools = [
        {
            "name": f"Tool{i:02d}",
            "description": f"Tool number {i}. " + filler[:2200],
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "An absolute path."},
                    "limit": {"type": "number"},
                },
                "required": ["path"],
                "additionalProperties": False,
            },
        }
        for i in range(24)
    ]
    cache = {"type": "ephemeral"}
    body = {
        "model": model,
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {
            "user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s1"})
        },
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": filler, "cache_control": cache},
            {"type": "text", "text": "Environment: linux, /work/repo", "cache_control": cache},
        ],
        "tools": tools,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                    {"type": "text", "text": "Fix the failing test.", "cache_control": cache},
                ],
            },
            {"role": "system", "content": "The user switched to plan mode."},
            {"role": "user", "content": "Go on."},
        ],
    }
    if stream:
        body["stream"] = True
    return body


CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": (
        "claude-code-20250219,interleaved-thinking-2025-05-14,"
        "fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27,"
        "effort-2025-11-24,oauth-2025-04-20"
    ),
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.3 (external, cli)",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-stainless-lang": "js",
    "x-stainless-retry-count": "0",
}


async def test_bc33_head_root_answers_at_once(provision: Provisioner) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.head(f"{provision.gateway_url}/")

    assert response.status_code < 600


@pytest.mark.parametrize("stream", [True, False])
async def test_bc33_claude_code_request_passes_through_to_anthropic(
    provision: Provisioner, stream: bool
) -> None:
    route = await _route(provision)
    body = _claude_code_body(route.model, stream=stream)
    assert 70_000 < len(json.dumps(body)) < 90_000

    response = await _post_messages(
        provision, route.key, body, CLAUDE_CODE_HEADERS, path="/v1/messages?beta=true"
    )

    assert response.status_code == 200, response.text
    if stream:
        events = _events(response.text)
        names = [name for name, _ in events]
        assert names[0] == "message_start" and names[-1] == "message_stop"
        assert events[0][1]["message"]["usage"]["input_tokens"] >= 0
        [(_, delta)] = [e for e in events if e[0] == "message_delta"]
        assert delta["usage"]["output_tokens"] > 0
    else:
        assert response.json()["type"] == "message"
        assert response.json()["model"] == route.model
    [call] = await _upstream_calls(provision, route.upstream_model)
    assert call["body"] == {**body, "model": route.upstream_model}
    for name in ("anthropic-beta", "x-app", "user-agent", "anthropic-version"):
        assert call["headers"][name] == CLAUDE_CODE_HEADERS[name]
    assert call["headers"]["x-api-key"] == "sk-upstream-test"
    await provision.wait_settled()
    [row] = await provision.usage_rows(route.tenant_id)
    assert row["status"] == "ok" and row["estimated"] is False


@pytest.mark.parametrize("stream", [True, False])
async def test_bc33_claude_code_request_is_converted_for_openai(
    provision: Provisioner, stream: bool
) -> None:
    route = await _route(provision, kind="openai")
    body = _claude_code_body(route.model, stream=stream)

    response = await _post_messages(
        provision, route.key, body, CLAUDE_CODE_HEADERS, path="/v1/messages?beta=true"
    )

    assert response.status_code == 200, response.text
    if stream:
        names = [name for name, _ in _events(response.text)]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    else:
        assert response.json()["type"] == "message"
    [call] = await _upstream_calls(provision, route.upstream_model)
    sent = call["body"]
    assert call["path"] == "/v1/chat/completions"
    assert [m["role"] for m in sent["messages"]] == ["system"] * 3 + ["user", "system", "user"]
    assert sent["messages"][4]["content"] == "The user switched to plan mode."
    assert len(sent["tools"]) == 24
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["path"]
    assert sent["max_completion_tokens"] == 64000
    assert "context_management" not in sent and "output_config" not in sent
    assert "anthropic-beta" not in call["headers"]


@pytest.mark.parametrize("stream", [True, False])
async def test_bc33_overloaded_upstream_is_529_overloaded_error(
    provision: Provisioner, stream: bool
) -> None:
    route = await _route(provision, fault="status=529")

    response = await _post_messages(
        provision,
        route.key,
        _claude_code_body(route.model, stream=stream),
        CLAUDE_CODE_HEADERS,
        path="/v1/messages?beta=true",
    )

    assert response.status_code == 529
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
    assert error["request_id"] == response.headers["x-request-id"]


async def test_overloaded_error_event_before_content_is_529(provision: Provisioner) -> None:
    route = await _route(provision, fault="status=529,error_after=0")

    response = await _post_messages(
        provision,
        route.key,
        {
            "model": route.model,
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


async def test_bc33_stream_failing_mid_way_then_the_non_stream_retry_works(
    provision: Provisioner,
) -> None:
    # The fault breaks streams after two content events; whole answers are served normally.
    route = await _route(provision, fault="status=529,error_after=2")
    body = _claude_code_body(route.model, stream=True)

    streamed = await _post_messages(
        provision, route.key, body, CLAUDE_CODE_HEADERS, path="/v1/messages?beta=true"
    )
    del body["stream"]
    retried = await _post_messages(
        provision, route.key, body, CLAUDE_CODE_HEADERS, path="/v1/messages?beta=true"
    )

    assert streamed.status_code == 200
    events = _events(streamed.text)
    name, error = events[-1]
    assert name == "error" and error["error"]["type"] == "overloaded_error"
    assert "message_stop" not in [name for name, _ in events]
    assert retried.status_code == 200 and retried.json()["type"] == "message"
    await provision.wait_settled()
    failed, served = await provision.usage_rows(route.tenant_id)
    assert failed["status"] == "error" and failed["cost"] > 0
    assert served["status"] == "ok" and served["estimated"] is False


async def test_openai_client_on_an_anthropic_channel(provision: Provisioner) -> None:
    route = await _route(provision)
    client = provision.openai(route.key)

    completion = await client.chat.completions.create(
        model=route.model,
        max_tokens=300,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    streamed = [
        chunk
        async for chunk in await client.chat.completions.create(
            model=route.model,
            messages=[{"role": "user", "content": "Say hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert json.loads(choice.message.tool_calls[0].function.arguments)  # type: ignore[union-attr]
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens > 0
    calls = await _upstream_calls(provision, route.upstream_model)
    first = calls[0]["body"]
    assert first["system"] == [{"type": "text", "text": "Be brief."}]
    assert first["max_tokens"] == 300 and first["tools"][0]["name"] == "get_weather"
    assert calls[1]["body"]["max_tokens"] == 4096 and calls[1]["body"]["stream"] is True


async def test_invalid_images_and_empty_conversations_are_400s(provision: Provisioner) -> None:
    setup = await provision.setup()
    client = anthropic.AsyncAnthropic(
        base_url=provision.gateway_url, api_key=setup.key, max_retries=0
    )
    bad_image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "text/html", "data": "!!!"},
    }

    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model=setup.model, max_tokens=10, messages=[{"role": "user", "content": [bad_image]}]
        )
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model=setup.model, max_tokens=10, messages=[{"role": "user", "content": []}]
        )
