"""Error shapes of each simulated provider, as HTTP bodies and as mid-stream events.

```
ProviderError     raised by a handler; rendered in the protocol of the request path
```

HTTP bodies and mid-stream events, per protocol:

- OpenAI: `{"error": {"message", "type", "param", "code"}}`; in a stream
  `data: {"error": {...}}`.
- Anthropic: `{"type": "error", "error": {"type", "message"}, "request_id"}`; in a stream
  `event: error` and `data: {"type": "error", "error": {...}}`.
- Gemini: `{"error": {"code", "message", "status"}}`; in a stream the same object as an SSE
  event or an array element.
- Workers AI: `{"result": null, "success": false, "errors": [{"code", "message"}],
  "messages": []}`; in a stream `data: {"success": false, "errors": [...]}`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping

_encode = msgspec.json.encode


class Protocol(enum.Enum):
    """Wire protocol of a request, chosen by its path."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    WORKERS_AI = "workers_ai"


def protocol_for_request(path: str, headers: Mapping[str, str], query: str = "") -> Protocol:
    """Return the protocol of a request: its path, and for `/v1/models` its credentials header."""
    if path.startswith("/v1/messages"):
        return Protocol.ANTHROPIC
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return Protocol.GEMINI
    if path.startswith("/client/v4/"):
        return Protocol.WORKERS_AI
    if path.startswith("/v1/models"):
        if "anthropic-version" in headers:
            return Protocol.ANTHROPIC
        if "x-goog-api-key" in headers or query.startswith("key=") or "&key=" in query:
            return Protocol.GEMINI
    return Protocol.OPENAI


class ProviderError(Exception):
    """Raised by a handler to answer with an error in the protocol of the request path."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


_OPENAI: Final[dict[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI: Final[dict[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_WORKERS_AI: Final[dict[int, int]] = {
    400: 5006,
    401: 10000,
    403: 10000,
    404: 5007,
    408: 3007,
    413: 3006,
    429: 3040,
}
_MESSAGES: Final[dict[int, str]] = {
    400: "Invalid request (simulated).",
    401: "Invalid API key (simulated).",
    403: "Permission denied (simulated).",
    404: "Not found (simulated).",
    429: "Rate limit reached, please retry later (simulated).",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The service is temporarily unavailable (simulated).",
    504: "Deadline exceeded (simulated).",
    529: "Overloaded (simulated).",
}
DEFAULT_STREAM_ERROR_STATUS: Final[dict[Protocol, int]] = {
    Protocol.OPENAI: 503,
    Protocol.ANTHROPIC: 529,
    Protocol.GEMINI: 503,
    Protocol.WORKERS_AI: 503,
}
"""Error kind of an `error_after` fault that names no `status`."""


def default_message(status: int) -> str:
    """Return the message of a simulated error with `status`."""
    return _MESSAGES.get(status, f"Simulated error with status {status}.")


def openai_error(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """Return the OpenAI error object (the value of the `error` key)."""
    kind, code = _OPENAI.get(status, ("server_error", None))
    return {"message": message, "type": kind, "param": param, "code": code}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """Return the Anthropic error object (the value of the `error` key)."""
    return {"type": _ANTHROPIC.get(status, "api_error"), "message": message}


def gemini_error(status: int, message: str) -> dict[str, Any]:
    """Return the Gemini error object (the value of the `error` key)."""
    return {"code": status, "message": message, "status": _GEMINI.get(status, "INTERNAL")}


def workers_ai_errors(status: int, message: str) -> list[dict[str, Any]]:
    """Return the Cloudflare `errors` array."""
    return [{"code": _WORKERS_AI.get(status, 3043), "message": message}]


def error_body(protocol: Protocol, error: ProviderError, request_id: str) -> bytes:
    """Return the JSON body of an HTTP error answer in the shape of `protocol`."""
    status, message = error.status, error.message
    if protocol is Protocol.ANTHROPIC:
        body: dict[str, Any] = {
            "type": "error",
            "error": anthropic_error(status, message),
            "request_id": request_id,
        }
    elif protocol is Protocol.GEMINI:
        body = {"error": gemini_error(status, message)}
    elif protocol is Protocol.WORKERS_AI:
        body = {
            "result": None,
            "success": False,
            "errors": workers_ai_errors(status, message),
            "messages": [],
        }
    else:
        body = {"error": openai_error(status, message, error.param)}
    return _encode(body)
