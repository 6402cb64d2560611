"""``/v1/embeddings`` through the OpenAI SDK, against each upstream kind, billed exactly."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import httpx
import openai
import pytest

from gateway.simulator.composer import DEFAULT_DIMENSIONS, embedding_vector
from gateway.tokens import count_tokens, encoding
from shared.money import Price, Usage, compute_cost, format_usd
from tests.e2e.test_workers_ai import ACCOUNT, add_channel, workers_base
from tests.support import Provisioner, Setup, simulator_requests

pytestmark = pytest.mark.e2e

TEXTS = ["hello world", "the quick brown fox"]


def cost_of(tokens: int) -> int:
    price = Price(input=Decimal("2"), output=Decimal("8"))
    return compute_cost(Usage(input_tokens=tokens), price, Decimal(1))


def close_to(left: list[float], right: list[float]) -> bool:
    return len(left) == len(right) and all(
        abs(a - b) < 1e-6 for a, b in zip(left, right, strict=True)
    )


async def setup_kind(
    provision: Provisioner, kind: str, *, settings: dict[str, str] | None = None
) -> tuple[Setup, str]:
    setup = await provision.setup(channel=False)
    upstream = f"embed-{setup.model}"
    base_url = {
        "openai": f"{provision.simulator_url}/v1",
        "gemini": provision.simulator_url,
        "anthropic": provision.simulator_url,
        "workers-ai": workers_base(provision.simulator_url),
    }[kind]
    await add_channel(
        provision,
        [setup.model],
        base_url=base_url,
        kind=kind,
        settings=settings,
        model_map={setup.model: upstream},
    )
    await provision.wait_visible(setup.key, setup.model)
    return setup, upstream


async def sent_for(provision: Provisioner, upstream: str) -> list[dict]:
    return [
        r
        for r in await simulator_requests(provision.simulator_url)
        if upstream in r["path"]
        or (isinstance(r["body"], dict) and r["body"].get("model") == upstream)
    ]


async def test_openai_float_embeddings_bill_upstream_usage(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "openai")

    raw = await provision.openai(setup.key).embeddings.with_raw_response.create(
        model=setup.model, input=TEXTS, encoding_format="float"
    )
    result = raw.parse()

    assert result.model == setup.model and result.object == "list"
    assert [d.index for d in result.data] == [0, 1]
    for item, text in zip(result.data, TEXTS, strict=True):
        assert close_to(item.embedding, embedding_vector(text, DEFAULT_DIMENSIONS))
    tokens = result.usage.prompt_tokens
    assert tokens > 0 and result.usage.total_tokens == tokens
    assert raw.headers["x-tollgate-cost"] == format_usd(cost_of(tokens))
    assert result.usage.model_extra["cost"] == format_usd(cost_of(tokens))
    assert raw.headers["x-request-id"].startswith("req_")
    [sent] = await sent_for(provision, upstream)
    assert sent["path"] == "/v1/embeddings"
    assert sent["body"] == {"model": upstream, "input": TEXTS, "encoding_format": "float"}

    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["endpoint"], row["input_tokens"], row["output_tokens"]) == ("embeddings", tokens, 0)
    assert (row["status"], row["estimated"], row["cost"]) == ("ok", False, cost_of(tokens))
    books = await provision.books(setup.tenant_id)
    assert books["balance"] == 10_000_000_000 - cost_of(tokens) == books["ledger"]


async def test_openai_base64_embeddings(provision: Provisioner) -> None:
    setup, _ = await setup_kind(provision, "openai")
    client = provision.openai(setup.key)

    explicit = await client.embeddings.create(
        model=setup.model, input="hello world", encoding_format="base64", dimensions=8
    )
    [item] = explicit.data
    assert isinstance(item.embedding, str)
    raw = base64.b64decode(item.embedding)
    assert close_to(list(struct.unpack("<8f", raw)), embedding_vector("hello world", 8))

    # The SDK asks for base64 by default and decodes it itself.
    default = await client.embeddings.create(model=setup.model, input="hello world")
    assert close_to(default.data[0].embedding, embedding_vector("hello world", DEFAULT_DIMENSIONS))


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_gemini_embeddings_are_converted(
    provision: Provisioner, encoding_format: str
) -> None:
    setup, upstream = await setup_kind(provision, "gemini")

    result = await provision.openai(setup.key).embeddings.create(
        model=setup.model, input=TEXTS, dimensions=16, encoding_format=encoding_format
    )

    for item, text in zip(result.data, TEXTS, strict=True):
        vector = item.embedding
        if encoding_format == "base64":
            assert isinstance(vector, str)
            vector = list(struct.unpack("<16f", base64.b64decode(vector)))
        assert close_to(vector, embedding_vector(text, 16))
    [sent] = await sent_for(provision, upstream)
    assert sent["path"] == f"/v1beta/models/{upstream}:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == "cf-upstream-token"
    assert sent["body"]["requests"][0] == {
        "model": f"models/{upstream}",
        "outputDimensionality": 16,
        "content": {"parts": [{"text": TEXTS[0]}]},
    }
    tokens = sum(count_tokens(t) for t in TEXTS)
    assert result.usage.prompt_tokens == tokens
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["input_tokens"], row["estimated"], row["cost"]) == (tokens, True, cost_of(tokens))


async def test_token_array_input_is_decoded_for_text_upstreams(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "gemini")
    tokens = encoding("cl100k_base").encode_ordinary("hello world")

    result = await provision.openai(setup.key).embeddings.create(
        model=setup.model, input=[tokens, tokens[:1]], encoding_format="float"
    )

    assert len(result.data) == 2
    assert close_to(result.data[0].embedding, embedding_vector("hello world", DEFAULT_DIMENSIONS))
    [sent] = await sent_for(provision, upstream)
    texts = [r["content"]["parts"][0]["text"] for r in sent["body"]["requests"]]
    assert texts == ["hello world", "hello"]
    assert result.usage.prompt_tokens == len(tokens) + 1


async def test_workers_ai_native_embeddings(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "workers-ai")

    result = await provision.openai(setup.key).embeddings.create(
        model=setup.model, input=TEXTS, encoding_format="float"
    )

    for item, text in zip(result.data, TEXTS, strict=True):
        assert close_to(item.embedding, embedding_vector(text, DEFAULT_DIMENSIONS))
    [sent] = await sent_for(provision, upstream)
    assert sent["path"] == f"/client/v4/accounts/{ACCOUNT}/ai/run/{upstream}"
    assert sent["headers"]["authorization"] == "Bearer cf-upstream-token"
    assert sent["body"] == {"text": TEXTS}
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["estimated"] is True and row["input_tokens"] == sum(count_tokens(t) for t in TEXTS)


async def test_workers_ai_native_refuses_dimensions(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "workers-ai")

    with pytest.raises(openai.BadRequestError) as refused:
        await provision.openai(setup.key).embeddings.create(
            model=setup.model, input="x", dimensions=8
        )
    assert refused.value.code == "unsupported_parameter"
    assert await sent_for(provision, upstream) == []


async def test_workers_ai_openai_compatible_embeddings(provision: Provisioner) -> None:
    setup, upstream = await setup_kind(provision, "workers-ai", settings={"api": "openai"})

    result = await provision.openai(setup.key).embeddings.create(
        model=setup.model, input="hello world", encoding_format="base64"
    )

    assert isinstance(result.data[0].embedding, str)
    [sent] = await sent_for(provision, upstream)
    assert sent["path"] == f"/client/v4/accounts/{ACCOUNT}/ai/v1/embeddings"
    assert sent["body"]["model"] == upstream
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert row["estimated"] is False and row["input_tokens"] == result.usage.prompt_tokens


async def test_failover_before_answer(provision: Provisioner) -> None:
    setup = await provision.setup(channel=False)
    await add_channel(
        provision,
        [setup.model],
        base_url=f"{provision.simulator_url}/_fault/status=503/v1",
        kind="openai",
        priority=1,
    )
    second = await add_channel(
        provision,
        [setup.model],
        base_url=workers_base(provision.simulator_url),
        priority=2,
    )
    await provision.wait_visible(setup.key, setup.model)

    result = await provision.openai(setup.key).embeddings.create(
        model=setup.model, input="hi", encoding_format="float"
    )

    assert result.data[0].embedding
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["channel_id"], row["attempts"], row["status"]) == (second, 2, "ok")


async def test_upstream_rate_limit_reaches_client(provision: Provisioner) -> None:
    setup = await provision.setup(channel=False)
    await add_channel(
        provision,
        [setup.model],
        base_url=f"{provision.simulator_url}/_fault/status=429,retry_after=30/v1",
        kind="openai",
    )
    await provision.wait_visible(setup.key, setup.model)

    with pytest.raises(openai.RateLimitError) as refused:
        await provision.openai(setup.key).embeddings.create(model=setup.model, input="hi")
    assert refused.value.response.headers["retry-after"] == "30"
    await provision.wait_settled()
    [row] = await provision.usage_rows(setup.tenant_id)
    assert (row["status"], row["cost"]) == ("error", 0)
    assert (await provision.books(setup.tenant_id))["balance"] == 10_000_000_000


async def test_channel_without_embeddings_is_refused(provision: Provisioner) -> None:
    setup, _ = await setup_kind(provision, "anthropic")

    with pytest.raises(openai.BadRequestError) as refused:
        await provision.openai(setup.key).embeddings.create(model=setup.model, input="hi")
    assert refused.value.code == "unsupported_parameter"


async def test_request_errors(provision: Provisioner, http: httpx.AsyncClient) -> None:
    setup, _ = await setup_kind(provision, "openai")
    client = provision.openai(setup.key)

    with pytest.raises(openai.NotFoundError) as missing:
        await client.embeddings.create(model="no-such-model", input="hi")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        await client.embeddings.create(model=setup.model, input=[])
    assert empty.value.param == "input"
    with pytest.raises(openai.BadRequestError) as bad_item:
        await client.embeddings.create(model=setup.model, input=["ok", ""])
    assert bad_item.value.param == "input[1]"
    with pytest.raises(openai.AuthenticationError):
        await provision.openai("sk-tg-wrong").embeddings.create(model=setup.model, input="hi")

    response = await http.get(
        f"{provision.gateway_url}/v1/embeddings", headers={"authorization": f"Bearer {setup.key}"}
    )
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["x-request-id"].startswith("req_")
    assert await provision.usage_rows(setup.tenant_id) == []
