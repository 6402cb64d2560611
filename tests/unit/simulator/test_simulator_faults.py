from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import anthropic
import httpx
import openai
import pytest

from gateway.simulator.composer import default_sentence
from gateway.simulator.faults import FaultSpec, FaultSpecError, parse_fault_spec
from gateway.simulator.wire import Frame, FrameKind, stop_index
from tests.unit.simulator.wire_reader import request

if TYPE_CHECKING:
    from gateway.simulator.app import SimulatorApp
    from tests.unit.simulator.conftest import Tokens

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
STREAM_CHAT = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
MESSAGES: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


def sse_data(body: bytes) -> list[Any]:
    events = body.decode().replace("\r\n", "\n").split("\n\n")
    data = []
    for event in events:
        for line in event.split("\n"):
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                data.append(payload if payload == "[DONE]" else json.loads(payload))
    return data


def contents(data: list[Any]) -> list[str]:
    return [
        d["choices"][0]["delta"]["content"]
        for d in data
        if isinstance(d, dict) and d.get("choices") and d["choices"][0]["delta"].get("content")
    ]


def test_parse_fault_spec_decodes_values() -> None:
    spec = parse_fault_spec("status=429,retry_after=30,text=Hello%2C+world%2F%21,no_usage=1")

    assert spec == FaultSpec(status=429, retry_after=30, text="Hello, world/!", no_usage=True)


@pytest.mark.parametrize(
    "raw", ["status=200", "status=abc", "bogus=1", "cut=-1", "delay=601", "block=maybe", "nokey"]
)
def test_parse_fault_spec_rejects(raw: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault_spec(raw)


def test_stop_index_counts_content_frames() -> None:
    frames = [
        Frame(b"role", FrameKind.STRUCTURE),
        Frame(b"a", FrameKind.CONTENT),
        Frame(b"b", FrameKind.CONTENT),
        Frame(b"stop", FrameKind.STRUCTURE),
        Frame(b"finish", FrameKind.TAIL),
        Frame(b"done", FrameKind.TAIL),
    ]

    assert stop_index(frames, 0) == 1
    assert stop_index(frames, 1) == 2
    assert stop_index(frames, 2) == 4
    assert stop_index(frames, 9) == 4
    assert stop_index(frames[:1], 0) == 1


def test_status_fault_with_retry_after_in_openai_shape(simulator_url: str) -> None:
    sdk = openai.OpenAI(
        base_url=f"{simulator_url}/_fault/status=429,retry_after=30/v1",
        api_key="k",
        max_retries=0,
    )

    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])

    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.body == {
        "message": "Rate limit reached, please retry later (simulated).",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_status_529_is_anthropic_overloaded(simulator_url: str) -> None:
    sdk = anthropic.Anthropic(
        base_url=f"{simulator_url}/_fault/status=529", api_key="k", max_retries=0
    )

    with pytest.raises(anthropic.OverloadedError) as caught:
        sdk.messages.create(**MESSAGES)

    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded (simulated)."}


async def test_status_fault_in_workers_ai_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_fault/status=429/client/v4/accounts/a/ai/run/@cf/meta/llama", json={"prompt": "hi"}
    )

    assert response.status_code == 429
    assert response.json() == {
        "result": None,
        "success": False,
        "errors": [
            {"code": 3040, "message": "Rate limit reached, please retry later (simulated)."}
        ],
        "messages": [],
    }


async def test_invalid_fault_spec_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/_fault/explode=1/v1/chat/completions", json=CHAT)

    assert response.status_code == 400
    assert "explode" in response.json()["error"]["message"]


def test_cut_stream_sends_n_contents_then_drops(simulator_url: str) -> None:
    body = json.dumps(STREAM_CHAT).encode()
    response = request(simulator_url, "POST", "/_fault/cut=3/v1/chat/completions", body)

    data = sse_data(b"".join(response.chunks))
    assert response.status == 200
    assert not response.terminated
    received = contents(data)
    assert len(received) == 3
    assert default_sentence("gpt-x", 0, 12).startswith("".join(received))
    assert "[DONE]" not in data
    assert all(d["choices"][0]["finish_reason"] is None for d in data)


def test_cut_stream_raises_connection_error_in_the_sdk(simulator_url: str) -> None:
    sdk = openai.OpenAI(base_url=f"{simulator_url}/_fault/cut=2/v1", api_key="k", max_retries=0)
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError):  # noqa: PT012 - the error comes mid-iteration
        for chunk in sdk.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert len(received) == 2


def test_cut_beyond_the_answer_still_withholds_the_terminator(simulator_url: str) -> None:
    body = json.dumps(STREAM_CHAT).encode()
    response = request(simulator_url, "POST", "/_fault/cut=500/v1/chat/completions", body)

    data = sse_data(b"".join(response.chunks))
    assert len(contents(data)) == 12
    assert not response.terminated
    assert "[DONE]" not in data
    assert all(d["choices"] and d["choices"][0]["finish_reason"] is None for d in data)


def test_cut_non_stream_drops_before_the_body(simulator_url: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{simulator_url}/_fault/cut=0/v1/chat/completions", json=CHAT)

    sdk = openai.OpenAI(base_url=f"{simulator_url}/_fault/cut=0/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])


def test_error_after_sends_openai_error_event_and_ends(simulator_url: str) -> None:
    body = json.dumps(STREAM_CHAT).encode()
    response = request(simulator_url, "POST", "/_fault/error_after=2/v1/chat/completions", body)

    data = sse_data(b"".join(response.chunks))
    assert response.terminated
    assert len(contents(data)) == 2
    assert data[-1] == {
        "error": {
            "message": "The service is temporarily unavailable (simulated).",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert "[DONE]" not in data


def test_error_after_raises_api_error_in_the_openai_sdk(simulator_url: str) -> None:
    sdk = openai.OpenAI(
        base_url=f"{simulator_url}/_fault/error_after=1,status=429/v1", api_key="k", max_retries=0
    )
    received: list[str] = []

    with pytest.raises(openai.APIError, match="Rate limit reached"):  # noqa: PT012
        for chunk in sdk.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert len(received) == 1


def test_error_after_does_not_affect_non_streamed_requests(simulator_url: str) -> None:
    response = httpx.post(
        f"{simulator_url}/_fault/error_after=1,status=500/v1/chat/completions", json=CHAT
    )

    assert response.status_code == 200


def test_error_after_in_anthropic_stream(simulator_url: str) -> None:
    body = json.dumps({**MESSAGES, "stream": True}).encode()
    response = request(simulator_url, "POST", "/_fault/error_after=2/v1/messages", body)

    events = b"".join(response.chunks).decode().split("\n\n")
    assert events[-2] == (
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        '"message":"Overloaded (simulated)."}}'
    )
    assert "message_stop" not in b"".join(response.chunks).decode()

    sdk = anthropic.Anthropic(
        base_url=f"{simulator_url}/_fault/error_after=2", api_key="k", max_retries=0
    )
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        sdk.messages.stream(**MESSAGES) as stream,
    ):
        stream.get_final_message()


def test_error_after_in_gemini_sse_stream(simulator_url: str) -> None:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    path = "/_fault/error_after=1/v1beta/models/g:streamGenerateContent?alt=sse"
    response = request(simulator_url, "POST", path, body)

    data = sse_data(b"".join(response.chunks))
    assert len(data) == 2
    assert data[-1] == {
        "error": {
            "code": 503,
            "message": "The service is temporarily unavailable (simulated).",
            "status": "UNAVAILABLE",
        }
    }


def test_error_after_in_gemini_array_stream_stays_valid_json(simulator_url: str) -> None:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    path = "/_fault/error_after=2/v1beta/models/g:streamGenerateContent"
    response = request(simulator_url, "POST", path, body)

    elements = json.loads(b"".join(response.chunks))
    assert len(elements) == 3
    assert elements[-1]["error"]["status"] == "UNAVAILABLE"


def test_delay_holds_the_headers(simulator_url: str) -> None:
    body = json.dumps(CHAT).encode()
    started = time.perf_counter()
    response = request(simulator_url, "POST", "/_fault/delay=0.3/v1/chat/completions", body)

    assert response.status == 200
    assert response.headers_at >= 0.3
    assert time.perf_counter() - started < 5


def test_delay_then_status(simulator_url: str) -> None:
    response = request(
        simulator_url, "POST", "/_fault/delay=0.2,status=503/v1/chat/completions", b"{}"
    )

    assert response.status == 503
    assert response.headers_at >= 0.2


def test_slow_spaces_the_stream_frames(simulator_url: str) -> None:
    body = json.dumps(STREAM_CHAT).encode()
    response = request(simulator_url, "POST", "/_fault/slow=0.05,words=3/v1/chat/completions", body)

    assert response.terminated
    gaps = [b - a for a, b in zip(response.arrivals, response.arrivals[1:], strict=False)]
    assert len(response.chunks) == 1 + 3 + 1 + 1 + 1  # role, words, finish, usage, [DONE]
    assert all(gap >= 0.04 for gap in gaps)


def test_no_usage_withholds_usage_even_when_asked(simulator_url: str) -> None:
    sdk = openai.OpenAI(
        base_url=f"{simulator_url}/_fault/no_usage=1/v1", api_key="k", max_retries=0
    )

    chunks = list(
        sdk.chat.completions.create(
            model="gpt-x",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    completion = sdk.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}]
    )

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert completion.usage is None


def test_words_and_text_shape_the_answer(simulator_url: str, tokens: Tokens) -> None:
    three = httpx.post(f"{simulator_url}/_fault/words=3/v1/chat/completions", json=CHAT).json()
    exact = httpx.post(
        f"{simulator_url}/_fault/text=Hello%2C%20world%2F%2B1/v1/chat/completions",
        json={**CHAT, "stream": True},
    )

    assert three["choices"][0]["message"]["content"] == default_sentence("gpt-x", 0, 3)
    assert three["usage"]["completion_tokens"] == tokens(default_sentence("gpt-x", 0, 3))
    assert contents(sse_data(exact.content)) == ["Hello,", " world/+1"]


async def run_until_disconnect(
    app: SimulatorApp, path: str, body: dict[str, Any], disconnect_after: float
) -> tuple[list[Any], float]:
    """Call the app in-process with a client that disconnects after `disconnect_after` s."""
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    started = time.perf_counter()
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent, time.perf_counter() - started


async def test_stream_stops_when_the_client_disconnects(app: SimulatorApp) -> None:
    sent, elapsed = await run_until_disconnect(
        app, "/_fault/slow=0.05/v1/chat/completions", {**CHAT, "stream": True}, 0.12
    )

    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert 1 <= len(bodies) <= 4
    assert all(m["more_body"] for m in bodies)
    assert elapsed < 0.5


async def test_delay_ends_when_the_client_disconnects(app: SimulatorApp) -> None:
    sent, elapsed = await run_until_disconnect(
        app, "/_fault/delay=30/v1/chat/completions", CHAT, 0.05
    )

    assert sent == []
    assert elapsed < 1
