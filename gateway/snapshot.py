"""The in-memory configuration snapshot and the listener that keeps it current.

Every worker holds one :class:`Snapshot` (keys by hash, tenants, channels by model, prices)
so that authentication and routing need no SQL. Triggers on the configuration tables
``NOTIFY tollgate_config``; the :class:`SnapshotListener` ``LISTEN``s on its own
connection, reloads one key for a key change and everything for any other change, and
reloads everything after it reconnects, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import msgspec

from shared.money import Price

if TYPE_CHECKING:
    from collections.abc import Iterable

    from asyncpg.pool import PoolConnectionProxy

logger = logging.getLogger(__name__)

__all__ = (
    "ChannelEntry",
    "KeyEntry",
    "Snapshot",
    "SnapshotListener",
    "TenantEntry",
    "load_snapshot",
)

NOTIFY_CHANNEL: Final = "tollgate_config"
_HEALTH_INTERVAL: Final = 5.0
_RECONNECT_DELAY: Final = 0.5

_KEY_COLUMNS: Final = (
    "id, tenant_id, key_hash, status, extract(epoch FROM expires_at) AS expires_at, "
    "models, rpm_limit, name"
)


class KeyEntry(msgspec.Struct, frozen=True):
    """What the gateway knows of an API key."""

    id: int
    tenant_id: int
    key_hash: str
    status: str
    expires_at: float | None
    """Unix time after which the key is refused."""
    models: frozenset[str] | None
    rpm_limit: int | None
    name: str

    def is_usable(self, now: float) -> bool:
        """Return True when the key is active and not expired."""
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)

    def allows(self, model: str) -> bool:
        """Return True when the key's allow-list admits ``model``."""
        return self.models is None or model in self.models


class TenantEntry(msgspec.Struct, frozen=True):
    """What the gateway knows of a tenant (its balance is only ever read in SQL)."""

    id: int
    name: str
    group: str
    ratio: Decimal
    status: str


class ChannelEntry(msgspec.Struct, frozen=True):
    """An enabled upstream channel as routing sees it."""

    id: int
    name: str
    kind: str
    base_url: str
    api_key: str
    models: frozenset[str]
    model_map: dict[str, str]
    priority: int
    weight: int
    groups: frozenset[str] | None
    relay_url: str | None
    relay_secret: str | None
    settings: dict[str, Any]

    def upstream_model(self, model: str) -> str:
        """Return the name the upstream knows ``model`` by."""
        return self.model_map.get(model, model)

    def serves_group(self, group: str) -> bool:
        """Return True when tenants of ``group`` may use this channel."""
        return self.groups is None or group in self.groups


class Snapshot:
    """Immutable-by-convention view of the configuration, swapped whole on reload."""

    __slots__ = ("channels_by_model", "keys", "loaded_at", "prices", "tenants")

    def __init__(
        self,
        keys: dict[str, KeyEntry],
        tenants: dict[int, TenantEntry],
        channels: Iterable[ChannelEntry],
        prices: dict[str, Price],
    ) -> None:
        self.keys = keys
        self.tenants = tenants
        self.prices = prices
        by_model: dict[str, list[ChannelEntry]] = defaultdict(list)
        for channel in channels:
            for model in channel.models:
                by_model[model].append(channel)
        self.channels_by_model = dict(by_model)
        self.loaded_at = time.time()

    def channels_for(self, model: str, group: str) -> list[ChannelEntry]:
        """Return the enabled channels serving ``model`` to tenants of ``group``."""
        return [c for c in self.channels_by_model.get(model, ()) if c.serves_group(group)]

    def usable_models(self, key: KeyEntry, tenant: TenantEntry) -> list[str]:
        """Return, sorted, every model ``key`` may call and that has a channel and a price.

        This is the same rule :func:`gateway.routing.resolve` applies to a request.
        """
        return sorted(
            model
            for model in self.channels_by_model
            if key.allows(model) and model in self.prices and self.channels_for(model, tenant.group)
        )


def _key_entry(row: asyncpg.Record) -> KeyEntry:
    models = row["models"]
    expires = row["expires_at"]
    return KeyEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        key_hash=row["key_hash"],
        status=row["status"],
        expires_at=None if expires is None else float(expires),
        models=None if models is None else frozenset(models),
        rpm_limit=row["rpm_limit"],
        name=row["name"],
    )


def _channel_entry(row: asyncpg.Record) -> ChannelEntry:
    groups = row["groups"]
    return ChannelEntry(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        base_url=row["base_url"].rstrip("/"),
        api_key=row["api_key"],
        models=frozenset(row["models"]),
        model_map={str(k): str(v) for k, v in msgspec.json.decode(row["model_map"]).items()},
        priority=row["priority"],
        weight=row["weight"],
        groups=None if groups is None else frozenset(groups),
        relay_url=row["relay_url"],
        relay_secret=row["relay_secret"],
        settings=msgspec.json.decode(row["settings"]),
    )


async def load_snapshot(connection: asyncpg.Connection | PoolConnectionProxy[Any]) -> Snapshot:
    """Read the whole configuration in one repeatable-read transaction."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        keys = await connection.fetch(f"SELECT {_KEY_COLUMNS} FROM api_key")  # noqa: S608 - constant
        tenants = await connection.fetch(
            "SELECT t.id, t.name, t.status, g.name AS group_name, g.ratio "
            "FROM tenant t JOIN tenant_group g ON g.id = t.group_id"
        )
        channels = await connection.fetch(
            "SELECT id, name, kind, base_url, api_key, models, model_map::text AS model_map, "
            "priority, weight, groups, relay_url, relay_secret, settings::text AS settings "
            "FROM channel WHERE status = 'enabled'"
        )
        prices = await connection.fetch(
            "SELECT model, input, cached_input, output FROM model_price"
        )
    return Snapshot(
        keys={row["key_hash"]: _key_entry(row) for row in keys},
        tenants={
            row["id"]: TenantEntry(
                id=row["id"],
                name=row["name"],
                group=row["group_name"],
                ratio=Decimal(row["ratio"]),
                status=row["status"],
            )
            for row in tenants
        },
        channels=[_channel_entry(row) for row in channels],
        prices={
            row["model"]: Price(
                input=row["input"], output=row["output"], cached_input=row["cached_input"]
            )
            for row in prices
        },
    )


class SnapshotListener:
    """Keeps a :class:`Snapshot` current from ``NOTIFY`` messages on a dedicated connection."""

    def __init__(self, dsn: str, snapshot: Snapshot) -> None:
        """Listen at ``dsn``, starting from an already loaded ``snapshot``."""
        self.snapshot = snapshot
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._full_reload = False
        self._key_ids: set[int] = set()
        self._lost = asyncio.Event()

    async def start(self) -> None:
        """Connect, listen, and run the refresh loop in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="snapshot-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        connection.add_termination_listener(lambda _: self._lost.set())
        self._connection = connection
        self._lost.clear()
        # Anything that changed before LISTEN took effect is read now.
        self.snapshot = await load_snapshot(connection)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            message = msgspec.json.decode(str(payload))
        except msgspec.DecodeError:
            message = {}
        if message.get("table") == "api_key" and isinstance(message.get("id"), int):
            self._key_ids.add(message["id"])
        else:
            self._full_reload = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh_until_lost()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("snapshot listener lost its connection, reconnecting")
            await self._reconnect()

    async def _refresh_until_lost(self) -> None:
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HEALTH_INTERVAL):
                    await self._wake.wait()
            if self._lost.is_set():
                return
            if not self._wake.is_set():
                await self._ping()
                continue
            self._wake.clear()
            await self._apply_changes()

    async def _ping(self) -> None:
        async with asyncio.timeout(_HEALTH_INTERVAL):
            await self._live().execute("SELECT 1")

    def _live(self) -> asyncpg.Connection:
        if self._connection is None:
            msg = "the snapshot listener is not connected"
            raise RuntimeError(msg)
        return self._connection

    async def _apply_changes(self) -> None:
        if self._full_reload:
            self._full_reload = False
            self._key_ids.clear()
            self.snapshot = await load_snapshot(self._live())
            logger.info("snapshot reloaded")
            return
        ids, self._key_ids = self._key_ids, set()
        rows = await self._live().fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_key WHERE id = ANY($1::bigint[])",  # noqa: S608 - constant
            list(ids),
        )
        current = self.snapshot
        keys = {h: k for h, k in current.keys.items() if k.id not in ids}
        keys.update((row["key_hash"], _key_entry(row)) for row in rows)
        current.keys = keys

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(_RECONNECT_DELAY)
            try:
                if self._connection is not None and not self._connection.is_closed():
                    self._connection.terminate()
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("snapshot listener could not reconnect yet, retrying")
                continue
            logger.info("snapshot listener reconnected and reloaded")
            return
