"""Upstream HTTP: the relay client interface and its implementations."""

from __future__ import annotations

from gateway.relay.client import (
    RelayClient,
    UpstreamReadError,
    UpstreamResponse,
    create_relay_client,
)

__all__ = ("RelayClient", "UpstreamReadError", "UpstreamResponse", "create_relay_client")
