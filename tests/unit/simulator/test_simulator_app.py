from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gateway.simulator.request_log import MAX_ENTRIES, MAX_LOGGED_BODY

if TYPE_CHECKING:
    import httpx

    from gateway.simulator.app import SimulatorApp


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/_sim/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_request_log_records_requests_newest_last(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/chat/completions?trace=1",
        json={"model": "a", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-1"},
    )
    await client.post("/_fault/status=500/v1/messages", json={"model": "b"})
    await client.get("/_sim/health")

    first, second = (await client.get("/_sim/requests")).json()
    assert first["method"] == "POST"
    assert first["path"] == "/v1/chat/completions"
    assert first["query"] == "trace=1"
    assert first["headers"]["authorization"] == "Bearer sk-1"
    assert first["body"] == {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    assert first["body_size"] > 0
    assert len(first["body_sha256"]) == 64
    assert second["path"] == "/_fault/status=500/v1/messages"
    assert second["body"] == {"model": "b"}


async def test_request_log_clears_and_keeps_the_last_entries(client: httpx.AsyncClient) -> None:
    for index in range(MAX_ENTRIES + 5):
        await client.get(f"/v1/models?i={index}")
    entries = (await client.get("/_sim/requests")).json()
    assert len(entries) == MAX_ENTRIES
    assert entries[-1]["query"] == f"i={MAX_ENTRIES + 4}"

    assert (await client.delete("/_sim/requests")).status_code == 200
    assert (await client.get("/_sim/requests")).json() == []


async def test_request_log_keeps_only_the_size_of_large_bodies(client: httpx.AsyncClient) -> None:
    big = "x" * (MAX_LOGGED_BODY + 10)
    await client.post(
        "/v1/chat/completions",
        json={"model": "a", "messages": [{"role": "user", "content": big}]},
    )

    (entry,) = (await client.get("/_sim/requests")).json()
    assert entry["body"] is None
    assert entry["body_size"] > MAX_LOGGED_BODY


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("POST", "/v1/nothing", {}, {"error": {"message": "Invalid URL (POST /v1/nothing)"}}),
        (
            "POST",
            "/v1/messages/nothing",
            {},
            {"type": "error", "error": {"type": "not_found_error"}},
        ),
        ("POST", "/v1beta/models/g:nothing", {}, {"error": {"code": 404, "status": "NOT_FOUND"}}),
        ("DELETE", "/client/v4/accounts/a/ai/run/m", {}, {"success": False}),
    ],
)
async def test_unknown_routes_are_404_in_the_protocol_shape(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    expected: dict[str, Any],
) -> None:
    response = await client.request(method, path, headers=headers)

    assert response.status_code == 404
    body = response.json()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert value.items() <= body[key].items()
        else:
            assert body[key] == value


async def test_every_response_has_a_request_id(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/models")
    failed = await client.post("/_fault/status=401/v1/messages", json={})

    assert ok.headers["x-request-id"].startswith("req_")
    assert failed.headers["request-id"] == failed.headers["x-request-id"]
    assert failed.json()["request_id"] == failed.headers["request-id"]


async def test_invalid_json_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b"{nope")

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_model_lists_follow_the_credentials_header(client: httpx.AsyncClient) -> None:
    openai_list = (await client.get("/v1/models")).json()
    anthropic_list = (await client.get("/v1/models", headers={"anthropic-version": "1"})).json()
    gemini_list = (await client.get("/v1/models", headers={"x-goog-api-key": "k"})).json()
    gemini_one = (await client.get("/v1beta/models/gemini-x")).json()

    assert openai_list["object"] == "list"
    assert anthropic_list["has_more"] is False
    assert gemini_list["models"][0]["name"].startswith("models/")
    assert gemini_one["name"] == "models/gemini-x"


async def test_lifespan_completes(app: SimulatorApp) -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)

    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
