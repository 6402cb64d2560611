"""Fault specs: the `/_fault/<spec>/` path prefix that scripts how one request misbehaves.

A spec is a comma-separated list of `key=value` pairs, taken from the raw (still
percent-encoded) path segment, so a value may carry an encoded `,` or `/`. Each value is then
percent-decoded (`+` also means a space). Keys:

- `status=<400-599>`: answer with that status, in the error shape of the path's protocol. With
  `error_after` it picks the kind of the mid-stream error instead, and the HTTP status stays 200.
- `retry_after=<seconds>`: add a `Retry-After` header.
- `delay=<seconds>`: wait before the response headers.
- `slow=<seconds>`: wait between stream frames.
- `cut=<n>`: streaming, send n content frames, then drop the connection with no terminator;
  not streaming, drop the connection after the status line and headers, before the body.
- `error_after=<n>`: streaming only, after n content frames send the protocol's mid-stream
  error event, then end the response (non-streamed requests are answered normally).
- `no_usage=1`: never report usage, even when asked for it.
- `words=<n>`: number of words of the default answer.
- `text=<text>`: the exact answer text.
- `block=prompt|output`: Gemini safety blocks (case BC19); other protocols ignore it.
- `cache=read|write`: Anthropic, report the cached prompt prefix as a cache read (the default)
  or as a cache write.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal
from urllib.parse import unquote_plus

import msgspec

MAX_SECONDS: Final = 600.0
"""Upper bound of every duration in a spec, in seconds."""

Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class FaultSpecError(ValueError):
    """Raised when a `/_fault/` spec has an unknown key or a value out of range."""


class FaultSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one request misbehaves; the default misbehaves in no way."""

    status: Annotated[int, msgspec.Meta(ge=400, le=599)] | None = None
    """HTTP status of the error answer (or kind of the mid-stream error with `error_after`)."""

    retry_after: Seconds | None = None
    """Seconds sent in a `Retry-After` header."""

    delay: Seconds = 0.0
    """Seconds to wait before the response headers."""

    slow: Seconds = 0.0
    """Seconds to wait between stream frames."""

    cut: Count | None = None
    """Content frames to send before dropping the connection."""

    error_after: Count | None = None
    """Content frames to send before the protocol's mid-stream error event."""

    no_usage: bool = False
    """Never report usage."""

    words: Count | None = None
    """Number of words in the default answer."""

    text: str | None = None
    """Exact answer text, replacing the default sentence."""

    block: Literal["prompt", "output"] | None = None
    """Gemini safety block to answer with."""

    cache: Literal["read", "write"] | None = None
    """How Anthropic reports the prompt prefix marked with `cache_control`."""

    @property
    def is_status_error(self) -> bool:
        """Whether the whole request is answered with an HTTP error status."""
        return self.status is not None and self.error_after is None


NO_FAULT: Final = FaultSpec()
"""The spec of an unprefixed request."""


def parse_fault_spec(raw: str) -> FaultSpec:
    """Parse the raw (percent-encoded) spec segment of a `/_fault/<spec>/` path.

    Raises:
        FaultSpecError: a pair is not `key=value`, a key is unknown or a value is out of range.
    """
    fields: dict[str, str] = {}
    for item in raw.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"fault spec item {item!r} is not `key=value`"
            raise FaultSpecError(msg)
        fields[key] = unquote_plus(value)
    try:
        return msgspec.convert(fields, FaultSpec, strict=False)
    except msgspec.ValidationError as exc:
        msg = f"invalid fault spec {raw!r}: {exc}"
        raise FaultSpecError(msg) from exc
