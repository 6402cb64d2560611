"""Errors of the request path, rendered by each client surface in its own protocol.

The hierarchy::

    GatewayError                    (status, code, type, message, headers, retryable)
    └── UpstreamError               (an upstream call failed; carries ``retry_after``)
        ├── UpstreamConnectError    (no connection could be made)
        ├── UpstreamTimeoutError    (no answer in time)
        ├── UpstreamStatusError     (an error status from the upstream)
        └── UpstreamProtocolError   (an answer that does not follow the protocol)

Raise sites never build response bodies: each surface renders a ``GatewayError`` in the
caller's protocol (OpenAI, Anthropic or Gemini error shape).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = (
    "GatewayError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "malformed_input",
)


class GatewayError(Exception):
    """Raised to refuse or fail a request; carries everything a surface needs to render it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type
        self.param = param
        self.headers = dict(headers or {})
        self.retryable = retryable


class UpstreamError(GatewayError):
    """Raised when an upstream call fails; ``retryable`` says whether another channel may try."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: str | None = None,
        type: str = "upstream_error",
        counts_against_channel: bool = True,
    ) -> None:
        headers = {"retry-after": retry_after} if retry_after else None
        super().__init__(status, code, message, type=type, headers=headers, retryable=retryable)
        self.retry_after = retry_after
        self.counts_against_channel = counts_against_channel


class UpstreamConnectError(UpstreamError):
    """Raised when no connection to the upstream (or its relay) could be opened."""

    def __init__(self, message: str) -> None:
        super().__init__(502, "upstream_unreachable", message, retryable=True)


class UpstreamTimeoutError(UpstreamError):
    """Raised when the upstream does not answer, or goes silent, within its timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(504, "upstream_timeout", message, retryable=True)


class UpstreamStatusError(UpstreamError):
    """Raised when the upstream answers with an error status."""


class UpstreamProtocolError(UpstreamError):
    """Raised when the upstream answers with something its protocol does not allow."""

    def __init__(self, message: str) -> None:
        super().__init__(502, "bad_upstream_response", message, retryable=True)


@contextlib.contextmanager
def malformed_input() -> Iterator[None]:
    """Turn a decoder's type error on malformed JSON into a 400 in the caller's protocol.

    Decoders read client JSON whose shape was only partly checked; a value of the wrong
    type deep inside it must be the client's 400, never the gateway's 500.

    Raises:
        GatewayError: 400 ``invalid_value`` naming the problem.
    """
    try:
        yield
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:
        msg = f"Invalid request: a field has a value of the wrong shape ({exc})."
        raise GatewayError(400, "invalid_value", msg) from None
