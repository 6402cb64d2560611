"""Every client protocol against every upstream kind: text, a tool round trip, an image.

Three official SDKs (openai, anthropic, google-genai) call the gateway; each upstream kind is
the simulator speaking that provider's wire format. Each cell checks what the client sees
and that the billed usage is the upstream's own: the simulator counts completion tokens as
the cl100k tokens of the text it emits, so the billed output must equal that count of the
text the client received.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import types

from gateway.tokens import count_tokens
from tests.support import Provisioner

pytestmark = pytest.mark.e2e

UPSTREAMS = ["openai", "anthropic", "gemini", "workers-ai"]
CLIENTS = ["openai", "anthropic", "gemini"]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# A 1x1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
    )
).decode()


def base_url(provision: Provisioner, kind: str) -> str:
    root = provision.simulator_url
    return {
        "openai": f"{root}/v1",
        "anthropic": root,
        "gemini": root,
        "workers-ai": f"{root}/client/v4/accounts/acct-test",
    }[kind]


async def _model(provision: Provisioner, kind: str) -> tuple[str, str, int]:
    tenant, tenant_id = await provision.tenant("100")
    model = f"m-{kind}-{secrets.token_hex(3)}"
    await provision.price(model, "2", "8")
    await provision.channel([model], base_url=base_url(provision, kind), kind=kind)
    _, key = await provision.key(tenant)
    await provision.wait_visible(key, model)
    return model, key, tenant_id


class Turn:
    """What one call returned, in protocol-neutral terms."""

    def __init__(
        self, text: str, calls: list[tuple[str, str, dict[str, Any]]], finish: str
    ) -> None:
        self.text = text
        self.calls = calls
        self.finish = finish


async def _openai_turn(
    provision: Provisioner,
    key: str,
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool,
    tools: bool,
) -> Turn:
    client = provision.openai(key)
    kwargs: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        kwargs["tools"] = [{"type": "function", "function": WEATHER_TOOL}]
    if not stream:
        completion = await client.chat.completions.create(**kwargs)
        message = completion.choices[0].message
        calls = [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or ()
        ]
        return Turn(message.content or "", calls, completion.choices[0].finish_reason)
    text, finish = "", ""
    calls: dict[int, list[str]] = {}
    async for chunk in await client.chat.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, ["", "", ""])
                entry[0] = call.id or entry[0]
                entry[1] = (call.function.name if call.function else None) or entry[1]
                entry[2] += (call.function.arguments if call.function else None) or ""
            finish = choice.finish_reason or finish
    return Turn(text, [(i, n, json.loads(a or "{}")) for i, n, a in calls.values()], finish)


def _openai_messages(prompt: str, image: bool) -> list[dict[str, Any]]:
    if image:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ]
    return [{"role": "user", "content": prompt}]


async def _anthropic_turn(
    provision: Provisioner,
    key: str,
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool,
    tools: bool,
) -> Turn:
    client = anthropic.AsyncAnthropic(base_url=provision.gateway_url, api_key=key, max_retries=0)
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 256, "messages": messages}
    if tools:
        kwargs["tools"] = [
            {
                "name": WEATHER_TOOL["name"],
                "description": WEATHER_TOOL["description"],
                "input_schema": WEATHER_TOOL["parameters"],
            }
        ]
    if stream:
        async with client.messages.stream(**kwargs) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [(b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"]
    return Turn(text, calls, str(message.stop_reason))


def _anthropic_messages(prompt: str, image: bool) -> list[dict[str, Any]]:
    if image:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            }
        ]
    return [{"role": "user", "content": prompt}]


async def _gemini_turn(
    provision: Provisioner, key: str, model: str, contents: list[Any], *, stream: bool, tools: bool
) -> Turn:
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(base_url=provision.gateway_url, api_version="v1beta"),
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER_TOOL)])]
        if tools
        else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    text, finish = "", ""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    if stream:
        responses = [
            r
            async for r in await client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
        ]
    else:
        responses = [
            await client.aio.models.generate_content(model=model, contents=contents, config=config)
        ]
    for response in responses:
        for candidate in response.candidates or ():
            for part in (candidate.content.parts if candidate.content else None) or ():
                if part.text and not part.thought:
                    text += part.text
                if part.function_call:
                    calls.append(
                        (
                            part.function_call.id or "",
                            part.function_call.name or "",
                            dict(part.function_call.args or {}),
                        )
                    )
            if candidate.finish_reason:
                finish = str(
                    candidate.finish_reason.value
                    if hasattr(candidate.finish_reason, "value")
                    else candidate.finish_reason
                )
    return Turn(text, calls, finish)


def _gemini_contents(prompt: str, image: bool) -> list[Any]:
    parts: list[Any] = [types.Part(text=prompt)]
    if image:
        parts.append(
            types.Part(inline_data=types.Blob(mime_type="image/png", data=base64.b64decode(PNG)))
        )
    return [types.Content(role="user", parts=parts)]


async def _turn(
    client: str,
    provision: Provisioner,
    key: str,
    model: str,
    history: Any,
    *,
    stream: bool,
    tools: bool,
) -> Turn:
    turn = {"openai": _openai_turn, "anthropic": _anthropic_turn, "gemini": _gemini_turn}[client]
    return await turn(provision, key, model, history, stream=stream, tools=tools)


def _start(client: str, prompt: str, *, image: bool = False) -> Any:
    return {
        "openai": _openai_messages,
        "anthropic": _anthropic_messages,
        "gemini": _gemini_contents,
    }[client](prompt, image)


def _continue_with_tool_result(client: str, history: Any, turn: Turn, result: str) -> Any:
    call_id, name, arguments = turn.calls[0]
    if client == "openai":
        return [
            *history,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": result},
        ]
    if client == "anthropic":
        return [
            *history,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}],
            },
        ]
    return [
        *history,
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(id=call_id or None, name=name, args=arguments)
                )
            ],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id=call_id or None, name=name, response={"result": result}
                    )
                )
            ],
        ),
    ]


async def _last_row(provision: Provisioner, tenant_id: int) -> dict[str, Any]:
    await provision.wait_settled()
    rows = await provision.usage_rows(tenant_id)
    return rows[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_text_is_served_and_billed_from_upstream_usage(
    provision: Provisioner, client: str, upstream: str, stream: bool
) -> None:
    model, key, tenant_id = await _model(provision, upstream)

    turn = await _turn(
        client,
        provision,
        key,
        model,
        _start(client, "Tell me about bridges"),
        stream=stream,
        tools=False,
    )

    assert turn.text.strip()
    assert not turn.calls
    row = await _last_row(provision, tenant_id)
    assert row["status"] == "ok"
    assert row["output_tokens"] == count_tokens(turn.text)
    assert row["input_tokens"] > 0
    assert row["cost"] > 0
    books = await provision.books(tenant_id)
    assert books["balance"] == 100_000_000_000 - row["cost"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_tool_call_round_trip(
    provision: Provisioner, client: str, upstream: str, stream: bool
) -> None:
    model, key, tenant_id = await _model(provision, upstream)
    history = _start(client, "What is the weather in Paris?")

    first = await _turn(client, provision, key, model, history, stream=stream, tools=True)

    assert [(name, args) for _, name, args in first.calls] == [("get_weather", {"city": "Paris"})]
    assert first.finish.lower() in {"tool_calls", "tool_use", "stop", "finishreason.stop"}
    second = await _turn(
        client,
        provision,
        key,
        model,
        _continue_with_tool_result(client, history, first, "21C and sunny"),
        stream=stream,
        tools=True,
    )
    assert "21C and sunny" in second.text
    rows = (await provision.usage_rows(tenant_id)) if await _last_row(provision, tenant_id) else []
    assert len(rows) == 2 and all(r["status"] == "ok" and r["cost"] > 0 for r in rows)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_image_input_reaches_the_upstream(
    provision: Provisioner, client: str, upstream: str, stream: bool
) -> None:
    model, key, tenant_id = await _model(provision, upstream)

    turn = await _turn(
        client,
        provision,
        key,
        model,
        _start(client, "What is in this picture?", image=True),
        stream=stream,
        tools=False,
    )

    assert turn.text.strip()
    row = await _last_row(provision, tenant_id)
    assert row["status"] == "ok"
    if upstream != "workers-ai":
        # The simulator counts 85 tokens per image it received.
        assert row["input_tokens"] >= 85
