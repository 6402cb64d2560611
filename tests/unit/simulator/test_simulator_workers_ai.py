from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gateway.simulator.composer import default_sentence

if TYPE_CHECKING:
    import httpx

    from tests.unit.simulator.conftest import Tokens

MODEL = "@cf/meta/llama-3.1-8b-instruct"
RUN = f"/client/v4/accounts/acc-1/ai/run/{MODEL}"


async def test_run_answers_in_the_cloudflare_envelope(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await client.post(
        RUN,
        json={
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
            ]
        },
    )

    text = default_sentence(MODEL, 0, 12)
    prompt = tokens.prompt("Be brief.", "hi")
    assert response.json() == {
        "result": {
            "response": text,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": tokens(text),
                "total_tokens": prompt + tokens(text),
            },
        },
        "success": True,
        "errors": [],
        "messages": [],
    }


async def test_run_stream_sends_words_then_usage_then_done(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await client.post(RUN, json={"prompt": "hi", "stream": True})

    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    *words, usage = [json.loads(e) for e in events[:-1]]
    text = default_sentence(MODEL, 0, 12)
    assert "".join(w["response"] for w in words) == text
    assert len(words) == 12
    assert usage == {
        "response": "",
        "usage": {
            "prompt_tokens": tokens("hi"),
            "completion_tokens": tokens(text),
            "total_tokens": tokens("hi") + tokens(text),
        },
    }


async def test_run_max_tokens_and_tools(client: httpx.AsyncClient) -> None:
    short = await client.post(RUN, json={"prompt": "hi", "max_tokens": 2})
    tool = await client.post(
        RUN,
        json={
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ],
        },
    )

    assert short.json()["result"]["usage"]["completion_tokens"] == 2
    result = tool.json()["result"]
    assert result["response"] is None
    assert result["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


async def test_run_embeddings(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/client/v4/accounts/a/ai/run/@cf/baai/bge-small-en-v1.5", json={"text": ["a", "b"]}
    )

    result = response.json()["result"]
    assert result["shape"] == [2, 64]
    assert len(result["data"]) == 2


async def test_run_bad_request_in_the_cloudflare_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post(RUN, json={"nothing": True})

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["errors"][0]["code"] == 5006


async def test_run_mid_stream_error_uses_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/_fault/error_after=1{RUN}", json={"prompt": "hi", "stream": True}
    )

    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert len(events) == 2
    assert json.loads(events[-1]) == {
        "success": False,
        "errors": [
            {"code": 3043, "message": "The service is temporarily unavailable (simulated)."}
        ],
    }
