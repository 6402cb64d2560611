"""The channel test: one small real request to a channel's upstream, timed.

The request speaks the channel's protocol the way that provider's SDK would, at the
channel's base URL: OpenAI-compatible ``/chat/completions`` (also Workers AI's
OpenAI-compatible endpoint), Anthropic ``/v1/messages`` and Gemini ``generateContent``.
It asks for a handful of output tokens and never goes through the gateway.
"""

from __future__ import annotations

import time
from typing import Any, Final

import httpx
import msgspec

__all__ = ("ProbeResult", "probe_channel")

PROBE_TIMEOUT: Final = 20.0
"""Seconds the whole test request may take."""
PROBE_PROMPT: Final = "Reply with the single word: pong"
_MAX_TOKENS: Final = 16
_MAX_SHOWN: Final = 500


class ProbeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the test request brought back."""

    ok: bool
    latency_ms: int
    model: str
    status: int | None
    """HTTP status, None when no response arrived."""
    answer: str
    """The reply text when ``ok``, else the error."""


def _request(
    kind: str, base_url: str, api_key: str, model: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    base = base_url.rstrip("/")
    if kind == "anthropic":
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": _MAX_TOKENS,
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        }
        return url, headers, body
    if kind == "gemini":
        root = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
        url = f"{root}/models/{model}:generateContent"
        headers = {"x-goog-api-key": api_key}
        body = {
            "contents": [{"role": "user", "parts": [{"text": PROBE_PROMPT}]}],
            "generationConfig": {"maxOutputTokens": _MAX_TOKENS},
        }
        return url, headers, body
    url = f"{base}/chat/completions"
    headers = {"authorization": f"Bearer {api_key}"}
    body = {
        "model": model,
        "max_tokens": _MAX_TOKENS,
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
    }
    return url, headers, body


def _answer(kind: str, payload: Any) -> str:
    try:
        if kind == "anthropic":
            return "".join(b.get("text", "") for b in payload["content"])
        if kind == "gemini":
            parts = payload["candidates"][0]["content"]["parts"]
            return "".join(p.get("text", "") for p in parts)
        return str(payload["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        return str(payload)[:_MAX_SHOWN]


def _error(payload: Any, fallback: str) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return fallback[:_MAX_SHOWN]


async def probe_channel(
    kind: str,
    base_url: str,
    api_key: str,
    model: str,
    *,
    time_limit: float = PROBE_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProbeResult:
    """Send one small chat request to the upstream and report latency and answer."""
    url, headers, body = _request(kind, base_url, api_key, model)
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=time_limit, transport=transport) as client:
            response = await client.post(url, headers=headers, json=body)
    except httpx.HTTPError as exc:
        elapsed = int((time.perf_counter() - started) * 1000)
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ProbeResult(ok=False, latency_ms=elapsed, model=model, status=None, answer=reason)
    elapsed = int((time.perf_counter() - started) * 1000)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and payload is not None:
        return ProbeResult(
            ok=True,
            latency_ms=elapsed,
            model=model,
            status=response.status_code,
            answer=_answer(kind, payload)[:_MAX_SHOWN],
        )
    return ProbeResult(
        ok=False,
        latency_ms=elapsed,
        model=model,
        status=response.status_code,
        answer=f"HTTP {response.status_code}: {_error(payload, response.text)}",
    )
