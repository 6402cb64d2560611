from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anthropic
import pytest

from gateway.simulator.composer import THINKING_TEXT, default_sentence, signature_for

if TYPE_CHECKING:
    import httpx

    from tests.unit.simulator.conftest import Tokens

WEATHER_TOOL: Any = {
    "name": "add_numbers",
    "description": "Add two numbers.",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}


@pytest.fixture(scope="module")
def sdk(simulator_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=simulator_url, api_key="sk-ant-test", max_retries=0)


def test_messages_answers_with_exact_usage(sdk: anthropic.Anthropic, tokens: Tokens) -> None:
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )

    text = default_sentence("claude-x", 0, 12)
    assert message.model == "claude-x"
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == text  # type: ignore[union-attr]
    assert message.usage.input_tokens == tokens.prompt("Be brief.", "hi")
    assert message.usage.output_tokens == tokens(text)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_messages_stream_events_and_cumulative_usage(
    sdk: anthropic.Anthropic, tokens: Tokens
) -> None:
    with sdk.messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    text = default_sentence("claude-x", 0, 12)
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == tokens("hi")
    assert final.usage.output_tokens == tokens(text)


async def test_messages_stream_writes_event_lines_and_one_ping(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/messages",
        json={
            "model": "claude-x",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    events = [event for event in response.text.split("\n\n") if event]
    assert all(event.startswith("event: ") and "\ndata: {" in event for event in events)
    names = [event.split("\n")[0].removeprefix("event: ") for event in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") == 1
    assert "[DONE]" not in response.text


def test_messages_tool_use_streams_input_json_deltas(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(
        model="claude-x",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Use add_numbers for 17 + 25."}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    deltas = [
        event.delta.partial_json
        for event in events
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
    ]
    assert len(deltas) > 1
    assert "".join(deltas) == '{"a":1,"b":1}'
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "add_numbers"
    assert block.input == {"a": 1, "b": 1}
    assert final.stop_reason == "tool_use"


def test_messages_tool_result_is_answered(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Use add_numbers for 17 + 25."},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "add_numbers",
                        "input": {"a": 17, "b": 25},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}],
            },
        ],
    )

    assert message.content[0].text == "The tool returned: 42"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


def test_messages_thinking_block_has_signature_and_counts_as_output(
    sdk: anthropic.Anthropic, tokens: Tokens
) -> None:
    with sdk.messages.stream(
        model="claude-x",
        max_tokens=1000,
        thinking={"type": "enabled", "budget_tokens": 500},
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        final = stream.get_final_message()

    thinking, text = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == THINKING_TEXT
    assert thinking.signature == signature_for(THINKING_TEXT)
    assert text.type == "text"
    assert final.usage.output_tokens == tokens(THINKING_TEXT) + tokens(text.text)


def test_messages_cache_control_reports_cached_prefix(
    sdk: anthropic.Anthropic, tokens: Tokens
) -> None:
    system = "You are a careful assistant. " * 20
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=100,
        system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )

    total = tokens.prompt(system, "hi")
    assert message.usage.cache_read_input_tokens == tokens(system)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.input_tokens == total - tokens(system)


def test_messages_cache_write_fault_reports_cache_creation(
    simulator_url: str, tokens: Tokens
) -> None:
    sdk = anthropic.Anthropic(
        base_url=f"{simulator_url}/_fault/cache=write", api_key="k", max_retries=0
    )
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )

    assert message.usage.cache_creation_input_tokens == tokens("Be brief.")
    assert message.usage.cache_read_input_tokens == 0


def test_messages_max_tokens_truncates(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(
        model="claude-x", max_tokens=3, messages=[{"role": "user", "content": "hi"}]
    )

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_messages_without_max_tokens_is_a_bad_request(simulator_url: str) -> None:
    sdk = anthropic.Anthropic(base_url=simulator_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens") as caught:
        sdk.messages.create(
            model="claude-x",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"max_tokens": None},
            max_tokens=1,
        )
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": caught.value.response.headers["request-id"],
    }


def test_count_tokens_matches_message_input(sdk: anthropic.Anthropic, tokens: Tokens) -> None:
    counted = sdk.messages.count_tokens(
        model="claude-x", system="Be brief.", messages=[{"role": "user", "content": "hi"}]
    )

    assert counted.input_tokens == tokens.prompt("Be brief.", "hi")


def test_models_list_in_anthropic_shape(sdk: anthropic.Anthropic) -> None:
    models = list(sdk.models.list())

    assert models[0].id == "claude-sonnet-4-5"
    assert all(model.type == "model" for model in models)


async def test_messages_accepts_system_role_and_beta_query(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/messages?beta=true",
        json={
            "model": "claude-x",
            "max_tokens": 10,
            "messages": [
                {"role": "system", "content": "Be terse."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
                    ],
                },
            ],
            "thinking": {"type": "adaptive"},
            "metadata": {"user_id": "{}"},
        },
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "a,b"},
    )

    assert response.status_code == 200
    assert response.json()["content"][0]["type"] == "thinking"
