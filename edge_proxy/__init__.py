"""Edge relay: forwards gateway calls to LLM providers from a location they accept.

The policy lives in :mod:`edge_proxy.relay_core` (standard library only, shared with the
Cloudflare Python Worker in ``edge_proxy/worker.py``); :mod:`edge_proxy.asgi_app` runs the
same policy as an ASGI app under granian for self-hosting (``tollgate relay``).
"""

from __future__ import annotations

from edge_proxy.asgi_app import RelayApp, app_from_env, create_app, serve
from edge_proxy.relay_core import (
    DEFAULT_UPSTREAMS,
    RELAY_ERROR_HEADER,
    RELAY_KEY_HEADER,
    BindingCall,
    Forward,
    Refusal,
    RelayPolicy,
    UpstreamTableError,
    parse_upstreams,
)

__all__ = (
    "DEFAULT_UPSTREAMS",
    "RELAY_ERROR_HEADER",
    "RELAY_KEY_HEADER",
    "BindingCall",
    "Forward",
    "Refusal",
    "RelayApp",
    "RelayPolicy",
    "UpstreamTableError",
    "app_from_env",
    "create_app",
    "parse_upstreams",
    "serve",
)
