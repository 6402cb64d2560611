"""OpenAI-compatible upstreams: request building, usage reading and error mapping.

A channel's base URL is what the OpenAI SDK takes (it ends in ``/v1``); paths are joined
to it. Streams are asked for usage (``stream_options.include_usage``) whatever the client
asked, since billing needs it; the client surface hides it again when it was not asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from gateway.errors import UpstreamProtocolError, UpstreamStatusError
from shared.money import Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.snapshot import ChannelEntry

__all__ = ("build_chat_request", "status_error", "usage_from_openai")

_FINAL_STATUSES: Final = frozenset({400, 413, 422})
"""Statuses that are the request's own fault: another channel would refuse it too."""

_QUOTE_LIMIT: Final = 500


def build_chat_request(
    channel: ChannelEntry, payload: dict[str, Any], *, model: str, stream: bool
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Return the URL, headers and body of a chat completion call to ``channel``."""
    body = dict(payload)
    body["model"] = channel.upstream_model(model)
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    headers = [
        ("authorization", f"Bearer {channel.api_key}"),
        ("content-type", "application/json"),
        ("accept", "text/event-stream" if stream else "application/json"),
    ]
    return f"{channel.base_url}/chat/completions", headers, msgspec.json.encode(body)


def usage_from_openai(usage: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object into billing terms; None when it is not one."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    written = prompt_details.get("cache_write_tokens") if isinstance(prompt_details, dict) else None
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    )
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=cached if isinstance(cached, int) else 0,
        cache_write_tokens=written if isinstance(written, int) else 0,
        output_tokens=completion,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else 0,
    )


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamStatusError:
    """Map an upstream error response to the error the client will see if no channel succeeds."""
    message = _upstream_message(body)
    retry_after = headers.get("retry-after")
    if status == 429:
        return UpstreamStatusError(
            429,
            "rate_limit_exceeded",
            f"upstream rate limit: {message}",
            retryable=True,
            retry_after=retry_after,
            type="requests",
        )
    if status in _FINAL_STATUSES:
        return UpstreamStatusError(
            status,
            "upstream_rejected_request",
            message,
            retryable=False,
            type="invalid_request_error",
        )
    return UpstreamStatusError(
        502, "upstream_error", f"upstream answered {status}: {message}", retryable=True
    )


def _upstream_message(body: bytes) -> str:
    """Return the message of an upstream error body, whatever its shape."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip() or "(empty body)"
    if isinstance(decoded, dict):
        error = decoded.get("error", decoded)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_QUOTE_LIMIT]
        if isinstance(error, str):
            return error[:_QUOTE_LIMIT]
    return body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")


def decode_completion(body: bytes) -> dict[str, Any]:
    """Decode a non-streamed completion, refusing anything that is not one.

    Raises:
        UpstreamProtocolError: quoting the body when it is not a JSON completion object.
        UpstreamStatusError: when a 200 carries an ``error`` object instead.
    """
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None
    if isinstance(decoded, dict) and "error" in decoded and "choices" not in decoded:
        raise UpstreamStatusError(
            502, "upstream_error", f"upstream error: {_upstream_message(body)}", retryable=True
        )
    if not isinstance(decoded, dict) or not isinstance(decoded.get("choices"), list):
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
        msg = f"upstream answered 200 without a completion: {quoted!r}"
        raise UpstreamProtocolError(msg)
    return decoded
