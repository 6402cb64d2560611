"""Bad input gets a clear OpenAI-shaped error with the right status, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest

from tests.support import Provisioner, simulator_requests

pytestmark = pytest.mark.e2e


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"{bad json", "invalid_json", None),
        (b"[1, 2]", "invalid_request_body", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "invalid_value", None),
        (b'{"model": "MODEL", "messages": []}', "invalid_value", "messages"),
        (b'{"model": "MODEL", "messages": "hi"}', "invalid_value", "messages"),
        (b'{"model": "MODEL", "messages": [{"content": "x"}]}', "invalid_value", None),
        (
            b'{"model": "MODEL", "messages": [{"role": "user", "content": 5}]}',
            "invalid_value",
            "messages[0].content",
        ),
        (
            b'{"model": "MODEL", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "stream",
        ),
        (
            b'{"model": "MODEL", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "MODEL", "max_completion_tokens": -5, "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "max_completion_tokens",
        ),
        (
            b'{"model": "MODEL", "temperature": 9, "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "temperature",
        ),
        (
            b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "model",
        ),
        (b"", "invalid_json", None),
        (
            b'{"model": "MODEL", "messages": [{"role": "user", "content": "\xff"}]}',
            "invalid_json",
            None,
        ),
        (
            b'{"model": "MODEL", "x": ' + b"[" * 3000 + b"]" * 3000 + b', "messages": []}',
            "invalid_json",
            None,
        ),
        (
            b'{"model": "MODEL", "max_tokens": 9223372036854775808, "messages": [{"role": "user", "content": "x"}]}',
            "invalid_value",
            "max_tokens",
        ),
    ],
)
async def test_malformed_requests_get_400(
    provision: Provisioner, http: httpx.AsyncClient, body: bytes, code: str, param: str | None
) -> None:
    setup = await provision.setup()

    response = await http.post(
        f"{provision.gateway_url}/v1/chat/completions",
        content=body.replace(b"MODEL", setup.model.encode()),
        headers={"authorization": f"Bearer {setup.key}", "content-type": "application/json"},
    )

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_api_key"),
        ({"authorization": "Basic abc"}, 401, "missing_api_key"),
        ({"authorization": "Bearer"}, 401, "missing_api_key"),
        ({"authorization": "Bearer sk-tg-wrong"}, 401, "invalid_api_key"),
    ],
)
async def test_bad_credentials_get_401(
    provision: Provisioner, http: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = await http.post(
        f"{provision.gateway_url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )

    assert response.status_code == status
    assert _error(response)["code"] == code
    assert response.headers["x-request-id"].startswith("req_")


async def test_unknown_paths_and_methods_are_openai_shaped(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    models_post = await http.post(f"{provision.gateway_url}/v1/models")
    assert models_post.status_code == 405 and _error(models_post)["code"] == "method_not_allowed"
    missing = await http.get(f"{provision.gateway_url}/v1/nothing-here")
    wrong_method = await http.get(f"{provision.gateway_url}/v1/chat/completions")

    assert missing.status_code == 404 and _error(missing)["code"] == "unknown_url"
    assert wrong_method.status_code == 405 and _error(wrong_method)["code"] == "method_not_allowed"


async def test_declared_oversized_body_is_refused_before_it_is_sent(provision: Provisioner) -> None:
    setup = await provision.setup()
    host, port = provision.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            "POST /v1/chat/completions HTTP/1.1\r\n"
            f"host: {host}\r\nauthorization: Bearer {setup.key}\r\n"
            "content-type: application/json\r\ncontent-length: 125829120\r\n\r\n"
        ).encode()
    )
    await writer.drain()

    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()

    assert head.startswith(b"HTTP/1.1 413")


async def test_streamed_oversized_body_is_refused_at_the_limit(
    provision: Provisioner, http: httpx.AsyncClient
) -> None:
    setup = await provision.setup()
    chunk = b"x" * (1024 * 1024)

    async def body():
        yield (
            b'{"model": "' + setup.model.encode() + b'", "messages": [{"role": "user", "content": "'
        )
        for _ in range(101):
            yield chunk
        yield b'"}]}'

    try:
        response = await http.post(
            f"{provision.gateway_url}/v1/chat/completions",
            content=body(),
            headers={"authorization": f"Bearer {setup.key}", "content-type": "application/json"},
        )
    except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
        # The gateway answered 413 and closed before the client finished sending: refused.
        return
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


@pytest.mark.parametrize("megabytes", [8, 25])
async def test_large_image_bodies_reach_the_upstream_unchanged(
    provision: Provisioner, http: httpx.AsyncClient, megabytes: int
) -> None:
    setup = await provision.setup(balance="1000")
    image = base64.b64encode(
        b"\xff\xd8\xff" + b"\x00" * (megabytes * 1024 * 1024 * 3 // 4)
    ).decode()
    started = time.time() - 1
    payload = {
        "model": setup.model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
                ],
            }
        ],
    }

    response = await http.post(
        f"{provision.gateway_url}/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {setup.key}"},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    sent = [
        r
        for r in await simulator_requests(provision.simulator_url)
        if r["time"] >= started and r["body_size"] >= len(image)
    ]
    assert len(sent) == 1


@pytest.mark.parametrize(
    "body",
    [
        {
            "model": "MODEL",
            "max_tokens": 1152921504606846,
            "messages": [{"role": "user", "content": "hi"}],
        },
        {
            "model": "MODEL",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "function": "null"}],
                }
            ],
        },
        {
            "model": "MODEL",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "http://x/" + "a" * 70000}}
                    ],
                }
            ],
        },
        {
            "model": "MODEL",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "gs://bucket/x.png"}}],
                }
            ],
        },
    ],
    ids=[
        "huge-max-tokens",
        "tool-call-function-not-object",
        "unparseable-image-url",
        "non-http-image-url",
    ],
)
async def test_odd_but_valid_json_never_gets_a_500(
    provision: Provisioner, http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    setup = await provision.setup()
    for kind, base in (("anthropic", provision.simulator_url), ("openai", provision.upstream())):
        model = f"{setup.model}-{kind}"
        await provision.price(model, "2", "8")
        await provision.channel([model], base_url=base, kind=kind)
        await provision.wait_visible(setup.key, model)
        raw = json.dumps(body).replace("MODEL", model)

        response = await http.post(
            f"{provision.gateway_url}/v1/chat/completions",
            content=raw,
            headers={"authorization": f"Bearer {setup.key}", "content-type": "application/json"},
        )

        # Same-protocol channels pass odd values on for the upstream to judge; either way
        # the answer is never the gateway's own 500.
        assert response.status_code < 500, (kind, response.status_code, response.text)
        if response.status_code >= 400:
            _error(response)
