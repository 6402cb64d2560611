"""Channels that route through the edge relay: gateway → relay → simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from shared.money import Price, Usage, compute_cost, format_usd
from tests.support import Provisioner, free_port, simulator_requests, stop_process, wait_for_http

pytestmark = pytest.mark.e2e

SECRET = "relay-test-secret"


@pytest.fixture(scope="module")
def relay_url(simulator_url: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "TOLLGATE_RELAY_SECRET": SECRET,
        "TOLLGATE_RELAY_UPSTREAMS": json.dumps({"openai": simulator_url}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "relay", "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/openai/v1/models", process)
        yield url
    finally:
        stop_process(process)


async def _relayed_setup(provision: Provisioner, relay_url: str, secret: str = SECRET):
    setup = await provision.setup(channel=False)
    async with provision.sessions() as session:
        from shared.services.admin import add_channel

        await add_channel(
            session,
            f"relayed-{setup.model}",
            kind="openai",
            # Never contacted: the relay replaces scheme and host.
            base_url="http://127.0.0.1:9/v1",
            api_key="sk-upstream",
            models=[setup.model],
            relay_url=f"{relay_url}/openai",
            relay_secret=secret,
        )
    await provision.wait_visible(setup.key, setup.model)
    return setup


async def test_relayed_channel_streams_and_bills_like_a_direct_one(
    provision: Provisioner, relay_url: str
) -> None:
    relayed = await _relayed_setup(provision, relay_url)
    messages = [{"role": "user", "content": "Say hello through the relay"}]
    async with httpx.AsyncClient() as http:
        direct = (
            await http.post(
                f"{provision.simulator_url}/v1/chat/completions",
                json={"model": relayed.model, "messages": messages},
            )
        ).json()
    expected = compute_cost(
        Usage(
            input_tokens=direct["usage"]["prompt_tokens"],
            output_tokens=direct["usage"]["completion_tokens"],
        ),
        Price(input=Decimal(2), output=Decimal(8)),
        Decimal(1),
    )
    client = provision.openai(relayed.key)
    stream = await client.chat.completions.create(
        model=relayed.model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    seen = [
        r
        for r in await simulator_requests(provision.simulator_url)
        if r["body"] and r["body"].get("model") == relayed.model and r["body"].get("stream")
    ]
    completion = await client.chat.completions.create(model=relayed.model, messages=messages)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct["choices"][0]["message"]["content"]
    assert completion.choices[0].message.content == text
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra is not None
    assert usage.model_extra["cost"] == format_usd(expected)
    assert seen[0]["path"] == "/v1/chat/completions"
    assert "x-relay-key" not in seen[0]["headers"]
    assert seen[0]["headers"]["authorization"] == "Bearer sk-upstream"
    await provision.wait_settled()
    rows = await provision.usage_rows(relayed.tenant_id)
    assert [r["cost"] for r in rows] == [expected, expected]


async def test_relay_refusal_is_a_relay_error_not_an_upstream_one(
    provision: Provisioner, relay_url: str
) -> None:
    setup = await _relayed_setup(provision, relay_url, secret="wrong-secret")

    with pytest.raises(openai.InternalServerError) as failed:
        await provision.openai(setup.key).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "hi"}]
        )

    assert failed.value.code == "relay_error"
    await provision.wait_settled()
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000
