from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from google import genai
from google.genai import types

from gateway.simulator.composer import THINKING_TEXT, default_sentence

if TYPE_CHECKING:
    import httpx

    from tests.unit.simulator.conftest import Tokens

MODEL = "gemini-2.0-flash"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)


def make_client(base_url: str) -> genai.Client:
    return genai.Client(api_key="gm-test", http_options=types.HttpOptions(base_url=base_url))


@pytest.fixture(scope="module")
def sdk(simulator_url: str) -> genai.Client:
    return make_client(simulator_url)


def test_generate_content_with_exact_usage(sdk: genai.Client, tokens: Tokens) -> None:
    response = sdk.models.generate_content(
        model=MODEL,
        contents="hi",
        config=types.GenerateContentConfig(system_instruction="Be brief."),
    )

    text = default_sentence(MODEL, 0, 12)
    assert response.text == text
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == tokens.prompt("Be brief.", "hi")
    assert usage.candidates_token_count == tokens(text)
    assert usage.total_token_count == usage.prompt_token_count + tokens(text)
    assert usage.thoughts_token_count is None


def test_stream_sse_running_usage_last_wins(sdk: genai.Client, tokens: Tokens) -> None:
    chunks = list(sdk.models.generate_content_stream(model=MODEL, contents="hi"))

    text = default_sentence(MODEL, 0, 12)
    assert "".join(chunk.text or "" for chunk in chunks) == text
    assert len(chunks) == 13
    counts = [
        chunk.usage_metadata.candidates_token_count or 0 for chunk in chunks if chunk.usage_metadata
    ]
    assert counts == sorted(counts)
    assert counts[-1] == tokens(text)
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])


async def test_stream_sse_events_end_with_crlf_and_no_done(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )

    assert response.headers["content-type"] == "text/event-stream"
    events = response.text.split("\r\n\r\n")
    assert events[-1] == ""
    assert all(event.startswith("data: {") for event in events[:-1])
    assert "[DONE]" not in response.text


async def test_stream_without_alt_is_one_json_array(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v1beta/models/{MODEL}:streamGenerateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )

    elements = json.loads(response.text)
    assert isinstance(elements, list)
    assert len(elements) == 13
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


def test_candidate_count_gives_that_many_candidates(sdk: genai.Client, tokens: Tokens) -> None:
    response = sdk.models.generate_content(
        model=MODEL, contents="one word", config=types.GenerateContentConfig(candidate_count=3)
    )

    assert response.candidates is not None
    assert [c.index for c in response.candidates] == [0, 1, 2]
    texts = [c.content.parts[0].text for c in response.candidates if c.content and c.content.parts]
    assert texts == [default_sentence(MODEL, i, 12) for i in range(3)]
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == sum(tokens(t or "") for t in texts)


def test_max_output_tokens_gives_max_tokens_finish(sdk: genai.Client) -> None:
    response = sdk.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(max_output_tokens=2)
    )

    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == 2


def test_function_call_then_function_response(sdk: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[WEATHER])
    first = sdk.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)

    assert first.function_calls is not None
    (call,) = first.function_calls
    assert call.name == "get_weather"
    assert call.args == {"city": "Paris"}
    assert first.candidates is not None
    assert first.candidates[0].finish_reason == types.FinishReason.STOP

    second = sdk.models.generate_content(
        model=MODEL,
        config=config,
        contents=[
            types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
            types.Content(role="model", parts=[types.Part(function_call=call)]),
            types.Content(
                role="user",
                parts=[
                    types.Part.from_function_response(name="get_weather", response={"temp_c": 21})
                ],
            ),
        ],
    )
    assert second.text == 'The tool returned: {"temp_c":21}'


def test_thoughts_are_counted_and_included_when_asked(sdk: genai.Client, tokens: Tokens) -> None:
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
    chunks = list(
        sdk.models.generate_content_stream(
            model=MODEL, contents="hi", config=types.GenerateContentConfig(thinking_config=thinking)
        )
    )

    thoughts = [
        part.text
        for chunk in chunks
        for part in (
            chunk.candidates[0].content.parts or []
            if chunk.candidates and chunk.candidates[0].content
            else []
        )
        if part.thought
    ]
    assert "".join(t or "" for t in thoughts) == THINKING_TEXT
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == tokens(THINKING_TEXT)
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0)
        + (usage.candidates_token_count or 0)
        + tokens(THINKING_TEXT)
    )


def test_count_tokens(sdk: genai.Client, tokens: Tokens) -> None:
    counted = sdk.models.count_tokens(model=MODEL, contents="hello there")

    assert counted.total_tokens == tokens("hello there")


def test_embed_content(sdk: genai.Client) -> None:
    response = sdk.models.embed_content(
        model="gemini-embedding-001",
        contents=["hello", "bye"],
        config=types.EmbedContentConfig(output_dimensionality=8),
    )

    assert response.embeddings is not None
    assert [len(e.values or []) for e in response.embeddings] == [8, 8]
    assert response.embeddings[0].values != response.embeddings[1].values


async def test_embed_content_single(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1beta/models/gemini-embedding-001:embedContent",
        json={"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 4},
    )

    assert len(response.json()["embedding"]["values"]) == 4


def test_models_list(sdk: genai.Client) -> None:
    names = [model.name for model in sdk.models.list()]

    assert "models/gemini-2.0-flash" in names


async def test_block_prompt_matches_bc19(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    plain = await client.post(
        f"/_fault/block=prompt/v1beta/models/{MODEL}:generateContent", json=body
    )
    streamed = await client.post(
        f"/_fault/block=prompt/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=body
    )

    assert plain.status_code == 200
    result = plain.json()
    assert result["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}
    assert result["usageMetadata"] == {
        "promptTokenCount": tokens("hi"),
        "totalTokenCount": tokens("hi"),
    }
    assert "candidates" not in result
    (event,) = [e for e in streamed.text.split("\r\n\r\n") if e]
    assert (
        json.loads(event.removeprefix("data: "))["promptFeedback"]["blockReason"]
        == "PROHIBITED_CONTENT"
    )


def test_block_output_parses_in_the_sdk(simulator_url: str) -> None:
    sdk = make_client(f"{simulator_url}/_fault/block=output")
    response = sdk.models.generate_content(model=MODEL, contents="hi")

    assert response.candidates is not None
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.SAFETY
    assert candidate.content is None
    assert candidate.safety_ratings is not None
    assert candidate.safety_ratings[0].blocked is True


def test_status_fault_raises_client_error_with_gemini_shape(simulator_url: str) -> None:
    sdk = make_client(f"{simulator_url}/_fault/status=429")
    with pytest.raises(genai.errors.ClientError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi")

    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
