"""Failover before the first byte, never after; one bill per request."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support import Provisioner, free_port, replay, simulator_requests, sse_data

pytestmark = pytest.mark.e2e


async def _two_channels(provision: Provisioner, first_base_url: str):
    setup = await provision.setup(channel=False)
    first = await provision.channel([setup.model], base_url=first_base_url, priority=1)
    second = await provision.channel([setup.model], base_url=provision.upstream(), priority=2)
    await provision.wait_visible(setup.key, setup.model)
    return setup, first, second


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize(
    "failure",
    ["status=500", "status=503", "status=429,retry_after=1", "unreachable", "cut=0"],
)
async def test_failover_to_next_channel_before_first_byte(
    provision: Provisioner, failure: str, stream: bool
) -> None:
    if failure == "unreachable":
        first_url = f"http://127.0.0.1:{free_port()}/v1"
    else:
        first_url = provision.upstream(failure)
    setup, first, second = await _two_channels(provision, first_url)
    client = provision.openai(setup.key)

    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=setup.model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        ]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = await client.chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["channel_id"] == second
    assert row["attempts"] == 2
    assert row["status"] == "ok"
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000 - row["cost"]


async def test_failover_on_first_byte_timeout(provision: Provisioner) -> None:
    # The session gateway's first-byte timeout is 3 s; this channel waits 6.
    setup, first, second = await _two_channels(provision, provision.upstream("delay=6"))

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["channel_id"], row["attempts"]) == (second, 2)


async def test_no_failover_on_final_client_error(provision: Provisioner) -> None:
    setup, first, second = await _two_channels(provision, provision.upstream("status=400"))

    with pytest.raises(openai.BadRequestError):
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["channel_id"], row["attempts"], row["cost"]) == (first, 1, 0)


def _chunk(content: str, finish: str | None = None) -> str:
    import json

    delta = {"content": content} if content else {}
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def test_failure_after_first_byte_is_not_retried_bc27(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    broken = await replay(
        provision.simulator_url,
        [_chunk("Here is"), _chunk(" the plan")],
        close="abort",
    )
    setup, first, second = await _two_channels(provision, broken)
    async with http.stream(
        "POST",
        f"{provision.gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {setup.key}"},
        json={
            "model": setup.model,
            "stream": True,
            "messages": [{"role": "user", "content": "plan"}],
        },
    ) as response:
        body = (await response.aread()).decode()

    data = sse_data(body)
    import json

    contents = [
        json.loads(d)["choices"][0]["delta"].get("content", "")
        for d in data
        if d.startswith("{") and "choices" in d
    ]
    assert "".join(contents) == "Here is the plan"
    assert "error" in json.loads(data[-1])
    assert "[DONE]" not in data
    requests = [
        r
        for r in await simulator_requests(provision.simulator_url)
        if r["body"] and r["body"].get("model") == setup.model
    ]
    assert requests and all("/_replay/" in r["path"] for r in requests), "B must never be called"

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["channel_id"] == first
    assert row["status"] in {"error", "truncated"}
    assert row["estimated"] is True
    from gateway.tokens import count_tokens

    assert row["output_tokens"] == count_tokens("Here is the plan")
    assert row["cost"] > 0


async def test_channel_first_byte_timeout_setting_overrides_the_default(
    provision: Provisioner,
) -> None:
    setup = await provision.setup(channel=False)
    async with provision.sessions() as session:
        from shared.services.admin import add_channel

        slow = await add_channel(
            session,
            f"slow-{setup.model}",
            kind="openai",
            base_url=provision.upstream("delay=20"),
            api_key="k",
            models=[setup.model],
            priority=1,
            settings={"first_byte_timeout": "0.5"},
        )
    second = await provision.channel([setup.model], priority=2)
    await provision.wait_visible(setup.key, setup.model)

    completion = await provision.openai(setup.key).chat.completions.create(
        model=setup.model, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["channel_id"], row["attempts"]) == (second, 2)
    assert row["latency_ms"] < 3000
    assert slow.id != second
