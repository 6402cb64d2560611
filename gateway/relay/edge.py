"""Routing a channel's upstream calls through an edge relay (see ``edge_proxy/``).

A channel with a ``relay_url`` (for example ``https://relay.example.org/openai``, the
relay's address plus the path prefix its upstream table maps to the provider) sends every
call to the relay instead: the upstream URL's scheme and host are replaced by the relay
URL, the path and query are kept, and the shared secret goes in ``x-relay-key``. Failures
of the relay itself (unreachable, or answering with ``x-relay-error``) do not count
against the upstream channel's health.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ("RELAY_ERROR_HEADER", "RELAY_KEY_HEADER", "is_relay_error", "via_relay")

RELAY_KEY_HEADER: Final = "x-relay-key"
"""Request header carrying the relay's shared secret."""

RELAY_ERROR_HEADER: Final = "x-relay-error"
"""Response header the relay sets on its own refusals and failures."""


def via_relay(
    url: str, headers: Sequence[tuple[str, str]], relay_url: str, secret: str | None
) -> tuple[str, list[tuple[str, str]]]:
    """Return the URL and headers of ``url`` sent through the relay at ``relay_url``."""
    parts = urlsplit(url)
    target = relay_url.rstrip("/") + parts.path
    if parts.query:
        target += "?" + parts.query
    routed = [(k, v) for k, v in headers if k.lower() != RELAY_KEY_HEADER]
    if secret:
        routed.append((RELAY_KEY_HEADER, secret))
    return target, routed


def is_relay_error(headers: Mapping[str, str]) -> bool:
    """Return True when a response was produced by the relay, not the upstream."""
    return RELAY_ERROR_HEADER in headers
