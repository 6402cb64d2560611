"""The OpenAI SDK against the gateway, the simulator as the upstream, billing checked exactly."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import pytest

from shared.money import Price, Usage, compute_cost, format_usd
from tests.support import Provisioner

pytestmark = pytest.mark.e2e

RATIO = Decimal(1)


def expected_cost(
    prompt: int, completion: int, input_price: str = "2", output_price: str = "8"
) -> int:
    price = Price(input=Decimal(input_price), output=Decimal(output_price))
    return compute_cost(Usage(input_tokens=prompt, output_tokens=completion), price, RATIO)


async def test_chat_non_stream_bills_exact_cost(provision: Provisioner) -> None:
    setup = await provision.setup(balance="10")
    client = provision.openai(setup.key)

    raw = await client.chat.completions.with_raw_response.create(
        model=setup.model, messages=[{"role": "user", "content": "Say hello world"}]
    )
    completion = raw.parse()

    assert completion.model == setup.model
    assert completion.choices[0].message.content
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    cost = expected_cost(usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-tollgate-cost"] == format_usd(cost)
    assert usage.model_extra is not None and usage.model_extra["cost"] == format_usd(cost)
    assert raw.headers["x-request-id"].startswith("req_")
    await provision.wait_settled()
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000 - cost
    assert books["ledger"] == books["balance"]
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        cost,
    )
    assert row["status"] == "ok" and row["estimated"] is False


async def test_chat_stream_with_include_usage_reports_usage_and_cost(
    provision: Provisioner,
) -> None:
    setup = await provision.setup()
    client = provision.openai(setup.key)

    stream = await client.chat.completions.create(
        model=setup.model,
        messages=[{"role": "user", "content": "Say hello world"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    cost = expected_cost(usage.prompt_tokens, usage.completion_tokens)
    assert usage.model_extra is not None and usage.model_extra["cost"] == format_usd(cost)
    assert all(c.model == setup.model for c in chunks)
    await provision.wait_settled()
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000 - cost


async def test_chat_stream_without_include_usage_hides_usage_but_bills(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    setup = await provision.setup()

    async with http.stream(
        "POST",
        f"{provision.gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {setup.key}"},
        json={
            "model": setup.model,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as response:
        body = (await response.aread()).decode()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line[6:] for line in body.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    assert '"usage"' not in body
    assert '"choices":[]' not in body
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["output_tokens"] > 0 and row["estimated"] is False
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000 - row["cost"]
    assert row["cost"] == expected_cost(row["input_tokens"], row["output_tokens"])


async def test_models_lists_only_models_the_key_may_use(provision: Provisioner) -> None:
    setup = await provision.setup()
    other = await provision.setup()
    restricted_id, restricted = await provision.key(setup.tenant, models=[other.model])
    client = provision.openai(setup.key)

    listed = [m.id async for m in client.models.list()]
    assert setup.model in listed and other.model in listed
    assert listed == sorted(listed)

    only = [m.id async for m in provision.openai(restricted).models.list()]
    assert setup.model not in only and other.model in only
    model = await provision.openai(restricted).models.retrieve(other.model)
    assert model.id == other.model and isinstance(model.created, int) and model.owned_by
    with pytest.raises(openai.NotFoundError):
        await provision.openai(restricted).models.retrieve(setup.model)
    with pytest.raises(openai.NotFoundError):
        await provision.openai(restricted).chat.completions.create(
            model=setup.model, messages=[{"role": "user", "content": "x"}]
        )


async def test_models_hides_model_without_channel_or_price(provision: Provisioner) -> None:
    setup = await provision.setup()
    unrouted = "gpt-nochannel-" + setup.model
    await provision.price(unrouted, "1", "1")
    unpriced = "gpt-noprice-" + setup.model
    await provision.channel([unpriced])
    await provision.wait_visible(setup.key, setup.model)

    listed = [m.id async for m in provision.openai(setup.key).models.list()]
    assert unrouted not in listed and unpriced not in listed

    with pytest.raises(openai.NotFoundError):
        await provision.openai(setup.key).chat.completions.create(
            model=unrouted, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as refused:
        await provision.openai(setup.key).chat.completions.create(
            model=unpriced, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.code == "model_not_priced"
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000


async def test_concurrent_requests_never_overdraw(provision: Provisioner) -> None:
    # Each request holds at most: input bound (body bytes) x 2 + 50 output tokens x 8 USD/M.
    # The balance covers about ten holds; fifty requests race for it.
    setup = await provision.setup(balance="0.01", input_price="2", output_price="8")
    client = provision.openai(setup.key)

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model=setup.model,
                messages=[{"role": "user", "content": "hi " + "x" * 4000}],
                max_tokens=50,
            )
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            assert exc.response.headers["x-should-retry"] == "false"
            return "refused"
        return "served"

    outcomes = await asyncio.gather(*(one() for _ in range(50)))

    served = outcomes.count("served")
    assert served >= 1 and outcomes.count("refused") >= 1
    await provision.wait_settled()
    books = await provision.books(setup.tenant_id)
    assert books["balance"] >= 0
    rows = await provision.usage_rows(setup.tenant_id)
    assert len(rows) == served
    assert books["balance"] == 10_000_000 - sum(r["cost"] for r in rows)
    assert len({r["request_id"] for r in rows}) == served
