"""Upstream adaptors, one module per upstream protocol, and the kind → codec registry."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.translate import UpstreamCodec

__all__ = ("upstream_codecs",)


@functools.cache
def upstream_codecs() -> dict[str, UpstreamCodec]:
    """Return the upstream codec of every channel kind."""
    from gateway.providers.anthropic import AnthropicUpstream
    from gateway.providers.gemini import GeminiUpstream
    from gateway.providers.openai import OpenAIUpstream
    from gateway.providers.workers_ai import WorkersAIUpstream

    return {
        "openai": OpenAIUpstream(),
        "gemini": GeminiUpstream(),
        "anthropic": AnthropicUpstream(),
        "workers-ai": WorkersAIUpstream(),
    }
