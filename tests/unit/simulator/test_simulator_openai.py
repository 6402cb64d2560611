from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import openai
import pytest

from gateway.simulator.composer import default_sentence

if TYPE_CHECKING:
    import httpx

    from tests.unit.simulator.conftest import Tokens

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric"],
        },
    },
}


@pytest.fixture(scope="module")
def sdk(simulator_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test", max_retries=0)


def test_chat_completion_answers_default_sentence_with_exact_usage(
    sdk: openai.OpenAI, tokens: Tokens
) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello world"},
        ],
    )

    text = default_sentence("gpt-x", 0, 12)
    assert completion.model == "gpt-x"
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == tokens.prompt("Be brief.", "Say hello world")
    assert completion.usage.completion_tokens == tokens(text) == 13
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 13


def test_chat_completion_is_deterministic_per_model(sdk: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    first = sdk.chat.completions.create(model="m-1", messages=messages)
    again = sdk.chat.completions.create(model="m-1", messages=messages)
    other = sdk.chat.completions.create(model="m-2", messages=messages)

    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


def test_chat_stream_with_include_usage_ends_with_usage_chunk(
    sdk: openai.OpenAI, tokens: Tokens
) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = default_sentence("gpt-x", 0, 12)
    *choice_chunks, usage_chunk = chunks
    assert all(chunk.usage is None for chunk in choice_chunks)
    assert all(len(chunk.choices) == 1 for chunk in choice_chunks)
    assert "".join(c.choices[0].delta.content or "" for c in choice_chunks) == text
    assert len(choice_chunks) == 1 + 12 + 1  # role chunk, one chunk per word, finish chunk
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in choice_chunks[:-1]] == [None] * 13
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == tokens("hi")
    assert usage_chunk.usage.completion_tokens == tokens(text)


async def test_chat_stream_without_include_usage_has_no_usage(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )

    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert response.text.endswith("data: [DONE]\n\n")
    assert response.text.count("[DONE]") == 1
    assert '"usage"' not in response.text
    assert '"choices":[]' not in response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


def test_chat_max_tokens_truncates_whole_words(sdk: openai.OpenAI, tokens: Tokens) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )

    text = completion.choices[0].message.content
    assert text is not None
    assert default_sentence("gpt-x", 0, 12).startswith(text)
    assert len(text.split()) == 5
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == tokens(text) == 5


def test_chat_max_completion_tokens_wins_over_max_tokens(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        max_completion_tokens=3,
    )

    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_chat_invalid_max_tokens_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="max_tokens") as caught:
        sdk.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=0
        )
    assert caught.value.param == "max_tokens"


def test_chat_n_gives_distinct_choices_and_summed_usage(sdk: openai.OpenAI, tokens: Tokens) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], n=3
    )

    texts = [choice.message.content for choice in completion.choices]
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert texts == [default_sentence("gpt-x", i, 12) for i in range(3)]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == sum(tokens(t or "") for t in texts)


def test_chat_tools_answer_with_a_call_built_from_the_schema(
    sdk: openai.OpenAI, tokens: Tokens
) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris","days":1,"metric":true}'
    assert completion.usage is not None
    assert completion.usage.completion_tokens == tokens("get_weather") + tokens(
        call.function.arguments
    )


def test_chat_stream_tool_call_arguments_join_to_json(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-x",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )

    first = chunks[0].choices[0].delta
    assert first.tool_calls is not None
    assert first.tool_calls[0].id is not None
    assert first.tool_calls[0].function is not None
    assert first.tool_calls[0].function.name == "get_weather"
    fragments = [
        call.function.arguments
        for chunk in chunks[1:]
        for call in chunk.choices[0].delta.tool_calls or ()
        if call.function is not None and call.function.arguments
    ]
    assert len(fragments) > 1
    assert "".join(fragments) == '{"city":"Paris","days":1,"metric":true}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_answers_with_the_tool_result(sdk: openai.OpenAI, tokens: Tokens) -> None:
    arguments = '{"city":"Paris"}'
    completion = sdk.chat.completions.create(
        model="gpt-x",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
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

    text = completion.choices[0].message.content
    assert text == "The tool returned: 21C and sunny"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == tokens.prompt(
        "Weather in Paris?", arguments, "21C and sunny"
    )


def test_chat_image_parts_count_fixed_tokens(sdk: openai.OpenAI, tokens: Tokens) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-x",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}},
                ],
            }
        ],
    )

    assert completion.usage is not None
    assert completion.usage.prompt_tokens == tokens("what is this?") + 85


def test_models_list_parses_in_the_sdk(sdk: openai.OpenAI) -> None:
    models = list(sdk.models.list())

    assert [m.id for m in models][:2] == ["gpt-4o-mini", "gpt-4o"]
    assert all(isinstance(m.created, int) and m.owned_by for m in models)
    assert sdk.models.retrieve("anything-at-all").id == "anything-at-all"


def test_embeddings_float_and_base64_agree(sdk: openai.OpenAI, tokens: Tokens) -> None:
    floats = sdk.embeddings.create(
        model="text-embedding-3-small",
        input=["hello world", "bye"],
        encoding_format="float",
        dimensions=16,
    )
    # The SDK asks for base64 when no format is given, and decodes it.
    decoded = sdk.embeddings.create(
        model="text-embedding-3-small", input=["hello world", "bye"], dimensions=16
    )

    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 16
    assert floats.data[0].embedding == decoded.data[0].embedding
    assert floats.data[0].embedding != floats.data[1].embedding
    assert abs(sum(v * v for v in floats.data[0].embedding) - 1.0) < 1e-5
    assert floats.usage.prompt_tokens == tokens("hello world") + tokens("bye")
    assert floats.usage.total_tokens == floats.usage.prompt_tokens


async def test_embeddings_base64_is_little_endian_float32(client: httpx.AsyncClient) -> None:
    body = {"model": "e", "input": "hi", "encoding_format": "base64", "dimensions": 4}
    as_base64 = (await client.post("/v1/embeddings", json=body)).json()
    as_floats = (
        await client.post("/v1/embeddings", json={**body, "encoding_format": "float"})
    ).json()

    raw = base64.b64decode(as_base64["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == as_floats["data"][0]["embedding"]


def test_responses_non_stream_gives_text_and_usage(sdk: openai.OpenAI, tokens: Tokens) -> None:
    response = sdk.responses.create(model="gpt-x", instructions="Be brief.", input="hi")

    text = default_sentence("gpt-x", 0, 12)
    assert response.status == "completed"
    assert response.output_text == text
    assert response.usage is not None
    assert response.usage.input_tokens == tokens.prompt("Be brief.", "hi")
    assert response.usage.output_tokens == tokens(text)
    assert response.usage.total_tokens == response.usage.input_tokens + tokens(text)


def test_responses_stream_ends_with_completed_usage(sdk: openai.OpenAI, tokens: Tokens) -> None:
    events = list(
        sdk.responses.create(
            model="gpt-x",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            stream=True,
        )
    )

    text = default_sentence("gpt-x", 0, 12)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == text
    assert len(deltas) == 12
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.id == events[0].response.id  # type: ignore[union-attr]
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == tokens(text)
    assert completed.response.output_text == text


def test_responses_stream_helper_accumulates(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="gpt-x", input="hi") as stream:
        final = stream.get_final_response()

    assert final.output_text == default_sentence("gpt-x", 0, 12)


def test_responses_function_call_and_its_output(sdk: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": WEATHER_TOOL["function"]["parameters"],
        "strict": False,
    }
    first = sdk.responses.create(model="gpt-x", input="Weather?", tools=[tool])
    (call,) = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.arguments == '{"city":"Paris","days":1,"metric":true}'

    second = sdk.responses.create(
        model="gpt-x",
        tools=[tool],
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "21C"},
        ],
    )
    assert second.output_text == "The tool returned: 21C"


def test_workers_ai_openai_compatible_path_serves_chat(simulator_url: str) -> None:
    sdk = openai.OpenAI(
        base_url=f"{simulator_url}/client/v4/accounts/acc-1/ai/v1",
        api_key="cf-token",
        max_retries=0,
    )
    model = "@cf/meta/llama-3.1-8b-instruct"

    completion = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content == default_sentence(model, 0, 12)
