from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.unit.simulator.wire_reader import request

BC01_CHUNKS = [
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"Hel',
    'lo"},"finish_reason":null}]}\n\ndata: {"id":"c1","object":"chat.completion.chunk",'
    '"created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"content":" world"},'
    '"finish_reason":null}]}\n\n: keep-alive\n\n',
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":'
    '[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\ndata:[DONE]\n\n',
]


def register(simulator_url: str, script: dict[str, Any]) -> str:
    response = httpx.post(f"{simulator_url}/_sim/replay", json=script)
    assert response.status_code == 200, response.text
    script_id: str = response.json()["id"]
    return script_id


def test_replay_writes_exact_chunks_at_their_boundaries(simulator_url: str) -> None:
    script_id = register(
        simulator_url,
        {"headers": {"content-type": "text/event-stream"}, "chunks": BC01_CHUNKS},
    )

    response = request(simulator_url, "POST", f"/_replay/{script_id}/v1/chat/completions", b"{}")

    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.chunks == [chunk.encode() for chunk in BC01_CHUNKS]
    assert response.terminated


def test_replay_gap_separates_writes_in_time(simulator_url: str) -> None:
    script_id = register(simulator_url, {"chunks": ["a", "b", "c"], "gap": 0.1})

    response = request(simulator_url, "GET", f"/_replay/{script_id}/anything")

    assert response.chunks == [b"a", b"b", b"c"]
    first, second, third = response.arrivals
    assert second - first >= 0.08
    assert third - second >= 0.08


def test_replay_abort_drops_the_connection_without_terminator(simulator_url: str) -> None:
    script_id = register(simulator_url, {"chunks": ["data: partial", " more"], "close": "abort"})

    response = request(simulator_url, "GET", f"/_replay/{script_id}/v1/chat/completions")

    assert response.chunks == [b"data: partial", b" more"]
    assert not response.terminated
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{simulator_url}/_replay/{script_id}/x") as streamed,
    ):
        streamed.read()


def test_replay_binary_chunks_and_status(simulator_url: str) -> None:
    raw = [b"\xff\xfe\x00", b"\r\n\r\n"]
    script_id = register(
        simulator_url,
        {
            "status": 429,
            "headers": {"Retry-After": "30", "content-type": "application/octet-stream"},
            "chunks_b64": [base64.b64encode(chunk).decode() for chunk in raw],
        },
    )

    response = request(simulator_url, "GET", f"/_replay/{script_id}/")

    assert response.status == 429
    assert response.headers["retry-after"] == "30"
    assert response.chunks == raw


def test_replay_scripts_are_reusable_and_keyed_by_content(simulator_url: str) -> None:
    script = {"chunks": ["x"]}
    script_id = register(simulator_url, script)

    assert register(simulator_url, script) == script_id
    for _ in range(2):
        assert httpx.get(f"{simulator_url}/_replay/{script_id}/v1/models").text == "x"


def test_replay_of_a_fault_prefixed_path_is_delayed(simulator_url: str) -> None:
    script_id = register(simulator_url, {"chunks": ["x"]})

    response = request(simulator_url, "GET", f"/_fault/delay=0.2/_replay/{script_id}/v1")

    assert response.headers_at >= 0.2
    assert response.chunks == [b"x"]


async def test_replay_rejects_invalid_scripts(client: httpx.AsyncClient) -> None:
    bad = [
        {"chunks": ["a"], "chunks_b64": ["YQ=="]},
        {"chunks_b64": ["not base64!"]},
        {"status": 99},
        {"close": "maybe"},
        {"unknown": 1},
    ]
    for script in bad:
        response = await client.post("/_sim/replay", json=script)
        assert response.status_code == 400, script
        assert "message" in response.json()["error"]
    assert (await client.post("/_sim/replay", content=b"{")).status_code == 400


async def test_unknown_replay_id_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/_replay/0000/v1/models")

    assert response.status_code == 404
    assert "0000" in response.json()["error"]["message"]


async def test_replay_store_can_be_cleared(client: httpx.AsyncClient) -> None:
    script_id = (await client.post("/_sim/replay", json={"chunks": ["x"]})).json()["id"]
    assert (await client.delete("/_sim/replay")).status_code == 200

    assert (await client.get(f"/_replay/{script_id}/")).status_code == 404
