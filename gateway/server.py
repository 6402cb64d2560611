"""Serving the gateway with granian: N worker processes, each building its own app."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from granian import Granian
from granian.constants import Interfaces

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ("serve_gateway",)


def serve_gateway(settings: Settings) -> None:
    """Run the gateway until interrupted; workers read their settings from the environment."""
    os.environ.update(settings.to_env())
    Granian(
        target="gateway.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.gateway.host,
        port=settings.gateway.port,
        workers=settings.gateway.workers,
        log_access=False,
        websockets=False,
        # A worker that dies (OOM, a crash) is replaced; the others keep serving.
        respawn_failed_workers=True,
    ).serve()
