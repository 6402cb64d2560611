"""Settings, one frozen struct per area, read from the environment in one place.

Every field maps to ``TOLLGATE_<AREA>_<FIELD>`` (for example ``TOLLGATE_GATEWAY_PORT``);
``DATABASE_URL`` is also honoured for the database URL because every hosting platform sets it.
Values are validated by :func:`msgspec.convert`, so a bad one fails at start-up with its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import platformdirs

if TYPE_CHECKING:
    from collections.abc import Mapping

RelayClientKind = Literal["aiohttp", "httpx", "httpx-aiohttp"]


def default_data_dir() -> str:
    """Return the data directory used when ``--data-dir`` is not given.

    Root gets ``/var/lib/tollgate``: the embedded server runs as another user, who cannot
    enter root's home directory.
    """
    if os.geteuid() == 0:
        return "/var/lib/tollgate"
    return str(Path(platformdirs.user_data_dir("tollgate", appauthor=False)))


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where PostgreSQL is, or where the embedded one keeps its data."""

    url: str | None = None
    """A ``postgresql://`` URL; when unset, an embedded server is started under ``data_dir``."""
    data_dir: str | None = None
    """Directory for the embedded server's data; the user's data directory when unset."""
    pool_min_size: int = 2
    """Connections each gateway worker opens at start."""
    pool_max_size: int = 16
    """Connections each gateway worker may hold at most."""


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """The client-facing HTTP server and its upstream calls."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """TCP port to listen on."""
    workers: int = 1
    """Worker processes."""
    max_body_bytes: int = 100 * 1024 * 1024
    """Largest request body accepted, in bytes; larger ones get 413 before they are read."""
    connect_timeout: float = 10.0
    """Seconds to open a connection to an upstream."""
    first_byte_timeout: float = 120.0
    """Seconds to wait for an upstream's response headers and first body bytes."""
    read_timeout: float = 300.0
    """Seconds an upstream may stay silent in the middle of a response."""
    max_attempts: int = 3
    """Channels tried at most for one request, counting the first."""
    disconnect_grace: float = 5.0
    """Seconds to keep reading an upstream after the client left, to learn its usage."""
    relay_client: RelayClientKind = "aiohttp"
    """HTTP client implementation for upstream calls, chosen by ``make bench``."""
    reap_interval: float = 30.0
    """Seconds between sweeps that release holds of dead workers."""
    allow_private_image_urls: bool = False
    """Let clients' image URLs point at loopback or private addresses (tests, closed networks)."""


class BillingSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Holds and defaults of the billing layer."""

    hold_ttl: int = 900
    """Seconds a hold lives before the reaper releases it."""
    default_max_output_tokens: int = 4096
    """Output tokens assumed for the hold when a request sets no limit."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """All settings of one process."""

    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    billing: BillingSettings = msgspec.field(default_factory=BillingSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``TOLLGATE_<AREA>_<FIELD>`` variables.

        Raises:
            msgspec.ValidationError: naming the offending field when a value does not fit.
        """
        raw: dict[str, dict[str, Any]] = {"database": {}, "gateway": {}, "billing": {}}
        for area, fields in raw.items():
            struct = {"database": DatabaseSettings, "gateway": GatewaySettings}.get(
                area, BillingSettings
            )
            for name in struct.__struct_fields__:
                value = environ.get(f"TOLLGATE_{area.upper()}_{name.upper()}")
                if value not in (None, ""):
                    fields[name] = value
        if not raw["database"].get("url") and environ.get("DATABASE_URL"):
            raw["database"]["url"] = environ["DATABASE_URL"]
        return msgspec.convert(raw, cls, strict=False)

    def to_env(self) -> dict[str, str]:
        """Return the variables that make :meth:`from_env` rebuild these settings."""
        env: dict[str, str] = {}
        for area in ("database", "gateway", "billing"):
            for name, value in msgspec.structs.asdict(getattr(self, area)).items():
                if value is not None:
                    env[f"TOLLGATE_{area.upper()}_{name.upper()}"] = str(value)
        return env
