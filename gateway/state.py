"""Per-worker state of the gateway: settings, database pool, snapshot and upstream client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import asyncpg
import httpx

from gateway.billing import reap_holds
from gateway.media import refuse_private_hosts
from gateway.relay import create_relay_client
from gateway.routing import ChannelHealth
from gateway.snapshot import Snapshot, SnapshotListener, load_snapshot
from shared.database import asyncpg_dsn

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from gateway.relay import RelayClient
    from shared.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ("GatewayState",)

_NOT_STARTED = "GatewayState.start() was not awaited"


class GatewayState:
    """What one worker process holds between requests."""

    def __init__(self, settings: Settings) -> None:
        """Prepare the state; :meth:`start` connects it."""
        self.settings = settings
        self.health = ChannelHealth()
        self.client: RelayClient = create_relay_client(settings.gateway)
        hooks = [] if settings.gateway.allow_private_image_urls else [refuse_private_hosts]
        self.http = httpx.AsyncClient(
            timeout=30, follow_redirects=False, event_hooks={"request": hooks}
        )
        """Client for the gateway's own side calls (fetching images clients link to)."""
        self._pool: asyncpg.Pool | None = None
        self._listener: SnapshotListener | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def pool(self) -> asyncpg.Pool:
        """The worker's connection pool."""
        if self._pool is None:
            raise RuntimeError(_NOT_STARTED)
        return self._pool

    @property
    def snapshot(self) -> Snapshot:
        """The current configuration snapshot."""
        if self._listener is None:
            raise RuntimeError(_NOT_STARTED)
        return self._listener.snapshot

    async def start(self) -> None:
        """Open the pool, load the snapshot, start listening and the hold reaper."""
        url = self.settings.database.url
        if not url:
            msg = "the database URL must be resolved before workers start"
            raise RuntimeError(msg)
        dsn = asyncpg_dsn(url)
        self._pool = await asyncpg.create_pool(
            dsn,
            min_size=self.settings.database.pool_min_size,
            max_size=self.settings.database.pool_max_size,
        )
        async with self._pool.acquire() as connection:
            snapshot = await load_snapshot(connection)
        self._listener = SnapshotListener(dsn, snapshot)
        await self._listener.start()
        self._reaper = self.spawn(self._reap_forever())

    async def stop(self) -> None:
        """Stop background work and close every connection."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        await self.client.close()
        await self.http.aclose()
        if self._pool is not None:
            await self._pool.close()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway.reap_interval)
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await reap_holds(self.pool)
